"""YAML loading that remembers where every key and value came from (PyYAML node marks).

The validator reports each problem at a line and column; ``load_yaml`` returns plain Python values plus
a :class:`Positions` map from a path (``("steps", 2, "with", "url")``) to the 1-based position of the
value at that path, and of its key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["Loaded", "Positions", "YamlProblem", "load_yaml"]

Path = tuple[str | int, ...]


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
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
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
                key = str(loader.construct_scalar(key_node))
                if key in out:
                    problems.append(YamlProblem(*_mark(key_node), f"duplicate key {key!r}"))
                positions.keys[(*path, key)] = _mark(key_node)
                out[key] = build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(child, (*path, i)) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode):
            positions.texts[path] = _text_start(node, source_lines)
        try:
            return loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problems.append(YamlProblem(*_mark(node), f"invalid value: {exc}"))
            return None

    source_lines = text.splitlines()
    loader = yaml.SafeLoader("")
    data = build(root, ())
    loader.dispose()
    return Loaded(data, positions, problems)
