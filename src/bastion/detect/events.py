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

from typing import Any, cast

__all__ = ["ANY_FIELD", "UNSET", "FlatEvent", "flatten", "to_text"]

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
# Value types whose text is str(v) up to case: an event with only these gets its texts from C-level calls.
_PLAIN = frozenset({str, int, float, bool})
# str.lower() of each Latin-1 character, which is one Latin-1 character (bytes() fails if one is not).
_LATIN1_LOWER = bytes(ord(chr(c).lower()) for c in range(256))


# Marks a field whose lowercased text is not computed yet: ``FlatEvent.lowd.get(name, UNSET)``.
UNSET: Any = object()


class FlatEvent:
    """One event prepared for matching. ``windows`` holds (channel lowercased, EventID) or None.

    ``lowd`` caches lowercased field texts: ``lowd.get(name, UNSET)`` is a field's lowercased text (a
    tuple of texts for list values, None when absent), or UNSET until ``lower_field(name)`` computed
    it. It is a plain dict looked up with ``get``: subscripting a dict subclass (one computing misses in
    ``__missing__``) goes through CPython's generic slot, which looks ``__getitem__`` up by name and
    calls it as a method, several times the cost of a ``get``. ``any_low()`` gives every value joined
    by NUL, which keyword searches scan.
    """

    __slots__ = ("_all", "_any", "fields", "lowd", "plain", "windows")

    def __init__(
        self, fields: dict[str, Any], windows: tuple[str, int | None] | None, plain: bool = False
    ) -> None:
        self.fields = fields
        self.windows = windows
        # True when the flattener saw that every value is a str, int, float or bool (else: not known).
        self.plain = plain
        self.lowd: dict[str, Any] = {}
        self._all: str | None = None
        self._any: str | None = None

    def low(self, name: str) -> Any:
        """Lowercased text of a field: a str, a tuple of str for list values, or None when absent."""
        if name == ANY_FIELD:
            return self.any_low()
        v = self.lowd.get(name, UNSET)
        return self.lower_field(name) if v is UNSET else v

    def lower_field(self, name: str) -> Any:
        """Compute (and cache in ``lowd``) a field's lowercased text; see ``low``."""
        v: Any = self.fields.get(name)
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
        self.lowd[name] = r
        return r

    def any_low(self) -> str:
        """Every lowercased value joined by NUL."""
        if self._any is None:
            vals = self.fields.values()
            if self.plain or _PLAIN.issuperset(map(type, vals)):
                # For these types str(v) differs from to_text(v) only for booleans, in case, which lower()
                # removes. A loop rather than map(str, ...): compiled, a str value is appended without a
                # call, and most values are str.
                parts: list[str] = []
                for v in vals:
                    parts.append(v if type(v) is str else str(v))
                text = "\x00".join(parts)
            else:
                text = self._joined()
            # Lowering the joined text equals joining the lowered values: the one context Python's lower()
            # reads (a final sigma) stops at a NUL as at the end of a string. Non-ASCII text takes the slow
            # path for every character: Latin-1 text is lowered by a byte table instead, other text one
            # value at a time, so that only the values that need it take that path.
            if text.isascii():
                self._any = text.lower()
            else:
                try:
                    self._any = text.encode("latin-1").translate(_LATIN1_LOWER).decode("latin-1")
                except UnicodeEncodeError:
                    self._any = "\x00".join(map(str.lower, text.split("\x00")))
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


# System attribute names, "<Element>_<Attribute>", per element and attribute. Looking one up costs less
# than concatenating a new string for every attribute of every event and hashing it as it is inserted.
# Bounded, as element and attribute names come from the events.
_ATTR_NAMES: dict[str, dict[str, str]] = {}
_ATTR_NAMES_MAX = 256


def _attr_name(element: str, attr: str) -> str:
    names = _ATTR_NAMES.get(element)
    if names is None:
        names = {} if len(_ATTR_NAMES) >= _ATTR_NAMES_MAX else _ATTR_NAMES.setdefault(element, {})
    name = element + "_" + attr
    if len(names) < _ATTR_NAMES_MAX:
        names[attr] = name
    return name


def _flatten_windows(ev: dict[str, Any]) -> FlatEvent:
    f: dict[str, Any] = {}
    plain = True  # every value a str, int, float or bool; the type tests stand in for the null tests
    # The casts follow the type tests: compiled, a value known to be a dict is read with the dict's own
    # functions instead of a method looked up by name on an object of any type.
    system = ev.get("System")
    if type(system) is dict:
        for k, v in cast("dict[str, Any]", system).items():
            t = type(v)
            if t is dict:
                element = cast("dict[str, Any]", v)
                attrs = element.get("#attributes")
                if type(attrs) is dict:
                    names = _ATTR_NAMES.get(k) or {}
                    for ak, av in cast("dict[str, Any]", attrs).items():
                        name = names.get(ak) or _attr_name(k, ak)
                        if type(av) in _PLAIN:
                            f[name] = av
                        elif av is not None:
                            f[name] = av
                            plain = False
                text = element.get("#text")
                if type(text) in _PLAIN:
                    f[k] = text
                elif text is not None:
                    f[k] = text
                    plain = False
            elif t in _PLAIN:
                f[k] = v
            elif v is not None:
                f[k] = v
                plain = False
    for section in ("EventData", "UserData"):
        d = ev.get(section)
        if type(d) is dict:
            data = cast("dict[str, Any]", d)
            if _PLAIN.issuperset(map(type, data.values())):
                f.update(data)  # the common flat EventData: what _leaves would do, without a Python loop
            else:
                _leaves(data, f)
                plain = False
    return FlatEvent(f, _windows_key(f), plain)


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
    top = cast("dict[str, Any]", doc)
    ev = top.get("Event")
    if type(ev) is dict and "System" in ev:
        return _flatten_windows(ev)
    if "Channel" in top and "EventID" in top:
        f = {k: v for k, v in top.items() if v is not None}
        return FlatEvent(f, _windows_key(f))
    return _flatten_generic(top)
