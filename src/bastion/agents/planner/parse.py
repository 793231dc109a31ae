"""Reading a plain-language objective: its trigger, its intents (one per clause), the entities it names,
and which intents need an approver.

"When a user's credentials leak, suspend them, open a case and ask an approver to reset the password"
becomes: trigger ``intel: {type: credential-leak}``; intents ``suspend-account``, ``open-case``,
``reset-password`` (with an approval). Clauses are split on "then", commas, semicolons and "and"; a
clause without a verb of its own ("... in LDAP and Okta") reuses the previous clause's verb. Entities
(addresses, domains, URLs, hashes, e-mail addresses) come from the project's IOC extraction
(:func:`bastion.ingest.observables.scan_text`); host and user names from "host X" / "user X".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from bastion.agents.planner.catalogue import EFFECTS, VENDOR_WORDS, Effect
from bastion.ingest.observables import scan_text

__all__ = ["Intent", "Parsed", "Trigger", "match_effect", "parse_objective", "split_clauses"]


@dataclass
class Intent:
    effect: str
    clause: str
    vendor: str | None = None
    approval: bool = False
    target: str | None = None


@dataclass
class Trigger:
    kind: str  # manual | webhook | alert | intel | schedule
    spec: dict[str, Any] = field(default_factory=dict)  # the YAML mapping under ``trigger:``
    topic: str = ""  # what the trigger is about ("ransomware", "credential-leak", ...)


@dataclass
class Parsed:
    objective: str
    trigger: Trigger
    intents: list[Intent]
    entities: dict[str, list[str]]
    unmatched: list[str]
    vendors: list[str] = field(default_factory=list)  # products named anywhere, in order


_SPLIT = re.compile(
    r"\s*(?:,|;|\.\s|\band then\b|\bthen\b|\band also\b|\balso\b|\bafter that\b|\bfinally\b|\bplus\b"
    r"|\bas well as\b|\band\b|\bbut\b|\bwhile\b|\bbefore\b|\bafterwards\b|&|\+)\s*",
    re.I,
)
_LEAD = re.compile(
    r"^(?:when(?:ever)?|if|on|upon|once|after|each time|every time|in case of|for (?:each|every)"
    r"|as soon as)\b",
    re.I,
)
_APPROVAL = re.compile(
    r"\bapprov\w*|\bsign[- ]off|\bonce (?:someone|a human|an analyst|a manager) (?:agrees|confirms|ok)"
    r"|\bwith (?:human )?confirmation|\bafter (?:a )?human review|\bfour[- ]eyes"
    r"|\bif (?:an? )?(?:analyst|human|"
    r"manager) (?:agrees|approves|confirms|says yes)",
    re.I,
)

_TRIGGERS: list[tuple[str, str, re.Pattern[str]]] = [
    (
        "intel",
        "credential-leak",
        re.compile(
            r"credential\w*\W+(?:\w+\W+){0,3}(?:leak|dump|breach|expos|paste|compromis|stolen|sold|found)"
            r"|(?:leak|dump|breach|stolen|exposed)\w*\W+(?:\w+\W+){0,3}(?:credential|password|login)"
            r"|password\w*\W+(?:\w+\W+){0,4}(?:leak|breach|dump|paste|exposed)|breach corpus|combolist"
            r"|have ?i ?been ?pwned|paste site|dark ?web",
            re.I,
        ),
    ),
    (
        "intel",
        "lookalike-domain",
        re.compile(
            r"look-?alike|typo-?squat|homoglyph|imitat\w*|impersonat\w* (?:\w+ )?domain"
            r"|newly registered domain"
            r"|similar domain|spoof\w* (?:\w+ )?domain|domain (?:\w+ )?(?:spoof|imitat)",
            re.I,
        ),
    ),
    (
        "intel",
        "vulnerable-software",
        re.compile(
            r"\bcve\b|\bcve-\d|vulnerab|unpatched|exploitable"
            r"|(?:exposed|internet-facing) (?:\w+ )?(?:asset|server|"
            r"software|service|host)|security advisory|patch(?:ing)? (?:gap|level)",
            re.I,
        ),
    ),
]
_REPORTED = re.compile(
    r"\b(?:user|employee|someone|staff|people)\w* (?:\w+ )?(?:report|forward|submit)\w*|"
    r"\breported (?:phish|e-?mail|message|mail)|\bphish\w* report",
    re.I,
)
_SCHEDULE = [
    (re.compile(r"\bevery hour\b|\bhourly\b", re.I), "0 * * * *"),
    (re.compile(r"\bevery (?:day|morning|night)\b|\bdaily\b|\bnightly\b", re.I), "0 6 * * *"),
    (re.compile(r"\bevery week\b|\bweekly\b", re.I), "0 6 * * 1"),
]
_ALERT = re.compile(
    r"\balert|\bdetect|\bedr\b|\bsiem\b|\bfires?\b|\bflag(?:s|ged)\b|\bsigma\b|\bspott?\w*|\bnotic\w*|\bsees?\b"
    r"|\bsigns? of\b|\bindicat\w+ of\b|\bsuspect\w*|\bsuspicious\b|\battack|\bbeacon|\bransomware|\bbrute"
    r"|\bspray|\bimpossible travel|\bexfiltrat|\bconsent|\bmalware|\binfect|\bcompromis|\bc2\b"
    r"|\bcommand[- ]and[- ]",
    re.I,
)
# Alert topics: (topic, title words, tags, ATT&CK techniques).
_TOPICS: list[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = [
    ("ransomware", ("ransomware", "encrypt"), ("ransomware",), ("T1486",)),
    ("password spray", ("spray",), ("password-spray",), ("T1110.003",)),
    ("brute force", ("brute", "failed login", "failed sign", "guessing"), ("brute-force",), ("T1110",)),
    (
        "impossible travel",
        ("impossible travel", "impossible-travel", "unlikely travel", "two countries", "far apart"),
        ("impossible-travel",),
        (),
    ),
    (
        "c2 beaconing",
        ("beacon", "c2", "command and control", "command-and-control", "callback"),
        ("c2",),
        ("T1071",),
    ),
    (
        "data exfiltration",
        ("exfiltrat", "data theft", "large upload", "uploading", "data leaving"),
        ("exfiltration",),
        ("T1041", "T1048"),
    ),
    ("oauth consent", ("consent", "oauth"), ("oauth-consent",), ()),
    (
        "malware",
        ("malware", "trojan", "virus", "infect", "malicious file", "malicious binary"),
        ("malware",),
        ("T1204",),
    ),
    ("phishing", ("phish",), ("phishing",), ("T1566",)),
]


def _effect_regex(parts: tuple[str, ...]) -> re.Pattern[str] | None:
    if not parts:
        return None
    return re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(parts) + r")", re.I)


@cache
def _compiled(name: str) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    effect: Effect = EFFECTS[name]
    return _effect_regex(effect.verbs), _effect_regex(effect.objects)


_ORDER = {name: i for i, name in enumerate(EFFECTS)}


def match_effect(clause: str, kinds: set[str] | frozenset[str] = frozenset()) -> tuple[str | None, float]:
    """The effect a clause asks for and its score (0 when none): a verb must match; an object adds
    weight (and is required by some effects); a longer verb match is more specific. ``kinds`` are the
    entity kinds named literally in the clause ("block 203.0.113.5": an ip): they count as the object."""
    best: tuple[str | None, float] = (None, 0.0)
    for name, effect in EFFECTS.items():
        verbs, objects = _compiled(name)
        v = verbs.search(clause) if verbs else None
        if v is None:
            continue
        o = objects.search(clause) if objects else None
        literal = effect.target in _LITERAL_OBJECTS and effect.target in kinds and effect.target != "user"
        if effect.needs_object and o is None and not literal:
            continue
        score = (
            10.0
            + (6.0 if o is not None or literal else 0.0)
            + len(v.group(0)) / 50
            + (len(o.group(0)) / 60 if o else 0.2 if literal else 0)
        )
        score += effect.bonus
        score -= _ORDER[name] / 1000  # ties: earlier in the catalogue wins
        if score > best[1]:
            best = (name, score)
    return best


def split_clauses(text: str) -> list[str]:
    return [c.strip(" .") for c in _SPLIT.split(text) if c and c.strip(" .")]


# What "it" / "them" means when the trigger is about one kind of thing.
_SUBJECT = {
    "credential-leak": "the user",
    "lookalike-domain": "the domain",
    "vulnerable-software": "the host",
}
_PRONOUN = re.compile(r"\b(?:it|them|they)\b", re.I)
_LITERAL_OBJECTS = {"ip", "domain", "url", "host", "user"}
_KIND_WORDS = {"ip": "ip", "domain": "domain", "url": "url", "email": "user", "hash": "hash"}


def _plain(clause: str) -> str:
    """The clause with literal indicators replaced by their kind ("block 203.0.113.5" -> "block ip"), so
    the words inside a URL or an address cannot name an effect."""
    found = extract_entities(clause)
    for kind in ("url", "email", "ip", "domain", "hash"):
        for value in sorted(found.get(kind, []), key=len, reverse=True):
            clause = clause.replace(value, _KIND_WORDS[kind])
    return clause


def _vendors(text: str) -> list[str]:
    found = sorted((m.start(), v) for p, v in VENDOR_WORDS.items() if (m := re.search(p, text, re.I)))
    # "e-mail" is mostly a noun ("a phishing e-mail"): it names the product only in its own clause
    return list(dict.fromkeys(v for _, v in found if v != "email"))


def _vendor(text: str) -> str | None:
    found: list[tuple[int, str]] = []
    for pattern, vendor in VENDOR_WORDS.items():
        m = re.search(pattern, text, re.I)
        if m:
            found.append((m.start(), vendor))
    return min(found)[1] if found else None


_HOST = re.compile(
    r"\b(?:host|hostname|machine|endpoint|device|server|workstation|laptop|computer|box)\s+"
    r"([A-Za-z][A-Za-z0-9_-]*(?:\d|-)[A-Za-z0-9_.-]*)",
    re.I,
)
_USER = re.compile(r"\b(?:user|username|account|login|employee)\s+([a-z][a-z0-9_.-]{1,40})\b", re.I)
_NOT_NAMES = {
    "account",
    "accounts",
    "is",
    "who",
    "that",
    "the",
    "and",
    "or",
    "in",
    "on",
    "at",
    "to",
    "with",
    "from",
    "for",
    "whose",
    "has",
    "had",
    "was",
    "gets",
    "got",
    "logs",
    "signs",
    "sessions",
    "credentials",
    "password",
    "details",
    "name",
    "it",
    "them",
    "a",
    "an",
    "of",
    "reports",
    "clicks",
}


def extract_entities(text: str) -> dict[str, list[str]]:
    """Entities named in ``text`` by kind: ip, domain, url, email, hash (the IOC extraction), host, user."""
    found: dict[str, list[str]] = {}

    def add(kind: str, value: str) -> None:
        values = found.setdefault(kind, [])
        if value not in values:
            values.append(value)

    pairs = scan_text(text)
    owned: set[str] = set()
    for kind, value in pairs:
        if kind.value == "email":
            owned.add(value.split("@")[-1].lower())
        elif kind.value == "url":
            owned.add(re.sub(r"^\w+://", "", value).split("/")[0].split(":")[0].lower())
    hosts = [m.group(1).rstrip(".") for m in _HOST.finditer(text)]
    for kind, value in pairs:
        k = kind.value
        if k in ("ipv4", "ipv6"):
            add("ip", value)
        elif k == "domain":
            if value.lower() not in owned and value not in hosts:
                add("domain", value)
        elif k in ("url", "email"):
            add(k, value)
        elif k in ("md5", "sha1", "sha256"):
            add("hash", value)
    for h in hosts:
        add("host", h)
    for m in _USER.finditer(text):
        name = m.group(1).rstrip(".")
        if name.lower() not in _NOT_NAMES and "@" not in name:
            add("user", name)
    for m in re.finditer(r"\bCVE-\d{4}-\d{4,7}\b", text, re.I):
        add("cve", m.group(0).upper())
    return found


def _trigger(text: str, first_clause: str) -> Trigger:
    for kind, topic, pattern in _TRIGGERS:
        if pattern.search(text):
            return Trigger(kind, {kind: {"type": topic}}, topic)
    for pattern, cron in _SCHEDULE:
        if pattern.search(text):
            return Trigger("schedule", {"schedule": cron}, "schedule")
    if _REPORTED.search(text):
        return Trigger("webhook", {"manual": True, "webhook": True}, "report")
    lead = bool(_LEAD.search(first_clause)) or bool(
        re.search(r"\b(?:respond|react|handle)\w* to\b", text, re.I)
    )
    if lead and _ALERT.search(text):
        lowered = text.lower()
        for topic, words, tags, techniques in _TOPICS:
            if any(w in lowered for w in words):
                parts = [f"'{words[0]}' in (trigger.title | lower)"]
                parts += [f"'{t}' in (trigger.tags or [])" for t in tags]
                parts += [f"'{t}' in (trigger.techniques or [])" for t in techniques]
                return Trigger(
                    "alert",
                    {"manual": True, "alert": {"condition": "${{ " + " or ".join(parts) + " }}"}},
                    topic,
                )
        return Trigger("alert", {"manual": True, "alert": {}}, "alert")
    return Trigger("manual", {"manual": True}, "")


def parse_objective(objective: str) -> Parsed:
    """Trigger, intents, entities and the clauses nothing matched."""
    text = " ".join(objective.split())
    clauses = split_clauses(text)
    trigger = _trigger(text, clauses[0] if clauses else "")
    intents: list[Intent] = []
    unmatched: list[str] = []
    pending_approval = False
    previous: str | None = None
    last_verb = ""
    for i, clause in enumerate(clauses):
        approval = bool(_APPROVAL.search(clause))
        if i == 0 and _LEAD.search(clause) and trigger.kind != "manual" and not _looks_imperative(clause):
            continue  # the trigger clause ("when a user's credentials leak")
        kinds = set(extract_entities(clause))
        clause = _plain(clause)
        if trigger.topic in _SUBJECT:  # "when a lookalike domain appears, block it": it is the domain
            clause = _PRONOUN.sub(_SUBJECT[trigger.topic], clause)
        effect, _ = match_effect(clause, kinds)
        vendor = _vendor(clause)
        if effect is not None:
            previous = clause
            last_verb = _verb_of(effect, clause)
        elif previous is not None and intents and _continues(clause):
            # "... and the domains in DNS": the previous verb with this clause's object; "... in LDAP and
            # Okta" (no object of its own): the previous intent again, for this product.
            effect, score = match_effect(last_verb + " " + clause, kinds)
            if effect is None or score < 16:
                effect = intents[-1].effect
            vendor = vendor or _vendor(previous)
            if approval:
                intents[-1].approval = True  # "disable it in LDAP and Okta with approval": both
        if effect is None:
            if approval:
                pending_approval = True  # "on approval," applies to the next clause
            elif not _is_filler(clause):
                unmatched.append(clause)
            continue
        intents.append(Intent(effect, clause, vendor, approval or pending_approval, EFFECTS[effect].target))
        pending_approval = False
    return Parsed(text, trigger, intents, extract_entities(text), unmatched, _vendors(text))


def _verb_of(effect: str, clause: str) -> str:
    verbs, _ = _compiled(effect)
    m = verbs.search(clause) if verbs else None
    return m.group(0) if m else ""


_CONTINUING = {
    "the",
    "a",
    "an",
    "in",
    "on",
    "at",
    "to",
    "with",
    "from",
    "via",
    "its",
    "their",
    "his",
    "her",
    "any",
    "all",
    "every",
    "each",
    "both",
    "also",
    "put",
    "same",
    "likewise",
    "then",
    "it",
    "them",
    "for",
    "through",
    "using",
    "into",
}


def _continues(clause: str) -> bool:
    """Whether a clause without a verb of ours continues the previous one ("... and the domains in DNS",
    "... and Okta", "... and put it on the EDL") rather than asking for something we cannot do."""
    words = re.findall(r"[a-z0-9-]+", clause.lower())
    if not words or len(words) <= 2 or words[0] in _CONTINUING:
        return True
    return any(re.match(p, clause, re.I) for p in VENDOR_WORDS)


def _looks_imperative(clause: str) -> bool:
    # "when malware is found on a host isolate it" has no comma: the action follows the condition.
    return bool(re.search(r"\b(?:then|immediately|right away|at once)\b", clause, re.I))


def _is_filler(clause: str) -> bool:
    words = re.findall(r"[a-z]+", clause.lower())
    return len(words) <= 2 or all(w in _NOT_NAMES or len(w) <= 3 for w in words)
