"""A throwaway OpenLDAP ``slapd`` on a free loopback port: the directory the credential-leak demo runs
against, and the one the tests start. Debian's ``slapd`` package (scripts/test-services.sh installs it)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["SlapdError", "running_slapd"]

_SCHEMAS = ("core", "cosine", "inetorgperson", "nis")


class SlapdError(RuntimeError):
    """slapd is missing, or did not start (the message has the end of its output)."""


def _exe() -> str:
    exe = shutil.which("slapd") or "/usr/sbin/slapd"
    if not Path(exe).exists():
        raise SlapdError("slapd is required: apt-get install -y slapd ldap-utils (scripts/test-services.sh)")
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_slapd(
    folder: Path,
    *,
    suffix: str,
    admin_dn: str,
    admin_password: str,
    includes: Sequence[str] = (),
    modules: Sequence[str] = (),
    database_lines: Sequence[str] = (),
) -> Iterator[str]:
    """Start slapd with an mdb database for ``suffix`` under ``folder``; yield its ``ldap://`` URL; stop
    it on exit. ``includes`` are extra schema files, ``modules`` extra modules (``ppolicy``), and
    ``database_lines`` go after the database settings (``overlay ppolicy`` ...)."""
    (folder / "db").mkdir(parents=True, exist_ok=True)
    conf = folder / "slapd.conf"
    lines = [f"include /etc/ldap/schema/{name}.schema" for name in _SCHEMAS]
    lines += [f"include {path}" for path in includes]
    lines += [f"pidfile {folder}/slapd.pid", "modulepath /usr/lib/ldap", "moduleload back_mdb"]
    lines += [f"moduleload {name}" for name in modules]
    lines += [
        "database mdb",
        f'suffix "{suffix}"',
        f'rootdn "{admin_dn}"',
        f"rootpw {admin_password}",
        f"directory {folder}/db",
        "maxsize 10485760",
        *database_lines,
        "",
    ]
    conf.write_text("\n".join(lines))
    port = _free_port()
    url = f"ldap://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [_exe(), "-f", str(conf), "-h", f"{url}/", "-d", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise SlapdError(f"slapd exited: {err[-800:]}") from None
                if time.monotonic() > deadline:
                    raise SlapdError("slapd did not start within 30 s") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
