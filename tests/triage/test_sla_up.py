"""``bastion up`` runs the SLA check on its schedule: a real server process escalates an overdue case and
mails the SOC lead through a real ``aiosmtpd`` server, with nobody calling the check by hand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bastion.store import Database
from tests.approvals.conftest import Smtp, smtp  # noqa: F401  (the real SMTP server fixture)
from tests.conftest import free_port
from tests.triage.test_sla import LEAD, audit, case_row, make_case, make_tenant


def test_up_escalates_on_its_schedule(tmp_path: Path, smtp: Smtp) -> None:  # noqa: F811
    db = Database(f"sqlite:///{tmp_path / 'bastion.db'}")
    db.migrate()
    tid = make_tenant(db)
    cid = make_case(db, tid, "Nobody looked at this")
    env = {
        **os.environ,
        "BASTION_DATABASE_URL": db.url,
        "BASTION_SLA_CHECK_INTERVAL_S": "1",
        "BASTION_SMTP_HOST": smtp.host,
        "BASTION_SMTP_PORT": str(smtp.port),
        "BASTION_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli", "up", "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 90
        while not smtp.inbox.messages and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert [m["To"] for m in smtp.inbox.messages] == [LEAD], output
    row = case_row(db, cid)
    assert row.escalations == 3 and row.queue == "tier3"  # acknowledge, contain and resolve are all past
    assert [e.data["kind"] for e in audit(db, tid, "case.escalated")] == ["acknowledge", "contain", "resolve"]
    assert len(audit(db, tid, "case.notified")) == 1
    db.dispose()
