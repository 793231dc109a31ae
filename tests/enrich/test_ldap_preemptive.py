"""Identity sync from a real slapd, and the preemptive path it feeds: a leaked credential of a synced
identity raises the `intel` trigger with that identity (no alert involved)."""

from __future__ import annotations

from pathlib import Path

from ldap3 import Connection, Server

from bastion.enrich.ldap_sync import LdapConfig, sync_ldap
from bastion.intel.feeds import parse_bytes
from bastion.intel.service import ingest_parsed
from bastion.intel.triggers import IntelTrigger, on_intel_match, unsubscribe
from bastion.store import Database
from bastion.store.assets import InventoryRepository
from bastion.store.intel import IntelRepository
from bastion.store.scope import TenantScope
from tests.enrich.slapd import ADMIN, ADMIN_PASSWORD, SUFFIX, seed, slapd


def test_ldap_sync_and_leaked_credential_trigger(
    sqlite_db: Database, sqlite_tenant: str, tmp_path: Path
) -> None:
    with slapd(tmp_path) as url:
        seed(url)
        cfg = LdapConfig(url=url, base_dn=f"ou=people,{SUFFIX}", bind_dn=ADMIN, password=ADMIN_PASSWORD)
        result = sync_ldap(sqlite_db, sqlite_tenant, cfg, actor="test")
        # A user who leaves the directory leaves the inventory on the next sync; imported ones stay.
        from bastion.enrich.inventory import parse_identities, store_identities

        store_identities(sqlite_db, sqlite_tenant, parse_identities(b"username\ncontractor\n")[0], actor="t")
        conn = Connection(Server(url), user=ADMIN, password=ADMIN_PASSWORD, auto_bind=True)
        conn.add(f"uid=carl,ou=people,{SUFFIX}", ["inetOrgPerson"], {"uid": "carl", "cn": "Carl", "sn": "C"})
        assert sync_ldap(sqlite_db, sqlite_tenant, cfg, actor="test").imported == 3
        assert conn.delete(f"uid=carl,ou=people,{SUFFIX}"), conn.result
        conn.unbind()
        again = sync_ldap(sqlite_db, sqlite_tenant, cfg, actor="test")
    assert result.imported == 2 and (again.imported, again.removed) == (2, 1)
    with sqlite_db.read() as conn_:
        inv_ = InventoryRepository(conn_, sqlite_tenant)
        assert inv_.identity("carl") is None and inv_.identity("contractor") is not None
    with sqlite_db.read() as conn:
        inv = InventoryRepository(conn, sqlite_tenant)
        alice = inv.identity("alice")
        bob = inv.identity_by_email("BOB@example.org")
    assert alice is not None and alice.privileged and alice.groups == ["admins"]
    assert alice.email == "alice@example.org" and alice.status == "active"
    assert bob is not None and bob.status == "disabled" and bob.manager == "alice"

    fired: list[IntelTrigger] = []
    sub = on_intel_match(fired.append)
    try:
        leak = (
            b"email,source,breach_date,password\n"
            b"alice@example.org,megabreach-2026,2026-10-01,hunter2\n"
            b"stranger@elsewhere.example,megabreach-2026,2026-10-01,\n"
            b"bad-record,,not-a-date,\n"
        )
        parsed = parse_bytes("credential-leak", leak, options={})
        summary = ingest_parsed(sqlite_db, sqlite_tenant, parsed, actor="test")
        assert (summary.load.loaded, summary.load.rejected) == (2, 1)
        assert summary.triggers == 1
        assert len(fired) == 1
        trig = fired[0]
        assert trig.type == "credential-leak"
        assert trig.identity is not None and trig.identity["username"] == "alice"
        assert trig.inputs()["email"] == "alice@example.org"
        assert trig.indicator["details"]["breach_source"] == "megabreach-2026"
        # The password never reaches the store in plaintext; at most a salted hash.
        with sqlite_db.read() as conn:
            stored = IntelRepository(conn, sqlite_tenant).find([("leaked_credential", "alice@example.org")])
            audit = [e.action for e in TenantScope(conn, sqlite_tenant).audit.entries()]
        doc = next(iter(stored.values()))
        assert "hunter2" not in repr(doc)
        assert doc.details["password_hash"].startswith("pbkdf2_sha256$")
        assert "intel.trigger" in audit
        # Recorded with its payload, for an engine running in another process.
        with sqlite_db.read() as conn:
            recorded = IntelRepository(conn, sqlite_tenant).triggers()
        assert [doc["identity"]["username"] for _, doc in recorded] == ["alice"]

        # Loading the same leak again fires nothing new.
        again = ingest_parsed(sqlite_db, sqlite_tenant, parse_bytes("credential-leak", leak), actor="test")
        assert again.triggers == 0 and len(fired) == 1
    finally:
        unsubscribe(sub)


def test_ldap_sync_failure_is_one_clear_error(sqlite_db: Database, sqlite_tenant: str) -> None:
    import pytest

    from tests.conftest import free_port

    cfg = LdapConfig(url=f"ldap://127.0.0.1:{free_port()}", base_dn="dc=x", timeout=2)
    with pytest.raises(ValueError, match=r"LDAP sync from ldap://127\.0\.0\.1"):
        sync_ldap(sqlite_db, sqlite_tenant, cfg, actor="test")


def test_leaked_credential_of_ldap_identity_starts_bound_workflow(
    sqlite_db: Database, sqlite_tenant: str, tmp_path: Path
) -> None:
    """Acceptance: a leaked credential for an identity synced from slapd starts the tenant's bound
    workflow, with no alert involved, through the binding the product installs (connect_response)."""
    from bastion.pipeline import connect_response
    from bastion.respond import service as respond
    from bastion.store.workflows import WorkflowRepository

    respond.add_workflow(
        sqlite_db,
        sqlite_tenant,
        "id: leak-response\ntrigger:\n  intel: {type: credential-leak}\ninputs:\n  email: {type: string}\n"
        'steps:\n  - {id: a, action: core.log, with: {message: "${{ inputs.email }}"}}\n',
        actor="t",
    )
    with slapd(tmp_path) as url:
        seed(url)
        cfg = LdapConfig(url=url, base_dn=f"ou=people,{SUFFIX}", bind_dn=ADMIN, password=ADMIN_PASSWORD)
        sync_ldap(sqlite_db, sqlite_tenant, cfg, actor="test")
    connect_response(sqlite_db)
    leak = b'[{"email": "bob@example.org", "source": "combo-list", "breach_date": "2026-11-01"}]'
    ingest_parsed(sqlite_db, sqlite_tenant, parse_bytes("credential-leak", leak), actor="test")
    # the same leak again is not a second trigger
    ingest_parsed(sqlite_db, sqlite_tenant, parse_bytes("credential-leak", leak), actor="test")
    with sqlite_db.read() as conn:
        runs = WorkflowRepository(conn, sqlite_tenant).list_runs()
        alerts = TenantScope(conn, sqlite_tenant).alerts.count()
    assert len(runs) == 1 and runs[0]["workflow_id"] == "leak-response"
    assert runs[0]["inputs"] == {"email": "bob@example.org"}
    assert runs[0]["trigger"]["type"] == "intel"
    assert alerts == 0
