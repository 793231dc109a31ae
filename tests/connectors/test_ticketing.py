"""Ticketing actions against local doubles of Jira Cloud (REST v3), the ServiceNow Table API and
TheHive 5 (API v1), over real sockets: auth checked exactly, documented bodies, errors and 429s."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bastion.connectors.jira
import bastion.connectors.servicenow
import bastion.connectors.thehive  # noqa: F401  (registers the actions in this process)
from bastion.connectors import ActionContext, ActionError, get_action
from bastion.connectors.jira import adf
from bastion.store import Database
from bastion.tenancy.service import create_tenant
from tests.connectors.saas_servers import JiraDouble, ServiceNowDouble, TheHiveDouble, serve


def call(action_id: str, inputs: dict[str, Any], ctx: ActionContext) -> Any:
    defn = get_action(action_id)
    assert defn is not None, action_id

    async def go() -> Any:
        return await defn.fn(**inputs, ctx=ctx)

    return asyncio.run(go())


def ctx(base_url: str, secrets: dict[str, str], **kw: Any) -> ActionContext:
    return ActionContext(
        tenant_id="t1", secrets=secrets, connection={"base_url": base_url, "allow_private": True}, **kw
    )


# ------------------------------------------------------------------------------------------- Jira


@pytest.fixture
def jira() -> Iterator[JiraDouble]:
    with serve(JiraDouble()) as double:
        assert isinstance(double, JiraDouble)
        yield double


def jira_ctx(jira: JiraDouble, token: str | None = None) -> ActionContext:
    return ctx(jira.url, {"jira_email": jira.email, "jira_api_token": token or jira.api_token})


def test_adf_paragraphs_and_line_breaks() -> None:
    assert adf("one\ntwo\n\nthree") == {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "one"},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "two"},
                ],
            },
            {"type": "paragraph", "content": [{"type": "text", "text": "three"}]},
        ],
    }


def test_jira_create_update_and_comment(jira: JiraDouble) -> None:
    c = jira_ctx(jira)
    made = call(
        "jira.create_issue",
        {
            "project": "SEC",
            "summary": "Leaked credential for bob",
            "description": "Found in a paste.\n\nAccount suspended.",
            "issue_type": "Incident",
            "labels": ["credential leak"],
            "priority": "High",
        },
        c,
    )
    assert made["key"] == "SEC-1" and made["url"] == f"{jira.url}/browse/SEC-1"
    create = jira.requests[0]
    assert create.method == "POST" and create.path == "/rest/api/3/issue"
    raw = base64.b64encode(f"{jira.email}:{jira.api_token}".encode()).decode()
    assert create.headers["authorization"] == f"Basic {raw}"
    fields = create.json()["fields"]
    assert fields["project"] == {"key": "SEC"} and fields["issuetype"] == {"name": "Incident"}
    assert fields["labels"] == ["credential-leak"] and fields["priority"] == {"name": "High"}
    assert fields["description"] == adf("Found in a paste.\n\nAccount suspended.")

    out = call("jira.update_issue", {"key": "SEC-1", "summary": "Leaked credential for bob (contained)"}, c)
    assert out == {"key": "SEC-1", "updated": ["summary"]}
    assert jira.requests[-1].method == "PUT" and jira.requests[-1].path == "/rest/api/3/issue/SEC-1"
    assert jira.issues["SEC-1"]["fields"]["summary"] == "Leaked credential for bob (contained)"
    assert jira.requests[-1].query == {}
    call("jira.update_issue", {"key": "SEC-1", "description": "Contained.", "notify_users": False}, c)
    assert jira.requests[-1].query == {"notifyUsers": ["false"]}
    assert jira.issues["SEC-1"]["fields"]["description"] == adf("Contained.")

    note = call("jira.comment_issue", {"key": "SEC-1", "body": "Password reset done."}, c)
    assert note["comment_id"] and jira.requests[-1].path == "/rest/api/3/issue/SEC-1/comment"
    assert jira.comments["SEC-1"][0]["body"] == adf("Password reset done.")


def test_jira_errors_carry_the_vendor_messages(jira: JiraDouble) -> None:
    with pytest.raises(ActionError, match=r"^jira: 401 Client must be authenticated"):
        call("jira.create_issue", {"project": "SEC", "summary": "x"}, jira_ctx(jira, "wrong-token"))
    with pytest.raises(ActionError, match=r"^jira: 400 project: valid project is required$"):
        call("jira.create_issue", {"project": "NOPE", "summary": "x"}, jira_ctx(jira))
    with pytest.raises(ActionError, match=r"^jira: 404 Issue does not exist or you do not have permission"):
        call("jira.comment_issue", {"key": "SEC-404", "body": "hello"}, jira_ctx(jira))
    with pytest.raises(ActionError, match="nothing to update"):
        call("jira.update_issue", {"key": "SEC-1"}, jira_ctx(jira))
    assert jira.issues == {}


def test_jira_429_with_retry_after_then_success(jira: JiraDouble) -> None:
    jira.throttle(1)
    made = call("jira.create_issue", {"project": "SEC", "summary": "after the limit"}, jira_ctx(jira))
    assert made["key"] == "SEC-1" and len(jira.requests) == 2 and len(jira.issues) == 1


# ------------------------------------------------------------------------------------- ServiceNow


@pytest.fixture
def snow() -> Iterator[ServiceNowDouble]:
    with serve(ServiceNowDouble()) as double:
        assert isinstance(double, ServiceNowDouble)
        yield double


def snow_ctx(snow: ServiceNowDouble, password: str | None = None) -> ActionContext:
    return ctx(
        snow.url, {"servicenow_username": snow.username, "servicenow_password": password or snow.password}
    )


def test_servicenow_create_and_update_incident(snow: ServiceNowDouble) -> None:
    c = snow_ctx(snow)
    made = call(
        "servicenow.create_incident",
        {
            "short_description": "Ransomware on ws-17",
            "urgency": 1,
            "impact": 1,
            "category": "security",
            "fields": {"u_bastion_case": "7"},
        },
        c,
    )
    assert made["number"] == "INC0010001" and len(made["sys_id"]) == 32 and made["state"] == "1"
    seen = snow.requests[0]
    assert seen.method == "POST" and seen.path == "/api/now/table/incident"
    raw = base64.b64encode(f"{snow.username}:{snow.password}".encode()).decode()
    assert seen.headers["authorization"] == f"Basic {raw}" and seen.headers["accept"] == "application/json"
    assert seen.json() == {
        "u_bastion_case": "7",
        "short_description": "Ransomware on ws-17",
        "urgency": "1",
        "impact": "1",
        "category": "security",
    }
    out = call(
        "servicenow.update_incident",
        {
            "sys_id": made["sys_id"],
            "state": 6,
            "close_code": "Solved (Permanently)",
            "close_notes": "Reimaged",
        },
        c,
    )
    assert out["state"] == "6" and out["updated"] == ["close_code", "close_notes", "state"]
    assert (
        snow.requests[-1].method == "PATCH"
        and snow.requests[-1].path == f"/api/now/table/incident/{made['sys_id']}"
    )
    assert snow.incidents[made["sys_id"]]["close_notes"] == "Reimaged"


def test_servicenow_errors_carry_message_and_detail(snow: ServiceNowDouble) -> None:
    with pytest.raises(
        ActionError, match=r"^servicenow: 401 User Not Authenticated: Required to provide Auth information$"
    ):
        call("servicenow.create_incident", {"short_description": "x"}, snow_ctx(snow, "wrong"))
    with pytest.raises(ActionError, match=r"^servicenow: 404 No Record found: Record doesn't exist"):
        call("servicenow.update_incident", {"sys_id": "0" * 32, "work_notes": "x"}, snow_ctx(snow))
    with pytest.raises(ActionError, match="urgency must be 1, 2 or 3"):
        call("servicenow.create_incident", {"short_description": "x", "urgency": 5}, snow_ctx(snow))
    assert snow.incidents == {}


def test_servicenow_429_with_retry_after_then_success(snow: ServiceNowDouble) -> None:
    snow.throttle(1)
    made = call("servicenow.create_incident", {"short_description": "after the limit"}, snow_ctx(snow))
    assert made["number"] == "INC0010001" and len(snow.requests) == 2


# ---------------------------------------------------------------------------------------- TheHive


@pytest.fixture
def hive() -> Iterator[TheHiveDouble]:
    with serve(TheHiveDouble()) as double:
        assert isinstance(double, TheHiveDouble)
        yield double


def test_thehive_alert_and_case(hive: TheHiveDouble) -> None:
    c = ctx(hive.url, {"thehive_api_key": hive.api_key}, idempotency_key="run-5:alert")
    alert = call(
        "thehive.create_alert",
        {
            "title": "Credential leak: bob",
            "description": "Found in a paste",
            "severity": "high",
            "tags": ["leak"],
            "observables": [{"dataType": "mail", "data": "bob@acme.example.org"}],
        },
        c,
    )
    assert alert["id"].startswith("~") and alert["status"] == "New"
    sent = hive.requests[0]
    assert sent.path == "/api/v1/alert" and sent.headers["authorization"] == f"Bearer {hive.api_key}"
    doc = sent.json()
    assert doc["severity"] == 3 and doc["tlp"] == 2 and doc["sourceRef"] == alert["source_ref"]
    assert doc["type"] == "bastion" and doc["observables"][0]["dataType"] == "mail"
    assert alert["created"] is True
    # The same step retried derives the same sourceRef: TheHive refuses the duplicate (400 CreateError)
    # and the action finds the alert it created the first time through the query API.
    again = call("thehive.create_alert", {"title": "Credential leak: bob", "description": "again"}, c)
    assert again == {"id": alert["id"], "source_ref": alert["source_ref"], "status": "New", "created": False}
    assert [r.path for r in hive.requests[1:]] == ["/api/v1/alert", "/api/v1/query"]
    assert hive.requests[2].query == {"name": ["alerts"]}
    assert len(hive.alerts) == 1
    # An explicit sourceRef that exists for another source is a different alert.
    other = call(
        "thehive.create_alert",
        {"title": "t", "description": "d", "source": "siem", "source_ref": alert["source_ref"]},
        c,
    )
    assert other["created"] is True and other["id"] != alert["id"]

    case = call(
        "thehive.create_case",
        {
            "title": "Leaked credential",
            "description": "Suspended",
            "severity": 4,
            "tasks": ["Reset password"],
        },
        c,
    )
    assert case["number"] == 1 and hive.requests[-1].path == "/api/v1/case"
    assert hive.cases[0]["tasks"] == [{"title": "Reset password"}] and hive.cases[0]["severity"] == 4


def test_thehive_errors(hive: TheHiveDouble) -> None:
    with pytest.raises(ActionError, match=r"^thehive: 401 AuthenticationError: Authentication failure$"):
        call(
            "thehive.create_case",
            {"title": "t", "description": "d"},
            ctx(hive.url, {"thehive_api_key": "wrong"}),
        )
    good = ctx(hive.url, {"thehive_api_key": hive.api_key})
    with pytest.raises(
        ActionError, match=r"^thehive: 400 AttributeCheckingError: Attribute description is missing"
    ):
        call("thehive.create_case", {"title": "t", "description": ""}, good)
    with pytest.raises(ActionError, match="severity must be 1-4"):
        call("thehive.create_case", {"title": "t", "description": "d", "severity": "urgent"}, good)
    assert hive.cases == []


def test_ticketing_actions_declare_impact_secrets_and_connection() -> None:
    expected = {
        "jira.create_issue": ("jira_email", "jira_api_token"),
        "jira.update_issue": ("jira_email", "jira_api_token"),
        "jira.comment_issue": ("jira_email", "jira_api_token"),
        "servicenow.create_incident": ("servicenow_username", "servicenow_password"),
        "servicenow.update_incident": ("servicenow_username", "servicenow_password"),
        "thehive.create_alert": ("thehive_api_key",),
        "thehive.create_case": ("thehive_api_key",),
    }
    for action_id, secrets in expected.items():
        defn = get_action(action_id)
        assert defn is not None and defn.impact == "low" and defn.secrets == secrets
        assert defn.connection == action_id.split(".")[0]
        documented = {k for k, v in defn.schema["properties"].items() if v.get("description")}
        assert documented == set(defn.schema["properties"]), action_id


def test_the_tenants_connection_and_vault_secrets_reach_the_vendor(
    tmp_path: Path, snow: ServiceNowDouble
) -> None:
    from bastion.connectors.call import call_action
    from bastion.tenancy.connections import set_connection
    from bastion.tenancy.secrets import SecretError, set_secret

    db = Database(f"sqlite:///{tmp_path / 'bastion.db'}")
    db.migrate()
    try:
        tenant, _ = create_tenant(db, "acme")
        set_connection(
            db, tenant.id, "servicenow", {"base_url": snow.url, "allow_private": True}, actor="admin"
        )
        set_secret(db, tenant.id, "servicenow_username", snow.username, actor="admin")
        inputs = {"short_description": "Phishing reported by carol"}
        with pytest.raises(SecretError, match="servicenow_password"):
            asyncio.run(
                call_action(db, tenant.id, "servicenow.create_incident", inputs, caller="sla", key="k")
            )
        assert snow.requests == []
        set_secret(db, tenant.id, "servicenow_password", snow.password, actor="admin")
        out = asyncio.run(
            call_action(db, tenant.id, "servicenow.create_incident", inputs, caller="sla", key="k")
        )
        assert out["number"] == "INC0010001"
        assert snow.incidents[out["sys_id"]]["short_description"] == "Phishing reported by carol"
    finally:
        db.dispose()


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    from bastion.connectors.vendor_http import retry_delay

    assert retry_delay({"Retry-After": "7"}, 0) == 7.0
    assert retry_delay({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, 0, now=1445412480.0) == 30.0
    assert retry_delay({"Retry-After": "soon"}, 1) == 2.0  # unreadable: the backoff
    assert retry_delay({}, 0) == 1.0
