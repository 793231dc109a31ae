"""The failure classifier: live exceptions by type and status, stored errors by the shapes our own code
writes them in (vendor errors, ``core.http_request``, the feed poller, the engine's ``Name: message``)."""

from __future__ import annotations

import httpx
import pytest

from bastion.agents.tools.diagnose import classify_error, classify_exception, classify_status
from bastion.connectors.core import SSRFError
from bastion.connectors.vendor_http import VendorError, VendorRateLimited
from bastion.tenancy.secrets import SecretError


@pytest.mark.parametrize(
    ("status", "cause"),
    [(401, "auth"), (403, "permission"), (429, "rate_limit"), (400, "bad_input"), (422, "bad_input"),
     (404, "vendor_api_change"), (410, "vendor_api_change"), (503, "network")],
)  # fmt: skip
def test_status_codes(status: int, cause: str) -> None:
    assert classify_status(status)[0] == cause


def test_a_404_for_a_missing_object_or_a_feed_url_is_bad_input() -> None:
    assert classify_status(404, detail="E0000007 Not found: Resource not found: x (User)")[0] == "bad_input"
    assert classify_status(404, context="feed")[0] == "bad_input"


def test_live_exceptions_by_type() -> None:
    req = httpx.Request("GET", "http://127.0.0.1:9/x")
    assert classify_exception(VendorError("okta", 401, "E0000011", "Invalid token provided")).cause == "auth"
    limited = classify_exception(VendorRateLimited("okta", 429, "E0000047", "slow down", None, 120.0))
    assert limited.cause == "rate_limit" and limited.transient and limited.status == 429
    assert classify_exception(httpx.ConnectError("refused", request=req)).cause == "network"
    assert classify_exception(httpx.ReadTimeout("slow", request=req)).transient
    assert classify_exception(SecretError("okta.get_user needs secret(s) okta_api_token")).cause == "auth"
    assert classify_exception(KeyError("id")).cause == "our_bug"
    assert classify_exception(AttributeError("x")).cause == "our_bug"
    assert classify_exception(SSRFError("refused URL")).cause == "network"
    response = httpx.Response(404, request=req)
    feed_404 = classify_exception(
        httpx.HTTPStatusError("404", request=req, response=response), context="feed"
    )
    assert feed_404.cause == "bad_input" and feed_404.status == 404


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("okta: 401 E0000011 Invalid token provided", "auth"),
        ("entra: 403 Authorization_RequestDenied Insufficient privileges to complete it.", "permission"),
        ("okta: 429 E0000047 API call exceeded rate limit due to too many requests. (rate limited: gave up "
         "after 4 attempt(s); the vendor asks to retry in 1s)", "rate_limit"),
        ("okta: GET http://127.0.0.1:9/api/v1/users/x failed: ConnectError: [Errno 111] Connection refused",
         "network"),
        ("POST http://127.0.0.1:9/hook answered 422: b'{\"error\": \"bad field\"}'", "bad_input"),
        ("crowdstrike: 404 no error body", "vendor_api_change"),
        ("KeyError: 'resources'", "our_bug"),
        ("TypeError: 'NoneType' object is not subscriptable", "our_bug"),
        ("SecretError: okta.get_user needs secret(s) okta_api_token (`bastion secret set`)", "auth"),
        ("HTTPStatusError: Client error '404 Not Found' for url 'http://127.0.0.1:9/feed.csv'", "bad_input"),
        ("ConnectError: [Errno 111] Connection refused", "network"),
        ("action okta.get_user needs input 'user'", "bad_input"),
        ("", "unknown"),
    ],
)  # fmt: skip
def test_stored_errors(text: str, cause: str) -> None:
    context = "feed" if "feed.csv" in text else "vendor"
    assert classify_error(text, context=context).cause == cause
