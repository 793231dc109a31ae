"""URLs as the intel matcher keys them: :func:`canonical_url` (the common case with string operations,
the rest through ``normalize.normalize_url``) and :func:`canonical_urls` for a whole batch."""

from __future__ import annotations

from contextlib import suppress
from itertools import repeat
from operator import and_, contains, eq, itemgetter, not_

from bastion.intel.normalize import InvalidIndicator, normalize_url

__all__ = ["canonical_url", "canonical_urls"]

_after = itemgetter(2)


# A URL holding one of these may need more than a lower-case scheme and host (user-info, an escape, a
# fragment, a default port or a trailing dot before the path): it goes through ``canonical_url``.
_URL_ODD = ("@", "%", "#", ":80/", ":443/", "./")


def canonical_urls(values: list[str]) -> list[str]:
    """:func:`canonical_url` of each value, in C for the URLs that are canonical already (most are): in
    lower case, with a path after ``://`` and holding none of ``_URL_ODD``. Each test is a pass or two over
    the batch: lower case by lowering the joined batch and splitting it again, the path by a ``/`` in what
    follows the first ``://`` (``partition``: counting the slashes from there costs twice as much),
    ``_URL_ODD`` in the joined batch (per value only when it is there). Only the others go through the
    function, one by one."""
    n = len(values)
    joined = "\n".join(values)
    lowered = joined.lower().split("\n")
    if len(lowered) != n:  # a value holds a line break
        return list(map(canonical_url, values))
    ok = list(map(eq, lowered, values))
    for odd in _URL_ODD:
        if odd in joined:
            ok = list(map(and_, ok, map(not_, map(contains, values, repeat(odd)))))
    # No "://": nothing after it, so no path, and the long way (which keeps the value).
    paths = map(contains, map(_after, map(str.partition, values, repeat("://"))), repeat("/"))
    ok = list(map(and_, ok, paths))
    if False not in ok:
        return values
    keys = list(values)
    j = -1
    with suppress(ValueError):  # found the last one
        while True:  # a call per odd value, not a pass over the batch: few are
            j = ok.index(False, j + 1)
            keys[j] = canonical_url(values[j])
    return keys


def canonical_url(value: str) -> str:
    """The canonical form of a URL with string operations only (the common case); odd URLs go the long
    way through :func:`normalize_url`."""
    i = value.find("://")
    if i < 0 or "@" in value or "%" in value:
        try:
            return normalize_url(value)
        except InvalidIndicator:
            return value
    j = value.find("/", i + 3)
    if j < 0:
        head, rest = value.lower(), "/"
    else:
        head, rest = value[:j].lower(), value[j:]
        k = rest.find("#")
        if k > 0:  # the rest starts with "/", which stays
            rest = rest[:k]
    if head.endswith((":80", ":443", ".")):  # one test for the rare default port or trailing dot
        if head.endswith(":80") and head.startswith("http:"):
            head = head[:-3]
        elif head.endswith(":443") and head.startswith("https:"):
            head = head[:-4]
        if head.endswith("."):
            head = head[:-1]
    return head + rest
