"""The demo data set that ``bastion up --demo`` ingests, so a newcomer sees real-looking data at once.

Northwind Labs (``northwind.example``, AD domain NORTHWIND) is a fictional company. On its demo day a
finance employee, j.morales on WS-0142, follows a link in a lookalike invoice e-mail; Word runs a macro
that starts PowerShell with an encoded command; the script downloads an implant from
``cdn.fastupdate-cdn.test``, which beacons to its C2 server 203.0.113.77, dumps LSASS, and moves to the
file server FS-01 with the stolen ``svc_backup`` credentials; the firewall ends up blocking the C2
address. Ordinary office activity runs around it. Every name, address and hash is synthetic: addresses
come from the documentation ranges (RFC 5737) and domains from reserved TLDs (RFC 2606).

``data/`` holds Windows events (evtx JSON, Sysmon, Security, PowerShell), firewall CEF lines, ECS proxy
and DNS events, generic alert documents and two vendor alerts (Elastic, Sentinel); :mod:`.generator`
loads them with their times moved to now and makes fresh background events.
"""

from bastion.demo.generator import (
    DATA_DIR,
    DEMO_NEWEST_MS,
    INDICATORS,
    Record,
    demo_files,
    live_events,
    load_demo_alerts,
    load_demo_events,
    load_demo_webhooks,
    record_time,
)

__all__ = [
    "DATA_DIR",
    "DEMO_NEWEST_MS",
    "INDICATORS",
    "Record",
    "demo_files",
    "live_events",
    "load_demo_alerts",
    "load_demo_events",
    "load_demo_webhooks",
    "record_time",
]
