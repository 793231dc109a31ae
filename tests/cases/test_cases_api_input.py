"""Bad input to the cases API gets a 400 that names it, never a 500 or a wrong answer: page bounds, search
text, case numbers, observable values, and attachment names and types (which a download must serve as a
safe header whatever was stored). Real server on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote

import httpx
import pytest

from bastion.store import Database, TenantScope
from bastion.tenancy.service import create_tenant
from bastion.triage.policy import save_policy
from tests.conftest import RunningServer, start_server


@pytest.fixture
def api(db: Database) -> Iterator[tuple[RunningServer, str, str]]:
    """A tenant whose triage opens no case by itself: the tests make every case."""
    running, srv, thread = start_server(db)
    tenant, key = create_tenant(db, "acme")
    with db.write() as conn:
        save_policy(conn, tenant.id, {"correlation": {"open_case_score": 101}}, "test")
    yield running, tenant.id, key
    srv.should_exit = True
    thread.join(10)
    running.queue.close()


def _case(c: httpx.Client, title: str) -> dict:  # type: ignore[type-arg]
    r = c.post("/api/v1/cases", json={"title": title})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_list_bounds_offset_and_refuses_control_characters_in_q(api: tuple[RunningServer, str, str]) -> None:
    server, _, key = api
    with server.client(key) as c:
        _case(c, "Phishing wave")
        r = c.get("/api/v1/cases", params={"offset": 2**63})
        assert r.status_code == 400 and "offset" in r.json()["error"], r.text
        r = c.get("/api/v1/cases", params={"offset": 2**63 - 1})
        assert r.status_code == 200 and r.json()["cases"] == [], r.text
        r = c.get("/api/v1/cases", params={"q": "\x00"})
        assert r.status_code == 400 and "q" in r.json()["error"], r.text
        assert [x["title"] for x in c.get("/api/v1/cases", params={"q": "PHISH"}).json()["cases"]] == [
            "Phishing wave"
        ]


def test_store_search_with_a_nul_matches_no_case(api: tuple[RunningServer, str, str]) -> None:
    server, tenant, key = api
    with server.client(key) as c:
        _case(c, "Phishing wave")
    with server.db.read() as conn:  # the console and the CLI search through the same query
        assert TenantScope(conn, tenant).cases.page(q="\x00") == ([], 0)


def test_only_ascii_digits_name_a_case_number(api: tuple[RunningServer, str, str]) -> None:
    server, _, key = api
    with server.client(key) as c:
        case = _case(c, "One")
        assert c.get("/api/v1/cases/1").json()["id"] == case["id"]
        assert c.get("/api/v1/cases/%231").json()["id"] == case["id"]
        for ref in ("%EF%BC%91", "%D9%A1", "%23%EF%BC%91"):  # full-width 1, Arabic-Indic 1, #full-width 1
            r = c.get(f"/api/v1/cases/{ref}")
            assert r.status_code == 404, (ref, r.text)


def test_observables_are_validated_like_an_alerts(api: tuple[RunningServer, str, str]) -> None:
    server, _, key = api
    with server.client(key) as c:
        case = _case(c, "Intel")
        url = f"/api/v1/cases/{case['id']}/observables"
        for kind, value in (("ipv4", "999.9.9.9"), ("domain", "x"), ("sha256", "zz"), ("email", "nope")):
            r = c.post(url, json={"type": kind, "value": value})
            assert r.status_code == 400, r.text
            assert "observables[0].value" in r.json()["error"] and value in r.json()["error"]
        r = c.post(
            url,
            json={
                "observables": [{"type": "domain", "value": "Evil.Example."}, {"type": "ipv4", "value": "x"}]
            },
        )
        assert r.status_code == 400 and "observables[1].value" in r.json()["error"]
        assert c.get(f"/api/v1/cases/{case['id']}").json()["observables"] == []  # none of the batch stored
        r = c.post(url, json={"observables": [{"type": "domain", "value": "Evil.Example."}]})
        assert r.json() == {"added": 1}
        stored = c.get(f"/api/v1/cases/{case['id']}").json()["observables"]
        assert stored == [{"type": "domain", "value": "evil.example"}]  # the canonical form, as alerts


def _filename(disposition: str) -> str:
    """The name a browser saves a download as: ``filename*`` (RFC 6266) over ``filename``."""
    params = dict(p.strip().split("=", 1) for p in disposition.split(";")[1:])
    if "filename*" in params:
        charset, _, encoded = params["filename*"].split("'", 2)
        assert charset == "UTF-8"
        return unquote(encoded)
    return params["filename"].strip('"')


def test_attachment_names_and_types_download_as_safe_headers(api: tuple[RunningServer, str, str]) -> None:
    server, _, key = api
    with server.client(key) as c:
        case = _case(c, "Evidence")
        url = f"/api/v1/cases/{case['id']}/attachments"
        euro = c.post(url, params={"name": "€.txt"}, content=b"hi", headers={"Content-Type": "text/plain"})
        assert euro.status_code == 201, euro.text
        html = c.post(
            url,
            params={"name": "page.html"},
            content=b"<script>1</script>",
            headers={"Content-Type": "text/html"},
        )
        assert html.status_code == 201 and html.json()["content_type"] == "text/html"
        odd = c.post(url, files={"file": ("notes.txt", b"notes", "text/€plain")})
        assert odd.status_code == 201 and odd.json()["content_type"] == "text/plain", odd.text  # by name
        for att, name in ((euro, "€.txt"), (html, "page.html"), (odd, "notes.txt")):
            got = c.get(f"{url}/{att.json()['id']}")
            assert got.status_code == 200, got.text
            assert got.headers["content-type"] == "application/octet-stream"  # never rendered inline
            assert got.headers["content-disposition"].startswith("attachment;")
            assert got.headers["x-content-type-options"] == "nosniff"
            assert _filename(got.headers["content-disposition"]) == name
        assert c.get(f"{url}/{euro.json()['id']}").content == b"hi"


def test_attachment_names_with_control_characters_are_refused(api: tuple[RunningServer, str, str]) -> None:
    server, _, key = api
    with server.client(key) as c:
        case = _case(c, "Evidence")
        url = f"/api/v1/cases/{case['id']}/attachments"
        for name in ("\x00", "a\x00b.txt", "a\x1bb.txt", "two\r\nlines.txt"):
            r = c.post(url, params={"name": name}, content=b"hi", headers={"Content-Type": "text/plain"})
            assert r.status_code == 400 and "control characters" in r.json()["error"], (name, r.text)
        r = c.post(url, content=_multipart("a\x07b.txt", "text/plain"), headers=_FORM)
        assert r.status_code == 400 and "control characters" in r.json()["error"], r.text
        assert c.get(f"/api/v1/cases/{case['id']}").json()["attachments"] == []
        r = c.post(url, content=_multipart("ok.bin", "text/plain\x00x"), headers=_FORM)
        assert r.status_code == 201, r.text
        assert r.json()["content_type"] == "application/octet-stream"  # not the declared one
        got = c.get(f"{url}/{r.json()['id']}")
        assert got.status_code == 200 and got.content == b"hi"


_FORM = {"Content-Type": "multipart/form-data; boundary=XyZ"}


def _multipart(filename: str, content_type: str) -> bytes:
    """A form with one file part, written by hand: httpx percent-encodes control characters in names."""
    return (
        f'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\nhi\r\n--XyZ--\r\n"
    ).encode()


def test_an_attachment_stored_with_an_unsafe_name_still_downloads(
    api: tuple[RunningServer, str, str],
) -> None:
    server, tenant, key = api
    with server.client(key) as c:
        case = _case(c, "Evidence")
    with server.db.write() as conn:  # as stored before names were checked
        att = TenantScope(conn, tenant).cases.add_attachment(
            case["id"],
            name='x"\r\n€.html',
            content_type="text/€html\r\nX-Evil: 1",
            data=b"<b>hi</b>",
            sha256="0" * 64,
            author="old",
        )
    with server.client(key) as c:
        got = c.get(f"/api/v1/cases/{case['id']}/attachments/{att.id}")
    assert got.status_code == 200 and got.content == b"<b>hi</b>"
    assert got.headers["content-type"] == "application/octet-stream" and "x-evil" not in got.headers
    assert _filename(got.headers["content-disposition"]) == 'x"\r\n€.html'


def test_the_service_checks_observables_for_every_caller(api: tuple[RunningServer, str, str]) -> None:
    from bastion.cases.errors import CaseError
    from bastion.cases.service import add_observables
    from bastion.model import Observable, ObservableType

    server, tenant, key = api
    with server.client(key) as c:
        case = _case(c, "By hand")
    with server.db.write() as conn:  # the CLI and the cases.add_observable action call it like this
        scope = TenantScope(conn, tenant)
        with pytest.raises(CaseError, match=r"observables\[0\]\.value: '999\.1\.1\.1' is not a valid ipv4"):
            add_observables(scope, "test", case["id"], [Observable(ObservableType.IPV4, "999.1.1.1")])
        assert add_observables(scope, "test", case["id"], [Observable(ObservableType.IPV4, "10.0.0.1")]) == 1
