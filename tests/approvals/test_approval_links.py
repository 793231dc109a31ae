"""Signed one-click links and e-mail: a real ``aiosmtpd`` server receives the request, the test follows
the link from the mail over HTTP (real uvicorn), and a second click, an altered link, an expired link or
a link for another approval is refused."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.approvals.conftest import Org, Smtp, make_org
from tests.conftest import RunningServer, start_server

from bastion.config import Settings
from bastion.respond.approvals import Approval, ApprovalSpec, LinkError, get_approval, request_approval
from bastion.respond.approvals.notify import issue_link
from bastion.respond.approvals.tokens import link_key, sign_claims, verify_token
from bastion.store import Database
from bastion.store.approvals import ApprovalRepository

LINK = re.compile(r"(http://\S+/api/v1/approvals/links/\S+)")


@pytest.fixture
def server(sqlite_db: Database, smtp: Smtp) -> Iterator[RunningServer]:
    running, srv, thread = start_server(
        sqlite_db, approval_link_key="link-key-for-tests", smtp_host=smtp.host, smtp_port=smtp.port
    )
    running.settings = running.settings.model_copy(update={"public_url": running.url})
    yield running
    srv.should_exit = True
    thread.join(10)
    running.queue.close()


@pytest.fixture
def org(server: RunningServer) -> Org:
    return make_org(server.db, "acme")


def ask(server: RunningServer, org: Org, approval_id: str = "run1:disable", **spec: object) -> Approval:
    return request_approval(
        org.db,
        org.id,
        approval_id=approval_id,
        run_id=approval_id.split(":")[0],
        step_id="disable",
        action="directory.disable_user",
        summary="Disable jdoe",
        target={"user": "jdoe"},
        reason="impossible travel",
        requested_by="alice",
        spec=ApprovalSpec(**{"roles": ["approver"], "channels": ["web", "email"], **spec}),  # type: ignore[arg-type]
        settings=server.settings,
    )


def mail_links(smtp: Smtp, to: str) -> dict[str, str]:
    [msg] = [m for m in smtp.inbox.messages if m["To"] == to]
    body = msg.get_payload(decode=True).decode()  # type: ignore[union-attr]
    links = LINK.findall(body)
    return {
        "approve": next(u for u in links if "Approve" in body.split(u)[0].splitlines()[-1]),
        "deny": next(u for u in links if "Deny" in body.split(u)[0].splitlines()[-1]),
    }


def test_email_link_end_to_end(server: RunningServer, org: Org, smtp: Smtp, resolved: list[Approval]) -> None:
    a = ask(server, org)
    # Every approver except the requester (four-eyes) gets a personal mail.
    assert sorted(m["To"] for m in smtp.inbox.messages) == ["bob@acme.example.org", "carol@acme.example.org"]
    assert get_approval(org.db, org.id, a.id).delivery["email"] == [
        "bob@acme.example.org",
        "carol@acme.example.org",
    ]
    assert "Disable jdoe" in smtp.inbox.messages[0]["Subject"]
    link = mail_links(smtp, "bob@acme.example.org")["approve"]
    with httpx.Client(timeout=30) as c:
        page = c.get(link)  # looking does not decide (mail scanners fetch links)
        assert page.status_code == 200 and "Approve as bob" in page.text
        assert get_approval(org.db, org.id, a.id).status == "pending"
        done = c.post(link, data={"comment": "confirmed with the user"})
        assert done.status_code == 200 and "approved" in done.text
        again = c.post(link)
        assert again.status_code == 403 and "already" in again.text
        assert c.get(link).status_code == 403
        # The other approver's links die with the request.
        deny = mail_links(smtp, "carol@acme.example.org")["deny"]
        closed = c.post(deny)
        assert closed.status_code == 409 and "already approved" in closed.text
    a = get_approval(org.db, org.id, a.id)
    assert [(d.user, d.decision, d.channel, d.comment) for d in a.decisions] == [
        ("bob", "approve", "link", "confirmed with the user")
    ]
    assert len(resolved) == 1
    # A repeated request (engine retry) sends nothing twice.
    ask(server, org)
    assert len(smtp.inbox.messages) == 2


def test_altered_links_are_refused(server: RunningServer, org: Org, smtp: Smtp) -> None:
    ask(server, org)
    link = mail_links(smtp, "bob@acme.example.org")["deny"]
    body, mac = link.rsplit("/", 1)[1].split(".")
    base = link.rsplit("/", 1)[0]
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    # Swap the decision inside the claims and keep the old signature.
    claims = verify_token(link_key(server.settings), f"{body}.{mac}", now_ms=int(time.time() * 1000))
    forged = sign_claims(b"not-the-key", {**claims, "d": "approve"})
    with httpx.Client(timeout=30) as c:
        for bad in (f"{flipped}.{mac}", f"{body}.{mac[:-2]}xx", forged, "garbage", f"{body}."):
            r = c.post(f"{base}/{bad}")
            assert r.status_code == 403, bad
            assert "signature" in r.text or "malformed" in r.text
    assert get_approval(org.db, org.id, "run1:disable").decisions == []


def test_expired_and_foreign_links_are_refused(server: RunningServer, org: Org) -> None:
    a = ask(server, org, channels=["web"])
    key = link_key(server.settings)
    now = int(time.time() * 1000)
    with org.db.write() as conn:
        repo = ApprovalRepository(conn, org.id)
        repo.add_token(nonce="n-old", approval_id=a.id, user="bob", decision="approve", expires=now - 1)
        valid = issue_link(repo, a, user="bob", decision="approve", settings=server.settings)
    base = {"t": org.id, "a": a.id, "r": a.run_id, "s": a.step_id, "u": "bob", "d": "approve"}
    expired = sign_claims(key, {**base, "e": now - 1, "n": "n-old"})
    unknown_nonce = sign_claims(key, {**base, "e": now + 60_000, "n": "never-issued"})
    other = make_org(org.db, "globex")
    other_tenant = sign_claims(key, {**base, "t": other.id, "e": now + 60_000, "n": "n-x"})
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post(f"/api/v1/approvals/links/{expired}")
        assert r.status_code == 403 and "expired" in r.text
        r = c.post(f"/api/v1/approvals/links/{unknown_nonce}")
        assert r.status_code == 403 and "not one we issued" in r.text
        assert c.post(f"/api/v1/approvals/links/{other_tenant}").status_code == 403
    assert get_approval(org.db, org.id, a.id).decisions == []
    with httpx.Client(timeout=30) as c:
        assert c.post(valid).status_code == 200
    assert get_approval(org.db, org.id, a.id).status == "approved"


def test_link_for_a_user_who_lost_the_role(server: RunningServer, org: Org) -> None:
    a = ask(server, org, channels=["web"], roles=["analyst"])
    with org.db.write() as conn:
        link = issue_link(
            ApprovalRepository(conn, org.id), a, user="bob", decision="approve", settings=server.settings
        )
    with httpx.Client(timeout=30) as c:
        r = c.post(link)
    assert r.status_code == 403 and "role 'approver'" in r.text
    assert get_approval(org.db, org.id, a.id).decisions == []


def test_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    settings = Settings(approval_link_key_file=str(tmp_path / "sub" / "link.key"))
    first = link_key(settings)
    assert len(first) == 32 and link_key(settings) == first
    assert (tmp_path / "sub" / "link.key").stat().st_mode & 0o777 == 0o600
    token = sign_claims(
        first, {"t": "x", "a": "a", "r": "r", "s": "s", "u": "u", "d": "deny", "e": 2**40, "n": "n"}
    )
    assert verify_token(first, token, now_ms=0)["d"] == "deny"
    with pytest.raises(LinkError, match="signature"):
        verify_token(b"other", token, now_ms=0)


def test_email_not_configured_is_recorded_not_fatal(sqlite_db: Database) -> None:
    org = make_org(sqlite_db, "acme")
    a = request_approval(
        sqlite_db,
        org.id,
        approval_id="r:s",
        run_id="r",
        step_id="s",
        action="core.log",
        summary="x",
        target={},
        reason="",
        requested_by=None,
        spec=ApprovalSpec(roles=["approver"], channels=["email", "slack"]),
        settings=Settings(approval_link_key="k"),
    )
    assert a.status == "pending"
    errors = get_approval(sqlite_db, org.id, a.id).delivery["errors"]
    assert any("BASTION_SMTP_HOST" in e for e in errors) and any(
        "BASTION_SLACK_BOT_TOKEN" in e for e in errors
    )


def test_escalation_mails_the_new_roles(server: RunningServer, org: Org, smtp: Smtp) -> None:
    from bastion.respond.approvals import resolve_on_timeout

    a = ask(server, org, timeout_s=3600, on_timeout="escalate", escalate_to=["engineer"])
    assert len(smtp.inbox.messages) == 2
    a = resolve_on_timeout(org.db, org.id, a.id, settings=server.settings)
    assert a.status == "pending" and a.roles == ["engineer"]
    assert [m["To"] for m in smtp.inbox.messages[2:]] == ["erin@acme.example.org"]
    # The approvers' old links are still genuine, but their role no longer decides this request.
    old = mail_links(smtp, "bob@acme.example.org")["approve"]
    with httpx.Client(timeout=30) as c:
        r = c.post(old)
        assert r.status_code == 403 and "engineer" in r.text
        assert c.post(mail_links(smtp, "erin@acme.example.org")["approve"]).status_code == 200
    assert get_approval(org.db, org.id, a.id).status == "approved"
