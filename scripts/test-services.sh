#!/usr/bin/env bash
# Make sure every service the test suite talks to is installed and running. Idempotent.
#
# PostgreSQL (127.0.0.1:5432, database `test`) runs the store tests a second time.
set -euo pipefail

need_root() { [ "$(id -u)" = 0 ] || { echo "test-services: run as root to install $1" >&2; exit 1; }; }

# PostgreSQL
if ! command -v pg_isready >/dev/null 2>&1; then
  need_root postgresql
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "test-services: PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }
if ! psql -h 127.0.0.1 -d test -Atc 'select 1' >/dev/null 2>&1; then
  psql -h 127.0.0.1 -d postgres -c 'CREATE DATABASE test' >/dev/null 2>&1 \
    || su postgres -c "psql -c 'CREATE DATABASE test'" >/dev/null 2>&1 || true
fi
echo "test-services: PostgreSQL ready"

# OpenLDAP slapd + ldap-utils: the intel/enrich tests start their own slapd on a free port.
if ! command -v slapd >/dev/null 2>&1 && [ ! -x /usr/sbin/slapd ]; then
  need_root slapd
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd ldap-utils >/dev/null
fi
echo "test-services: slapd available"

# unbound + dig: the DNS blocking tests start their own unbound on a free port with their own config
# (never the system one, which the package may start on hosts with systemd) and ask it with dig.
dns_pkgs=()
command -v unbound >/dev/null 2>&1 || [ -x /usr/sbin/unbound ] || dns_pkgs+=(unbound)
command -v dig >/dev/null 2>&1 || dns_pkgs+=(bind9-dnsutils)
if [ "${#dns_pkgs[@]}" -gt 0 ]; then
  need_root "${dns_pkgs[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${dns_pkgs[@]}" >/dev/null
fi
echo "test-services: unbound and dig available"

# Reports: weasyprint renders the PDF report through Pango and HarfBuzz (with fonts), and the report tests
# turn its first page into an image with poppler's pdftoppm.
report_pkgs=()
command -v pdftoppm >/dev/null 2>&1 || report_pkgs+=(poppler-utils)
for pkg in libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || report_pkgs+=("$pkg")
done
if [ "${#report_pkgs[@]}" -gt 0 ]; then
  need_root "${report_pkgs[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${report_pkgs[@]}" >/dev/null
fi
echo "test-services: pdftoppm and weasyprint's libraries available"

# Browser tests (tests/web): Playwright drives Debian's chromium (Playwright's own download fails here).
if [ ! -x /usr/bin/chromium ]; then
  need_root chromium
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "test-services: chromium available"
