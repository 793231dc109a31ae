"""Loading Sigma rules from files, folders and zip archives, parsed with pySigma.

pySigma is the community's own rule model, so parsing (YAML, modifiers, condition grammar) is theirs; what
we add is collecting every rule that cannot be used, with a reason, instead of stopping at the first one.
Correlation rules are loaded too and returned separately (see ``bastion.detect.correlation``).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sigma.modifiers as _modifiers
import yaml
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

__all__ = ["LoadedRules", "RuleProblem", "load_rules", "parse_rule_text"]

# The Sigma specification names little-endian UTF-16 ``utf16le``; pySigma 2.0 spells it ``wide``.
_modifiers.modifier_mapping.setdefault("utf16le", _modifiers.SigmaWideModifier)

_SUFFIXES = (".yml", ".yaml")
# libyaml's safe loader when present: YAML parsing is most of the cost of loading thousands of rules.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class RuleProblem:
    """A rule that cannot be used, and why."""

    source: str
    reason: str
    rule_id: str | None = None
    title: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"source": self.source, "rule_id": self.rule_id, "title": self.title, "reason": self.reason}


@dataclass
class LoadedRules:
    """Parsed rules with the source each came from, correlation rules, and the problems found."""

    rules: list[tuple[SigmaRule, str]] = field(default_factory=list)
    correlations: list[tuple[SigmaCorrelationRule, str]] = field(default_factory=list)
    problems: list[RuleProblem] = field(default_factory=list)
    files: int = 0

    def extend(self, other: LoadedRules) -> None:
        self.rules.extend(other.rules)
        self.correlations.extend(other.correlations)
        self.problems.extend(other.problems)
        self.files += other.files


def _texts(path: Path) -> Iterator[tuple[str, str]]:
    """Yield (source name, YAML text) for a file, every rule file under a folder, or inside a zip."""
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.suffix in _SUFFIXES and p.is_file():
                yield str(p), p.read_text(encoding="utf-8", errors="replace")
    elif path.suffix == ".zip" and path.is_file():
        try:
            with zipfile.ZipFile(path) as zf:
                for name in sorted(zf.namelist()):
                    if name.endswith(_SUFFIXES):
                        yield f"{path}!{name}", zf.read(name).decode("utf-8", errors="replace")
        except zipfile.BadZipFile as exc:  # not a zip, or a damaged member
            raise ValueError(f"{path} is not a readable zip archive: {exc}") from None
    elif path.is_file():
        yield str(path), path.read_text(encoding="utf-8", errors="replace")
    else:
        raise ValueError(f"no such rule file or folder: {path}")


def parse_rule_text(text: str, source: str = "<inline>") -> LoadedRules:
    """Parse one YAML text, which may hold several documents (rules, correlation rules)."""
    out = LoadedRules(files=1)
    try:
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        out.problems.append(RuleProblem(source, f"invalid YAML: {str(exc).splitlines()[0]}"))
        return out
    for doc in docs:
        if not isinstance(doc, dict):
            out.problems.append(RuleProblem(source, "not a Sigma rule: the document is not a mapping"))
            continue
        rid = str(doc["id"]) if doc.get("id") is not None else None
        title = str(doc["title"]) if doc.get("title") is not None else None
        try:
            if "correlation" in doc:
                out.correlations.append((SigmaCorrelationRule.from_dict(doc), source))
            elif "detection" in doc:
                out.rules.append((SigmaRule.from_dict(doc), source))
            else:
                out.problems.append(RuleProblem(source, "not a Sigma rule: no detection", rid, title))
        except SigmaError as exc:
            out.problems.append(RuleProblem(source, f"pySigma: {exc}", rid, title))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            out.problems.append(
                RuleProblem(source, f"malformed rule: {type(exc).__name__}: {exc}", rid, title)
            )
    return out


def load_rules(paths: Iterable[str | Path]) -> LoadedRules:
    """Load every rule from the given files, folders and zip archives."""
    out = LoadedRules()
    for p in paths:
        for source, text in _texts(Path(p)):
            out.extend(parse_rule_text(text, source))
    return out
