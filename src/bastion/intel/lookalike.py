"""Lookalike-domain detection against the tenant's own domains: typos (edit distance), homoglyphs
(confusable letters, digits and IDN characters folded to a skeleton), TLD swaps, and added words
(``example-login.com``, ``secure-example.net``, ``example.com.evil.io``).

Small and explicit on purpose: a lookalike check runs on every newly seen domain, and an analyst has to
be able to read why a domain was flagged (the returned reason).
"""

from __future__ import annotations

import contextlib
import unicodedata

__all__ = ["lookalike_reason", "skeleton"]

# Multi-character confusables first, then single characters (Latin look-alikes, digits, Cyrillic, Greek).
_MULTI = (("rn", "m"), ("vv", "w"), ("cl", "d"), ("ii", "u"))
_SINGLE = str.maketrans(
    {
        "0": "o",
        "1": "l",
        "i": "l",
        "3": "e",
        "5": "s",
        "7": "t",
        "4": "a",
        "8": "b",
        "9": "g",
        "6": "b",
        "\u0430": "a",
        "\u0435": "e",
        "\u043e": "o",
        "\u0440": "p",
        "\u0441": "c",
        "\u0443": "y",
        "\u0445": "x",
        "\u0456": "l",
        "\u0458": "j",
        "\u0501": "d",
        "\u0455": "s",
        "\u04bb": "h",
        "\u03bf": "o",
        "\u03b1": "a",
        "\u03bd": "v",
        "\u03c1": "p",
        "\u03c4": "t",
        "\u03b9": "l",
        "\u03ba": "k",
    }
)
_WORDS_MIN = 4  # an owned label shorter than this is too common to look for inside other names


def skeleton(label: str) -> str:
    """A label with confusable characters folded together: ``paypa1`` and ``p\u0430ypal`` (with a
    Cyrillic a) both become ``paypal``."""
    s = label.lower()
    if s.startswith("xn--"):
        with contextlib.suppress(UnicodeError):
            s = s.encode("ascii").decode("idna")
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c))
    for a, b in _MULTI:
        s = s.replace(a, b)
    return s.translate(_SINGLE).replace("-", "")


def _distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein (adjacent transpositions), stopping early past ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def _split(domain: str) -> tuple[str, str]:
    """(label, suffix) of the registrable part: ``mail.example.co.uk`` -> (``example``, ``co.uk``)."""
    parts = domain.lower().strip(".").split(".")
    if len(parts) >= 3 and len(parts[-2]) <= 3 and len(parts[-1]) == 2:
        return parts[-3], ".".join(parts[-2:])
    if len(parts) >= 2:
        return parts[-2], parts[-1]
    return parts[0], ""


def lookalike_reason(candidate: str, owned: str) -> str | None:
    """Why ``candidate`` imitates ``owned``, or None when it does not (or is ``owned`` itself or a
    subdomain of it)."""
    cand = candidate.lower().strip(".")
    own = owned.lower().strip(".")
    if cand == own or cand.endswith("." + own):
        return None
    label, suffix = _split(cand)
    own_label, own_suffix = _split(own)
    if label == own_label:
        return f"same name {own_label!r} under another suffix (.{suffix} instead of .{own_suffix})"
    if skeleton(label) == skeleton(own_label):
        return f"homoglyphs: {label!r} reads as {own_label!r}"
    limit = 1 if len(own_label) <= 8 else 2
    if len(own_label) >= _WORDS_MIN and _distance(label, own_label, limit) <= limit:
        return f"typo: {label!r} is within {limit} edit(s) of {own_label!r}"
    if len(own_label) >= _WORDS_MIN:
        words = cand.replace("-", ".").split(".")
        if own_label in words[:-1] or (own_label in label and label != own_label):
            return f"added words: {cand!r} contains {own_label!r}"
        if skeleton(own_label) in skeleton(label):
            return f"added words with homoglyphs: {cand!r} contains a look-alike of {own_label!r}"
    return None
