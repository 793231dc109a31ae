"""Feed parsers, registered by format name: each turns bytes into a :class:`ParseResult`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bastion.intel.feeds.base import FeedError, ParseResult
from bastion.intel.feeds.misp import parse_misp_event, parse_misp_feed_dir
from bastion.intel.feeds.stix import parse_stix
from bastion.intel.feeds.tabular import (
    parse_credential_leak,
    parse_list,
    parse_malwarebazaar,
    parse_mapped,
    parse_threatfox,
    parse_urlhaus,
)

__all__ = ["FORMATS", "FeedError", "ParseResult", "parse_bytes", "parse_path"]

Parser = Callable[..., ParseResult]

FORMATS: dict[str, Parser] = {
    "stix": parse_stix,
    "misp-event": parse_misp_event,
    "csv": parse_mapped,
    "json": parse_mapped,
    "urlhaus": parse_urlhaus,
    "threatfox": parse_threatfox,
    "malwarebazaar": parse_malwarebazaar,
    "credential-leak": parse_credential_leak,
    "list": parse_list,
}
_ALL = sorted([*FORMATS, "misp-feed"])


def parse_bytes(
    fmt: str, data: bytes, *, source: str | None = None, options: dict[str, Any] | None = None
) -> ParseResult:
    """Parse ``data`` as ``fmt``; raises :class:`FeedError` for an unknown format or unusable feed."""
    parser = FORMATS.get(fmt)
    if parser is None:
        raise FeedError(f"unknown feed format {fmt!r}; use one of {', '.join(_ALL)}")
    kw: dict[str, Any] = {"source": source or fmt}
    opts = options or {}
    if fmt in ("csv", "json"):
        kw["mapping"] = opts.get("mapping") or {}
        kw["fmt"] = fmt
    return parser(data, **kw)


def parse_path(
    fmt: str, path: Path, *, source: str | None = None, options: dict[str, Any] | None = None
) -> ParseResult:
    if fmt == "misp-feed":
        return parse_misp_feed_dir(path, source=source or "misp-feed")
    if not path.is_file():
        raise FeedError(f"no such file: {path}")
    return parse_bytes(fmt, path.read_bytes(), source=source, options=options)
