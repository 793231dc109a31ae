"""Events as the matcher sees them: flat field dictionaries with lazily lowercased values.

Windows events in the evtx JSON form (``Event.System``, ``Event.EventData``) are flattened onto their
original field names, so SigmaHQ rules apply unchanged: EventData/UserData leaves by name, System fields
by name, and System attributes as ``<Element>_<Attribute>`` (``Provider_Name``,
``TimeCreated_SystemTime``). Events already flat (``Channel`` and ``EventID`` at the top) are Windows too.
Any other JSON document is flattened to dotted paths (``url.original``), with each leaf also reachable by
its own name when that is unambiguous.

A field whose value is JSON ``null`` is absent: absence is not an empty string. Lowercased forms are
computed on first use only, because most fields of most events are never looked at.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ANY_FIELD", "FlatEvent", "flatten", "to_text"]

# The pseudo-field keyword (field-less) searches look in: every value, NUL-separated.
ANY_FIELD = "\x00*"


def to_text(v: Any) -> str:
    """The string form a Sigma string test sees for a scalar value."""
    if type(v) is str:
        return v
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


_NESTED = (list, dict)
# Value types that need more than str(v): their text is not str(v) (lists, and None which is absent) or
# they are flattened away (dicts). An event without them gets its texts from C-level map/join calls.
_NOT_SCALAR = frozenset({list, dict, type(None)})
# EventData values that cannot be copied as they are: nested elements to flatten, null to drop.
_NOT_LEAF = frozenset({dict, type(None)})


class _Lowered(dict[str, Any]):
    """Lowercased field texts, computed on first lookup (``lowd[name]``; None when absent)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__()
        self._fields = fields

    def __missing__(self, name: str) -> Any:
        v: Any = self._fields.get(name)
        t = type(v)
        if t is str:
            r: Any = v.lower()
        elif v is None or t is dict:
            r = None
        elif t is int:
            r = str(v)
        elif t is list:
            r = tuple(to_text(x).lower() for x in v if x is not None and not isinstance(x, dict))
        else:
            r = to_text(v).lower()
        self[name] = r
        return r


class FlatEvent:
    """One event prepared for matching. ``windows`` holds (channel lowercased, EventID) or None.

    ``lowd[name]`` is a field's lowercased text (a tuple of texts for list values, None when absent),
    computed on first lookup; ``any_low()`` gives every value joined by NUL, which keyword searches scan.
    """

    __slots__ = ("_all", "_any", "fields", "lowd", "windows")

    def __init__(self, fields: dict[str, Any], windows: tuple[str, int | None] | None) -> None:
        self.fields = fields
        self.windows = windows
        self.lowd = _Lowered(fields)
        self._all: str | None = None
        self._any: str | None = None

    def low(self, name: str) -> Any:
        """Lowercased text of a field: a str, a tuple of str for list values, or None when absent."""
        if name == ANY_FIELD:
            return self.any_low()
        return self.lowd[name]

    def any_low(self) -> str:
        """Every lowercased value joined by NUL."""
        if self._any is None:
            vals = self.fields.values()
            if _NOT_SCALAR.isdisjoint(map(type, vals)):
                # str(v) differs from to_text(v) only for booleans, in case, which lower() removes. And
                # lowercasing the joined text equals joining the lowercased values: the one context
                # Python's lower() reads (a final sigma) stops at a NUL as at the end of a string.
                self._any = "\x00".join(map(str, vals)).lower()
            else:
                self._any = self._joined().lower()
        return self._any

    def _joined(self) -> str:
        if self._all is None:
            vals = self.fields.values()
            parts = [
                v if type(v) is str else str(v) if type(v) is int else to_text(v)
                for v in vals
                if type(v) not in _NESTED
            ]
            if len(parts) != len(vals):
                for v in vals:
                    if type(v) is list:
                        parts.extend(to_text(x) for x in v if x is not None and not isinstance(x, dict))
            self._all = "\x00".join(parts)
        return self._all

    def all_text(self) -> tuple[str, str]:
        """Every field value joined by NUL, as (original, lowercased): what keyword searches scan."""
        return self._joined(), self.any_low()

    def text(self, name: str) -> Any:
        """Original text of a field: a str, a tuple of str for list values, or None when absent."""
        v = self.fields.get(name)
        if v is None or type(v) is str:
            return v
        if type(v) is list:
            return tuple(to_text(x) for x in v if x is not None and not isinstance(x, dict))
        return to_text(v)


def _leaves(d: dict[str, Any], out: dict[str, Any]) -> None:
    for k, v in d.items():
        if v is None:
            continue
        if type(v) is dict:
            if k == "#attributes":
                continue
            if "#text" in v:
                t = v["#text"]
                if t is not None:
                    out[k] = t
            else:
                _leaves(v, out)
        else:
            out[k] = v


def _flatten_windows(ev: dict[str, Any]) -> FlatEvent:
    f: dict[str, Any] = {}
    system = ev.get("System")
    if type(system) is dict:
        for k, v in system.items():
            if v is None:
                continue
            if type(v) is dict:
                attrs = v.get("#attributes")
                if type(attrs) is dict:
                    for ak, av in attrs.items():
                        if av is not None:
                            f[k + "_" + ak] = av
                t = v.get("#text")
                if t is not None:
                    f[k] = t
            else:
                f[k] = v
    for section in ("EventData", "UserData"):
        d = ev.get(section)
        if type(d) is dict:
            if _NOT_LEAF.isdisjoint(map(type, d.values())):
                f.update(d)  # the common flat EventData: what _leaves would do, without a Python loop
            else:
                _leaves(d, f)
    return FlatEvent(f, _windows_key(f))


def _windows_key(f: dict[str, Any]) -> tuple[str, int | None]:
    ch = f.get("Channel")
    eid = f.get("EventID")
    if type(eid) is not int:
        try:
            eid = int(eid) if eid is not None else None
        except (TypeError, ValueError):
            eid = None
    return (ch.lower() if type(ch) is str else "", eid)


def _flatten_generic(doc: dict[str, Any]) -> FlatEvent:
    f: dict[str, Any] = {}
    short: dict[str, Any] = {}
    dup: set[str] = set()

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            if v is None:
                continue
            name = prefix + k
            if type(v) is dict:
                walk(v, name + ".")
                continue
            f[name] = v
            if prefix:
                if k in short:
                    dup.add(k)
                short[k] = v

    walk(doc, "")
    for k, v in short.items():
        if k not in dup and k not in f:
            f[k] = v
    return FlatEvent(f, None)


def flatten(doc: Any) -> FlatEvent:
    """Prepare one JSON document for matching."""
    if type(doc) is not dict:
        return FlatEvent({}, None)
    ev = doc.get("Event")
    if type(ev) is dict and "System" in ev:
        return _flatten_windows(ev)
    if "Channel" in doc and "EventID" in doc:
        f = {k: v for k, v in doc.items() if v is not None}
        return FlatEvent(f, _windows_key(f))
    return _flatten_generic(doc)
