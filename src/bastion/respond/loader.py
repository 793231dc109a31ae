"""YAML loading that remembers where every key and value came from (PyYAML node marks).

The validator reports each problem at a line and column; ``load_yaml`` returns plain Python values plus
a :class:`Positions` map from a path (``("steps", 2, "with", "url")``) to the 1-based position of the
value at that path, and of its key.

A file is refused, with the position of the cause, before it can cost the process its stack or its
memory: nesting deeper than :data:`MAX_DEPTH`, an alias inside the collection it names, and aliases that
would copy more than :data:`MAX_ALIAS_NODES` values (nested anchors multiply: a "billion laughs").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from bastion.store._util import INT64_MAX, INT64_MIN

__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "Loaded", "Positions", "YamlProblem", "load_yaml"]

Path = tuple[str | int, ...]

#: Levels of nesting a workflow may use (its aliases expanded); far above any real one, and far below
#: what the recursive parts (composing, building, validating, JSON) take before the stack runs out.
MAX_DEPTH = 100
#: Values that aliases may add to a document in all: generous for reusing a mapping across steps.
MAX_ALIAS_NODES = 10_000


@dataclass
class Positions:
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    # Scalars: their style (None plain, '"' or "'" quoted, '|' literal, '>' folded) and where their text
    # starts (after a quote; on the line below a block indicator), so that a place inside the text can
    # be told by line and column (:meth:`in_text`).
    texts: dict[Path, tuple[str | None, int, int]] = field(default_factory=dict)

    def in_text(self, path: Path, value: str, offset: int) -> tuple[int, int]:
        """The position of character ``offset`` of the string at ``path``: exact in one-line plain and
        quoted scalars (escapes aside) and in literal blocks; where the folding of lines loses it (a
        plain or quoted scalar over several lines, a folded block), the start of the text."""
        found = self.texts.get(path)
        if found is None:
            return self.at(path)
        style, line, col = found
        before = value[:offset]
        if style == "|":
            newlines = before.count("\n")
            if newlines:
                return line + newlines, col + offset - before.rfind("\n") - 1
            return line, col + offset
        if style == ">" or "\n" in before:
            return line, col
        return line, col + offset

    def at(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """The position of ``path`` (its key when ``key``), or of its nearest known parent."""
        table = self.keys if key else self.values
        p = path
        while p:
            if p in table:
                return table[p]
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), (1, 1))


@dataclass
class YamlProblem:
    line: int
    column: int
    message: str


@dataclass
class Loaded:
    data: Any
    positions: Positions
    problems: list[YamlProblem]


class _Refused(Exception):
    """A document too deep or too large once its aliases are expanded (not a syntax error)."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.problem = YamlProblem(mark.line + 1, mark.column + 1, message)


class _Loader(yaml.SafeLoader):
    """Composes with a budget: each node's size and depth with its aliases expanded is known when the
    node is done, so a nested or self-referencing alias is refused where it is written."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._open: set[str] = set()  # anchors of the collections being composed
        self._expanded = 0  # values added by aliases so far
        self._measure: dict[int, tuple[int, int]] = {}  # id(node) -> (size, depth) expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise _Refused(
                    event.start_mark, f"alias *{event.anchor} refers to a collection it is in (a loop)"
                )
            node = super().compose_node(parent, index)
            size, depth = self._measure[id(node)]
            self._expanded += size
            if self._expanded > MAX_ALIAS_NODES:
                raise _Refused(
                    event.start_mark,
                    f"aliases expand the document by more than {MAX_ALIAS_NODES} values: "
                    "alias fewer or smaller values",
                )
            if self._depth + depth > MAX_DEPTH:
                raise _Refused(
                    event.start_mark, f"alias *{event.anchor} makes nesting deeper than {MAX_DEPTH} levels"
                )
            return node
        if self._depth >= MAX_DEPTH:
            raise _Refused(event.start_mark, f"nesting deeper than {MAX_DEPTH} levels")
        anchor = event.anchor if isinstance(event, yaml.CollectionStartEvent) else None
        if anchor is not None:
            self._open.add(anchor)
        self._depth += 1
        node = super().compose_node(parent, index)
        self._depth -= 1
        if anchor is not None:
            self._open.discard(anchor)
        if isinstance(node, yaml.SequenceNode):
            children = [self._measure[id(c)] for c in node.value]
        elif isinstance(node, yaml.MappingNode):
            children = [self._measure[id(c)] for pair in node.value for c in pair]
        else:
            children = []
        self._measure[id(node)] = (
            1 + sum(size for size, _ in children),
            1 + max((depth for _, depth in children), default=0),
        )
        return node


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character ``offset`` of ``text``."""
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def _unreadable(text: str, exc: yaml.reader.ReaderError) -> YamlProblem:
    """A character YAML does not allow; text read with ``errors="surrogateescape"`` carries each byte
    that is not UTF-8 as a lone surrogate, named here as the byte it was."""
    line, col = _position(text, exc.position)
    if 0xDC80 <= exc.character <= 0xDCFF:
        return YamlProblem(
            line, col, f"invalid UTF-8: byte 0x{exc.character - 0xDC00:02x} (save the file as UTF-8)"
        )
    return YamlProblem(line, col, f"character U+{exc.character:04X} is not allowed in YAML")


# Values must survive the JSON a run is recorded in and the store's signed 64-bit integers.
_INT_TAG = "tag:yaml.org,2002:int"
_INT_RANGE = f"integer out of range: whole numbers go from {INT64_MIN} to {INT64_MAX}"


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _text_start(node: yaml.ScalarNode, lines: list[str]) -> tuple[str | None, int, int]:
    line, col = _mark(node)
    style = node.style
    if style in ('"', "'"):
        return style, line, col + 1
    if style in ("|", ">"):  # the text starts on the next line, at its indentation
        below = lines[line] if line < len(lines) else ""
        return style, line + 1, len(below) - len(below.lstrip(" ")) + 1
    return style, line, col


def load_yaml(text: str) -> Loaded:
    """Parse one YAML document. Syntax errors and duplicate keys come back as problems, not raised."""
    positions = Positions()
    problems: list[YamlProblem] = []
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # the reader checks every character up front
        return Loaded(None, positions, [_unreadable(text, exc)])
    try:
        root = loader.get_single_node()
    except _Refused as exc:
        return Loaded(None, positions, [exc.problem])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return Loaded(None, positions, [YamlProblem(line, col, f"YAML syntax error: {exc.problem}")])
    except yaml.YAMLError as exc:
        return Loaded(None, positions, [YamlProblem(1, 1, f"YAML error: {exc}")])
    finally:
        loader.dispose()
    if root is None:
        return Loaded(None, positions, [YamlProblem(1, 1, "the file is empty")])

    def build(node: yaml.Node, path: Path) -> Any:
        positions.values[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    problems.append(YamlProblem(*_mark(key_node), "mapping keys must be plain strings"))
                    continue
                key = str(constructor.construct_scalar(key_node))
                if key in out:
                    problems.append(YamlProblem(*_mark(key_node), f"duplicate key {key!r}"))
                positions.keys[(*path, key)] = _mark(key_node)
                out[key] = build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(child, (*path, i)) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode):
            positions.texts[path] = _text_start(node, source_lines)
            if node.tag == _INT_TAG and len(node.value) > 100:  # int() refuses over 4300 digits
                problems.append(YamlProblem(*_mark(node), _INT_RANGE))
                return None
        try:
            value = constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # e.g. month 13, !!int x
            problems.append(YamlProblem(*_mark(node), f"invalid value: {exc} (quote it to keep it as text)"))
            return None
        if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            problems.append(YamlProblem(*_mark(node), _INT_RANGE))
            return None
        if isinstance(value, bytes):
            problems.append(
                YamlProblem(*_mark(node), "binary values (!!binary) are not supported: use a string")
            )
            return None
        return value

    source_lines = text.splitlines()
    constructor = yaml.SafeLoader("")
    data = build(root, ())
    constructor.dispose()
    return Loaded(data, positions, problems)
