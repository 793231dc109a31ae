"""Classifying why something failed: a workflow step, a connector's health probe, an intel feed poll.

The troubleshooting agent and the health tools share this, so a cause is named the same way wherever it
is found. Two inputs are possible:

* a live exception (a health probe made just now): classified by its TYPE and structured fields
  (``VendorError.status``, ``httpx`` transport errors, ``SecretError``), never by its message;
* a stored error (a step record, a feed's ``last_error``): only the text was kept, so its structured
  parts are read back out of the shapes our own code writes: ``<vendor>: <status> <code> <message>``
  (:class:`~bastion.connectors.vendor_http.VendorError`), ``... answered <status>``
  (``core.http_request``), ``Client error '<status> ...'`` (``httpx`` in the feed poller), and the
  ``<ExceptionName>: ...`` prefix the engine and the poller put on every other exception.

The causes are a closed set (:data:`CAUSES`); ``unknown`` is returned only when nothing in the error
points anywhere, so it is never confused with a decision.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = [
    "CAUSES",
    "Cause",
    "Diagnosis",
    "classify_error",
    "classify_exception",
    "classify_status",
]

Cause = Literal[
    "auth", "permission", "rate_limit", "network", "bad_input", "vendor_api_change", "our_bug", "unknown"
]
CAUSES: tuple[str, ...] = (
    "auth",
    "permission",
    "rate_limit",
    "network",
    "bad_input",
    "vendor_api_change",
    "our_bug",
    "unknown",
)
# Causes a plain retry may cure (the condition passes by itself).
TRANSIENT: frozenset[str] = frozenset({"rate_limit", "network"})

# Exception type names, grouped by what they mean. Transport failures of httpx and the OS:
_NETWORK_EXC = frozenset(
    {
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "TimeoutException",
        "NetworkError",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "ProxyError",
        "TimeoutError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "ConnectionAbortedError",
        "ConnectionError",
        "gaierror",
        "LDAPSocketOpenError",
        "LDAPSocketReceiveError",
        "LDAPSocketSendError",
        "LDAPSessionTerminatedByServerError",
        "SSLError",
    }
)
# Programming errors: in our code they mean a bug (the engine records them as "<Name>: ...").
_BUG_EXC = frozenset(
    {
        "KeyError",
        "TypeError",
        "AttributeError",
        "IndexError",
        "NameError",
        "UnboundLocalError",
        "AssertionError",
        "ZeroDivisionError",
        "RecursionError",
        "NotImplementedError",
        "ImportError",
        "ModuleNotFoundError",
    }
)
_AUTH_EXC = frozenset({"SecretError", "LDAPInvalidCredentialsResult", "LDAPBindError", "InvalidToken"})
_PERMISSION_EXC = frozenset({"LDAPInsufficientAccessRightsResult", "PermissionError"})
_BAD_INPUT_EXC = frozenset(
    {"ExpressionError", "ValueError", "UnsupportedProtocol", "InvalidURL", "LDAPNoSuchObjectResult"}
)
_SHAPE_EXC = frozenset({"JSONDecodeError", "FeedError", "DecodeError", "ValidationError"})

_VENDOR = re.compile(r"^(?P<vendor>[a-z][a-z0-9_.-]*): (?P<status>[1-5]\d\d)(?: (?P<rest>.*))?$", re.S)
_ANSWERED = re.compile(r"\banswered (?P<status>[1-5]\d\d)\b")
_HTTPX_STATUS = re.compile(r"error '(?P<status>[1-5]\d\d) ")
_HTTP_WORD = re.compile(r"\bHTTP (?P<status>[1-5]\d\d)\b")
_EXC_NAME = re.compile(
    r"(?:^|: |\()(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:Error|Exception|Timeout|Result|gaierror))\b"
)
_NET_TEXT = re.compile(
    r"connection refused|timed out|name or service not known|nodename nor servname|"
    r"temporary failure in name resolution|cannot resolve host|network is unreachable|no route to host",
    re.I,
)
_SHAPE_TEXT = re.compile(
    r"unexpected (?:response|answer|shape|body)|answered without|not valid json|is not a json|"
    r"missing from the response|no '[a-z_]+' in the (?:response|answer)",
    re.I,
)
_NOT_FOUND_OBJECT = re.compile(
    r"resource not found|not found: |does not exist|no such (?:user|object|device|machine|agent)|"
    r"resourcenotfound|request_resourcenotfound|e0000007",
    re.I,
)
_CONFIG = re.compile(r"no connection '|has no base_url|needs input '|has no input '|must be .*, not ", re.I)
_SECRET_TEXT = re.compile(r"needs secret\(s\)|secret '[^']+' is not set|api key\) is not set", re.I)
_SSRF_TEXT = re.compile(r"refused url .*(loopback|private|reserved)", re.I)


@dataclass(frozen=True)
class Diagnosis:
    """One classified failure: the cause, the HTTP status and exception name it rests on (when there
    were any), the evidence in words, and whether waiting and retrying may cure it."""

    cause: str
    evidence: str
    status: int | None = None
    exception: str | None = None
    transient: bool = False
    certainty: int = 50  # 0-100: how directly the evidence names the cause

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify_status(status: int, *, context: str = "vendor", detail: str = "") -> tuple[str, str]:
    """(cause, why) for an HTTP status. ``context`` is ``vendor`` (a documented API path: a 404 there
    means the API moved, unless the body says the named object is missing) or ``feed`` (a URL the
    tenant configured: a 404 means the URL is wrong)."""
    if status == 401:
        return "auth", "401 Unauthorized: the credential was refused"
    if status == 403:
        return "permission", "403 Forbidden: authenticated, but not allowed to do this"
    if status == 429:
        return "rate_limit", "429 Too Many Requests: the vendor is rate limiting"
    if status in (400, 422):
        return "bad_input", f"{status}: the request was refused as invalid"
    if status in (404, 410):
        if context == "feed":
            return "bad_input", f"{status}: nothing at the feed URL (wrong or moved URL)"
        if status == 404 and _NOT_FOUND_OBJECT.search(detail):
            return "bad_input", "404 for the object named: it does not exist at the vendor"
        return "vendor_api_change", f"{status} on the connector's documented path: the vendor API changed"
    if status in (405, 406, 415, 501):
        return "vendor_api_change", f"{status}: the vendor no longer accepts this request form"
    if status in (407,):
        return "network", "407: a proxy asks for authentication"
    if 500 <= status < 600:
        return "network", f"{status}: the vendor's service failed or is unavailable"
    if 400 <= status < 500:
        return "bad_input", f"{status}: the vendor refused the request"
    return "unknown", f"unexpected status {status}"


def _by_name(name: str) -> str | None:
    if name in _NETWORK_EXC:
        return "network"
    if name in _AUTH_EXC:
        return "auth"
    if name in _PERMISSION_EXC:
        return "permission"
    if name in _BUG_EXC:
        return "our_bug"
    if name in _SHAPE_EXC:
        return "vendor_api_change"
    if name in _BAD_INPUT_EXC:
        return "bad_input"
    return None


def classify_exception(exc: BaseException, *, context: str = "vendor") -> Diagnosis:
    """Classify an exception caught just now, by its type and structured attributes."""
    names = [k.__name__ for k in type(exc).__mro__]
    name = names[0]
    status = getattr(exc, "status", None)
    if not isinstance(status, int):
        response = getattr(exc, "response", None)  # httpx.HTTPStatusError
        status = getattr(response, "status_code", None) if response is not None else None
    if isinstance(status, int) and 100 <= status < 600:
        detail = str(getattr(exc, "code", "")) + " " + str(getattr(exc, "vendor_message", ""))
        cause, why = classify_status(status, context=context, detail=detail)
        return Diagnosis(
            cause, why, status=status, exception=name, transient=cause in TRANSIENT, certainty=90
        )
    for n in names:
        by_name = _by_name(n)
        if by_name is not None:
            return Diagnosis(
                by_name, f"{name} raised", exception=name, transient=by_name in TRANSIENT, certainty=80
            )
    if "SSRFError" in names:
        return Diagnosis("network", "the address is refused by the SSRF guard", exception=name, certainty=80)
    if "ActionError" in names:
        # Our connectors wrap transport failures in ActionError with the original type in the text.
        return classify_error(str(exc), context=context)
    return Diagnosis("unknown", f"{name}: no rule for this exception", exception=name, certainty=20)


def classify_error(text: str | None, *, context: str = "vendor") -> Diagnosis:
    """Classify a stored error message (a step's ``error``, a feed's ``last_error``)."""
    if not text or not text.strip():
        return Diagnosis("unknown", "no error was recorded", certainty=0)
    msg = text.strip()
    first = msg.splitlines()[0][:300]
    if "rate limited" in msg.lower() and "gave up" in msg.lower():
        return Diagnosis(
            "rate_limit",
            f"still rate limited after retries: {first}",
            status=429,
            transient=True,
            certainty=95,
        )
    status: int | None = None
    detail = msg
    m = _VENDOR.match(msg)
    if m:
        status, detail = int(m.group("status")), m.group("rest") or ""
    else:
        for pattern in (_ANSWERED, _HTTPX_STATUS, _HTTP_WORD):
            found = pattern.search(msg)
            if found:
                status = int(found.group("status"))
                break
    exc_name = None
    found_exc = _EXC_NAME.search(msg)
    if found_exc:
        exc_name = found_exc.group("name")
    if status is not None:
        cause, why = classify_status(status, context=context, detail=detail)
        return Diagnosis(
            cause,
            f"{why} ({first})",
            status=status,
            exception=exc_name,
            transient=cause in TRANSIENT,
            certainty=90,
        )
    if _SECRET_TEXT.search(msg):
        return Diagnosis("auth", f"a credential is missing: {first}", exception=exc_name, certainty=90)
    if _SSRF_TEXT.search(msg):
        return Diagnosis(
            "network",
            f"the SSRF guard refused the address (set allow_private for internal services): {first}",
            exception=exc_name,
            certainty=85,
        )
    if exc_name is not None:
        named = _by_name(exc_name)
        if named is not None:
            where = " in our code" if named == "our_bug" else ""
            return Diagnosis(
                named,
                f"{exc_name}{where}: {first}",
                exception=exc_name,
                transient=named in TRANSIENT,
                certainty=85,
            )
    if _NET_TEXT.search(msg):
        return Diagnosis(
            "network",
            f"the service could not be reached: {first}",
            exception=exc_name,
            transient=True,
            certainty=75,
        )
    if _SHAPE_TEXT.search(msg):
        return Diagnosis(
            "vendor_api_change",
            f"the vendor's answer had an unexpected shape: {first}",
            exception=exc_name,
            certainty=70,
        )
    if _CONFIG.search(msg):
        return Diagnosis(
            "bad_input",
            f"the step's inputs or connection are wrong: {first}",
            exception=exc_name,
            certainty=80,
        )
    return Diagnosis("unknown", f"no rule matched: {first}", exception=exc_name, certainty=10)
