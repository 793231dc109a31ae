"""Numbers no store column holds, and payloads of the wrong shape, through the real server: each is a 400
or 404 that names the field, never a 500, and what was accepted before is still there."""

from __future__ import annotations

import httpx
import pytest
from tests.conftest import RunningServer

from bastion.store.workflows import WorkflowRepository
from bastion.tenancy.service import create_tenant

HUGE = "99999999999999999999999999"
WORKFLOW = (
    "id: wf1\ninputs: {n: {type: integer}}\nsteps:\n  - {id: a, action: core.log, with: {message: hi}}\n"
)


@pytest.fixture
def key(server: RunningServer) -> str:
    return create_tenant(server.db, "acme")[1]


def _error(r: httpx.Response, status: int = 400) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    return str(r.json()["error"])


def test_alert_times_past_the_year_9999_are_400_and_nothing_accepted_is_lost(
    server: RunningServer, key: str
) -> None:
    with server.client(key) as c:
        kept = c.post(
            "/api/v1/alerts", json={"title": "kept", "source": "edr", "time": "2026-11-30T09:00:00Z"}
        )
        assert kept.status_code == 200, kept.text
        assert _error(c.post("/api/v1/alerts", json={"title": "t", "source": "s", "time": 1e30})) == (
            "time: 1e+30 is out of range: a time must fall between the years 1 and 9999"
        )
        for source, doc, field in (
            ("generic", {"title": "t", "source": "s", "time": 1e30}, "time"),
            ("elastic", {"kibana.alert.rule.name": "r", "@timestamp": 1e30}, "@timestamp"),
            ("sentinel", {"AlertName": "r", "TimeGenerated": 1e30}, "TimeGenerated"),
            ("defender", {"title": "r", "createdDateTime": 1e30}, "createdDateTime"),
            ("microsoft", {"title": "r", "createdDateTime": 1e30}, "createdDateTime"),
        ):
            assert _error(c.post(f"/api/v1/webhooks/{source}", json=doc)).startswith(
                f"{field}: 1e+30 is out of"
            ), source
        assert [a["title"] for a in c.get("/api/v1/alerts").json()["alerts"]] == ["kept"]


def test_alert_list_times_and_cursors_past_64_bits_are_400(server: RunningServer, key: str) -> None:
    with server.client(key) as c:
        assert _error(c.get("/api/v1/alerts", params={"start": HUGE})) == (
            f"start: {HUGE!r} is out of range: a time must fall between the years 1 and 9999"
        )
        assert _error(c.get("/api/v1/alerts", params={"end": "-99999999999d"})).startswith(
            "end: '-99999999999d'"
        )
        for cursor in (f"{HUGE}:x", f"-{HUGE}:x", "--5:x", "²:x"):
            assert _error(c.get("/api/v1/alerts", params={"cursor": cursor})) == (
                f"cursor: {cursor!r} is not a cursor this API returned"
            )
        assert c.get("/api/v1/alerts", params={"cursor": "9223372036854775807:x"}).json()["alerts"] == []


def test_a_webhook_field_of_the_wrong_type_is_400_and_the_alerts_stay_readable(
    server: RunningServer, key: str
) -> None:
    """A Graph alert whose description was an object was stored, and every alert list after it was a 500."""
    with server.client(key) as c:
        kept = c.post("/api/v1/webhooks/defender", json={"title": "kept", "id": 5, "description": "d"})
        assert kept.status_code == 200, kept.text
        assert _error(c.post("/api/v1/webhooks/defender", json={"title": "a", "description": {"x": 1}})) == (
            "description: expected a string, got an object"
        )
        assert _error(c.post("/api/v1/webhooks/defender", json={"title": "b", "id": {"x": 1}})) == (
            "id: expected a string, got an object"
        )
        assert _error(c.post("/api/v1/webhooks/sentinel", json={"AlertName": "c", "SystemAlertId": [1]})) == (
            "SystemAlertId: expected a string, got an array"
        )
        listed = c.get("/api/v1/alerts")
        assert listed.status_code == 200, listed.text
        assert [(a["title"], a["external_id"]) for a in listed.json()["alerts"]] == [("kept", "5")]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"tables": [{"columns": 5, "rows": 5}]},
            "tables[0].columns: expected an array of columns, got a number",
        ),
        (
            {"tables": [5]},
            "tables[0]: expected a query result table (an object with columns and rows), got a number",
        ),
        (
            {"tables": [{"columns": [], "rows": [5]}]},
            "tables[0].rows[0]: expected a row (an array of values)",
        ),
    ],
)
def test_webhook_query_results_of_the_wrong_shape_are_400(
    server: RunningServer, key: str, payload: dict[str, object], message: str
) -> None:
    with server.client(key) as c:
        for source in ("elastic", "sentinel"):
            assert _error(c.post(f"/api/v1/webhooks/{source}", json=payload)).startswith(message)
        assert _error(c.post("/api/v1/webhooks/defender", json={"title": "a", "mitreTechniques": 5})) == (
            "mitreTechniques: expected a list, got a number"
        )


def test_run_and_workflow_numbers_are_bounded_and_missing_versions_named(
    server: RunningServer, key: str
) -> None:
    with server.client(key) as c:
        assert c.post("/api/v1/workflows", content=WORKFLOW).status_code == 201
        assert _error(c.get("/api/v1/runs", params={"offset": str(2**63)})) == (
            "query.offset: Input should be less than or equal to 9223372036854775807"
        )
        assert c.get("/api/v1/runs", params={"offset": str(2**63 - 1)}).json() == {"runs": []}
        assert _error(c.get("/api/v1/workflows/w", params={"version": str(2**63)})) == (
            "query.version: Input should be less than or equal to 9223372036854775807"
        )
        assert _error(c.get("/api/v1/workflows/wf1", params={"version": "0"})) == (
            "query.version: Input should be greater than or equal to 1"
        )
        assert _error(c.get("/api/v1/workflows/wf1", params={"version": "5"}), 404) == (
            "workflow wf1 has no version 5; the latest is 1"
        )
        assert _error(c.get("/api/v1/workflows/nope", params={"version": "5"}), 404) == "no workflow nope"
        assert c.get("/api/v1/workflows/wf1", params={"version": "1"}).json()["version"] == 1

        runs = "/api/v1/workflows/wf1/runs"
        assert _error(c.post(runs, json={"inputs": {}, "version": 2**64 - 1})) == (
            "version: Input should be less than or equal to 9223372036854775807"
        )
        assert _error(c.post(runs, json={"inputs": {}, "version": 99}), 404) == (
            "workflow 'wf1' has no version 99; the latest is 1"
        )
        assert (
            _error(c.post(runs, json={"input": {"n": 1}})) == "input: unknown key; allowed: inputs, version"
        )
        assert (
            _error(c.post(runs, json={"inputs": {}, "version": True}))
            == "version: Input should be a valid integer"
        )
        assert _error(c.post(runs, json={"inputs": 5})) == "inputs: Input should be a valid dictionary"
        assert _error(c.post(runs, json=[1])).startswith("body must be")
        assert _error(c.post("/api/v1/workflows/nope/runs", json={"inputs": {}}), 404) == (
            "no workflow 'nope' in this tenant"
        )
        assert c.get("/api/v1/runs").json() == {"runs": []}


def test_a_version_past_64_bits_is_no_stored_version(server: RunningServer, key: str) -> None:
    """The store answers None for it (as for any version it lacks) instead of overflowing the driver,
    whoever asks: the CLI's ``id@N`` and the console's ``?version=`` reach it without the API's bounds."""
    with server.client(key) as c:
        assert c.post("/api/v1/workflows", content=WORKFLOW).status_code == 201
    with server.db.read() as conn:
        acme = conn.exec_driver_sql("SELECT tenant_id FROM workflow_defs").scalar_one()
        repo = WorkflowRepository(conn, acme)
        for version in (2**63, 2**64 - 1, -(2**63) - 1, 0):
            assert repo.definition("wf1", version) is None
        assert repo.definition("wf1", 1) is not None
