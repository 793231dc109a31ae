"""ArcSight Common Event Format (CEF) parsing.

A CEF message is ``CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|
Extension``, often behind a syslog header. In the seven header fields a pipe is written ``\\|`` and a
backslash ``\\\\``. The extension is ``key=value`` pairs separated by spaces; values may themselves contain
spaces, so a pair ends where the next ``key=`` begins; in values an equals sign is ``\\=``, a backslash
``\\\\``, and ``\\n`` / ``\\r`` are line breaks. This module only parses; the mapping onto an Event is in
:mod:`bastion.ingest.normalize.cef`.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["CefError", "find_cef", "parse_cef"]

# How far into a line "CEF:" may start: a syslog header (PRI, timestamp, host, tag) fits well within.
_MAX_PREFIX = 512

_HEADER_FIELD = re.compile(r"((?:\\.|[^\\|])*)\|", re.DOTALL)
_HEADER_UNESCAPE = re.compile(r"\\([\\|])")
# A key starts the text or follows whitespace; keys hold letters, digits and a few punctuation marks
# vendors use ("ad.field", "cs1Label", "flexString1"). A backslash cannot be part of a key, so "\=" in a
# value never ends up as a key boundary.
_EXT_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z0-9_.\-\[\]]+)=")
_EXT_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_EXT_ESCAPES = {"=": "=", "\\": "\\", "n": "\n", "r": "\r", "|": "|"}

HEADER_KEYS = ("device_vendor", "device_product", "device_version", "signature_id", "name", "severity")


class CefError(ValueError):
    """A CEF message that cannot be parsed; the message says which part is wrong."""


def find_cef(text: str) -> int:
    """Index where ``CEF:`` starts in ``text`` (at the start or after a syslog header), or -1."""
    if text.startswith("CEF:"):
        return 0
    idx = text.find("CEF:", 0, _MAX_PREFIX)
    while idx > 0:
        if text[idx - 1].isspace():
            return idx
        idx = text.find("CEF:", idx + 4, _MAX_PREFIX)
    return -1


def parse_cef(text: str) -> dict[str, Any]:
    """Parse one CEF message, with or without a syslog prefix.

    Returns ``version`` (int), the six header fields under :data:`HEADER_KEYS` (strings, unescaped),
    ``extension`` (key -> unescaped value) and ``prefix`` (the text before ``CEF:``, stripped, or None).
    """
    text = text.rstrip("\r\n")
    start = find_cef(text)
    if start < 0:
        raise CefError("not a CEF message: no 'CEF:' near the start of the line")
    prefix = text[:start].strip() or None
    body = text[start + 4 :]

    fields: list[str] = []
    pos = 0
    while len(fields) < 7:
        m = _HEADER_FIELD.match(body, pos)
        if m is None:
            break
        fields.append(m.group(1))
        pos = m.end()
    if len(fields) == 6 and pos < len(body):
        # No pipe after the severity: a message with no extension at all.
        fields.append(body[pos:])
        pos = len(body)
    elif len(fields) < 7:
        found = len(fields) + (1 if pos < len(body) else 0)
        raise CefError(
            f"CEF header has {found} of its 7 '|'-separated fields "
            "(Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity)"
        )
    version_text = fields[0].strip()
    if not version_text.isdigit():
        raise CefError(f"CEF version must be a number such as 0 or 1, got {version_text!r}")
    record: dict[str, Any] = {"version": int(version_text)}
    for key, value in zip(HEADER_KEYS, fields[1:], strict=True):
        record[key] = _HEADER_UNESCAPE.sub(r"\1", value) if "\\" in value else value
    record["extension"] = _parse_extension(body[pos:])
    record["prefix"] = prefix
    return record


def _parse_extension(text: str) -> dict[str, str]:
    """Split the extension into key/value pairs; a value runs up to the whitespace before the next key."""
    out: dict[str, str] = {}
    if not text.strip():
        return out
    matches = list(_EXT_KEY.finditer(text))
    if not matches:
        raise CefError(f"CEF extension is not key=value pairs: {_clip(text)!r}")
    lead = text[: matches[0].start()].strip()
    if lead:
        raise CefError(f"CEF extension has text before its first key=value pair: {_clip(lead)!r}")
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        value = text[m.end() : end].rstrip()
        if "\\" in value:
            value = _EXT_UNESCAPE.sub(_unescape_one, value)
        out[m.group(1)] = value
    return out


def _unescape_one(m: re.Match[str]) -> str:
    ch = m.group(1)
    return _EXT_ESCAPES.get(ch, "\\" + ch)


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
