"""DNS blocking through files Bastion writes for the tenant's resolver: an unbound ``local-zone`` include
file and an RPZ zone file, then a reload of unbound. Actions ``dns.block_domain`` (high: records a
change whose undo is ``dns.unblock_domain``, with an optional expiry), ``dns.unblock_domain`` (low) and
``dns.list_blocks`` (read).

Where the files are and how the resolver reloads are the operator's settings, never a tenant's: a
path or command from a tenant's connection would let a tenant write files or run programs on the host.

* ``dns_blocks_dir``: the folder of the files; each tenant's are ``<tenant id>.local-zone.conf`` (unbound
  includes them: ``include: "<dir>/*.local-zone.conf"`` at the top level; each block is ``local-zone:
  "evil.example." always_nxdomain``, which covers the domain and every name below it) and/or
  ``<tenant id>.rpz``, an RPZ zone file (``evil.example CNAME .`` and ``*.evil.example CNAME .``,
  i.e. NXDOMAIN) for resolvers that load a response-policy zone (unbound's ``rpz:``, BIND, PowerDNS);
  ``dns_format`` picks ``local-zone``, ``rpz`` or ``both``.
* ``dns_reload_command``: the argv that makes the resolver re-read its files, e.g.
  ``["unbound-control", "reload"]``; else ``dns_pid_file`` (unbound re-reads on SIGHUP); else the files
  are written and the output says ``reloaded: false``.

The tenant's ``dns`` connection may set ``settings.response`` (``always_nxdomain``, ``always_refuse``
or ``refuse``).

The files are the state: Bastion owns them (a header says so), reads the blocked set back from the
local-zone file (or the RPZ file when that is the only one), changes it under a lock and replaces the
files atomically, so a resolver never reads half a file.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bastion.connectors.changes import record_change
from bastion.connectors.edl import BlocklistError, expires_at, normalise_domain
from bastion.connectors.registry import ActionContext, ActionError, action
from bastion.connectors.settings import current_settings
from bastion.connectors.undo import earlier_change, step_key

__all__ = ["block_domain", "list_blocks", "read_blocks", "render_local_zones", "render_rpz", "unblock_domain"]

_HEADER = "# Managed by Bastion (dns.block_domain): edits here are overwritten.\n"
_LOCAL_ZONE = re.compile(r'^\s*local-zone:\s*"([^"]+?)\.?"\s+(\S+)')
_RPZ_LINE = re.compile(r"^([A-Za-z0-9.-]+?)\s+(?:\d+\s+)?(?:IN\s+)?CNAME\s+\.\s*$")
_SERIAL = re.compile(r"SOA\s+\S+\s+\S+\s+\(\s*(\d+)")
_RESPONSES = ("always_nxdomain", "always_refuse", "refuse")
_COMMAND_TIMEOUT_S = 30.0


def _settings(ctx: ActionContext) -> dict[str, Any]:
    """The files and reload of this tenant's blocks, from the operator's settings, and the tenant's
    chosen response."""
    operator = current_settings()
    if not operator.dns_blocks_dir:
        raise ActionError(
            "dns: DNS blocking is not set up on this Bastion: the operator sets dns_blocks_dir "
            "(BASTION_DNS_BLOCKS_DIR) and how the resolver reloads (dns_reload_command or dns_pid_file)"
        )
    folder = Path(operator.dns_blocks_dir)
    response = (ctx.connection.get("settings") or {}).get("response", "always_nxdomain")
    if response not in _RESPONSES:
        raise ActionError(f"dns: settings.response must be one of {', '.join(_RESPONSES)}, not {response!r}")
    settings: dict[str, Any] = {"response": response}
    if operator.dns_format in ("local-zone", "both"):
        settings["local_zone_file"] = str(folder / f"{ctx.tenant_id}.local-zone.conf")
    if operator.dns_format in ("rpz", "both"):
        settings["rpz_file"] = str(folder / f"{ctx.tenant_id}.rpz")
    if operator.dns_reload_command:
        settings["control_command"] = list(operator.dns_reload_command)
    if operator.dns_pid_file:
        settings["pid_file"] = operator.dns_pid_file
    return settings


def _domain(value: str) -> str:
    try:
        return normalise_domain(value)
    except BlocklistError as exc:
        raise ActionError(f"dns: {exc}") from None


def render_local_zones(domains: list[str], response: str = "always_nxdomain") -> str:
    """The unbound include file for ``domains``."""
    lines = [f'local-zone: "{d}." {response}\n' for d in sorted(domains)]
    return _HEADER + "server:\n" + "".join(lines) if lines else _HEADER + "server:\n"


def render_rpz(domains: list[str], *, serial: int | None = None) -> str:
    """An RPZ zone file answering NXDOMAIN for ``domains`` and every name below them."""
    serial = serial if serial is not None else int(time.time())
    head = (
        _HEADER.replace("#", ";", 1)
        + "$TTL 60\n"
        + f"@ IN SOA localhost. hostmaster.localhost. ({serial} 3600 600 86400 60)\n"
        + "@ IN NS localhost.\n"
    )
    body = "".join(f"{d} CNAME .\n*.{d} CNAME .\n" for d in sorted(domains))
    return head + body


def read_blocks(settings: dict[str, Any]) -> list[str]:
    """The domains blocked now, read back from the files Bastion wrote."""
    found: set[str] = set()
    local = settings.get("local_zone_file")
    if local:
        path = Path(local)
        if path.exists():
            for line in path.read_text().splitlines():
                m = _LOCAL_ZONE.match(line)
                if m:
                    found.add(m.group(1).lower())
        return sorted(found)
    path = Path(settings["rpz_file"])
    if path.exists():
        for line in path.read_text().splitlines():
            m = _RPZ_LINE.match(line.strip())
            if m and not m.group(1).startswith("*."):
                found.add(m.group(1).rstrip(".").lower())
    return sorted(found)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # the resolver usually runs as its own user and must read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(settings: dict[str, Any]) -> Iterator[None]:
    """One writer at a time per file set (processes and threads alike)."""
    anchor = Path(settings.get("local_zone_file") or settings["rpz_file"])
    anchor.parent.mkdir(parents=True, exist_ok=True)
    with open(anchor.with_name(anchor.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _next_serial(path: Path) -> int:
    """Now in seconds, but always above the zone's current serial (secondaries that transfer the zone
    only take a higher one, and two changes can fall in the same second)."""
    current = 0
    if path.exists():
        m = _SERIAL.search(path.read_text())
        current = int(m.group(1)) if m else 0
    return max(int(time.time()), current + 1)


def _write(settings: dict[str, Any], domains: list[str]) -> None:
    if settings.get("local_zone_file"):
        _write_atomic(
            Path(settings["local_zone_file"]),
            render_local_zones(domains, settings.get("response", "always_nxdomain")),
        )
    if settings.get("rpz_file"):
        path = Path(settings["rpz_file"])
        _write_atomic(path, render_rpz(domains, serial=_next_serial(path)))


async def _run(argv: list[str], what: str) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except OSError as exc:
        raise ActionError(f"dns: cannot run {what} {argv[0]!r}: {exc.strerror or exc}") from None
    try:
        out, errs = await asyncio.wait_for(proc.communicate(), _COMMAND_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ActionError(f"dns: {what} did not finish in {_COMMAND_TIMEOUT_S:g}s") from None
    text = (errs or out).decode(errors="replace").strip()
    # unbound-control prints "error ..." and may still exit 0 on some versions: check both.
    if proc.returncode != 0 or text.lower().startswith("error"):
        raise ActionError(f"dns: {what} exited {proc.returncode}: {text[:500]}")


async def _reload(settings: dict[str, Any]) -> str | None:
    """Make the resolver re-read the files; how it was done, or None when nothing is configured."""
    if settings.get("control_command"):
        await _run(settings["control_command"], "reload command")
        return "control"
    if settings.get("pid_file"):
        try:
            pid = int(Path(settings["pid_file"]).read_text().split()[0])
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError, IndexError) as exc:
            raise ActionError(f"dns: cannot signal the resolver from {settings['pid_file']}: {exc}") from None
        return "sighup"
    return None


async def _apply(ctx: ActionContext, domain: str, *, block: bool) -> tuple[bool, str | None, dict[str, Any]]:
    """Write the change and reload. A failed reload puts the files back as they were, so the resolver's
    files and what it serves agree and a retry does the whole thing again."""
    settings = _settings(ctx)
    with _locked(settings):
        domains = read_blocks(settings)
        if (domain in domains) == block:
            return False, None, settings
        _write(settings, [*domains, domain] if block else [d for d in domains if d != domain])
    try:
        how = await _reload(settings)
    except ActionError:
        with _locked(settings):
            now = read_blocks(settings)
            _write(settings, [d for d in now if d != domain] if block else sorted({*now, domain}))
        raise
    return True, how, settings


@action("dns.block_domain", impact="high", idempotent=True, connection="dns")
async def block_domain(
    domain: str, reason: str = "", expires_in: str | None = None, *, ctx: ActionContext
) -> dict[str, Any]:
    """Make the tenant's resolver answer NXDOMAIN (or REFUSED) for a domain and every name below it.

    Writes the unbound local-zone file and/or RPZ zone file of the dns connection and reloads the
    resolver. Records a change whose undo is dns.unblock_domain; with expires_in the block is lifted
    when it expires. A domain already blocked is left alone and no change is recorded.

    Args:
        domain: the domain to block, e.g. evil.example (a leading "*." is accepted and ignored)
        reason: why it is blocked (kept in the change record)
        expires_in: how long the block lasts, e.g. "24h", "7d"; empty for no expiry
    """
    name = _domain(domain)
    try:
        expires = expires_at(expires_in)
    except BlocklistError as exc:
        raise ActionError(f"dns: {exc}") from None
    changed, how, settings = await _apply(ctx, name, block=True)
    change_id = None
    if not changed:
        # a retried step: its first attempt made the block
        change_id = earlier_change(ctx, "dns.block_domain", name)
    if changed:
        change_id = record_change(
            ctx,
            action="dns.block_domain",
            target=name,
            prior={"blocked": False},
            change={
                "domain": name,
                "response": settings.get("response", "always_nxdomain"),
                "reason": reason or None,
                "expires": expires,
                **step_key(ctx),
            },
            undo_action="dns.unblock_domain",
            undo_inputs={"domain": name},
            expires=expires,
        )
    ctx.log(f"dns: {name} {'blocked' if changed else 'was already blocked'}; reload: {how or 'none'}")
    return {
        "domain": name,
        "blocked": True,
        "changed": changed or change_id is not None,
        "reloaded": how is not None,
        "reload": how,
        "expires": expires,
        "change_id": change_id,
    }


@action("dns.unblock_domain", impact="low", idempotent=True, connection="dns")
async def unblock_domain(domain: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Lift a DNS block (the undo of dns.block_domain); a domain that is not blocked is not an error.

    Args:
        domain: the blocked domain, e.g. evil.example
    """
    name = _domain(domain)
    changed, how, _ = await _apply(ctx, name, block=False)
    ctx.log(f"dns: {name} {'unblocked' if changed else 'was not blocked'}; reload: {how or 'none'}")
    return {"domain": name, "blocked": False, "changed": changed, "reloaded": how is not None, "reload": how}


@action("dns.list_blocks", impact="read", idempotent=True, connection="dns")
async def list_blocks(*, ctx: ActionContext) -> dict[str, Any]:
    """The domains the tenant's resolver blocks now, read from the files Bastion wrote."""
    domains = read_blocks(_settings(ctx))
    return {"count": len(domains), "domains": domains}
