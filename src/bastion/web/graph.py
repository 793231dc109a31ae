"""A workflow drawn as a graph: server-rendered SVG for the console's workflow and run pages.

The console shows a workflow's shape at a glance: steps in order from top to bottom, ``if`` conditions
as decision diamonds whose "no" edge bypasses the step, ``parallel`` branches side by side between a
fork and a join, ``for_each`` as a loop on the step, ``on_error`` handlers in a column to the right
with dashed error edges, and approvals marked (the step's own block, or the tenant policy for the
action's impact). No graph library fits a small, dependency-free, deterministic top-to-bottom layout
of this structured language, so the layout here is a recursive box layout: each step is a block with
an axis, extents and open ends ("pending" edges) that the next block closes.

Everything is pure: :func:`build_graph` gives the nodes and edges with coordinates (for tests and any
other renderer), :func:`workflow_svg` the markup. All text is escaped; colours are presentation
attributes (no ``<style>`` element), so the SVG needs no stylesheet and passes a strict CSP.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from bastion.connectors.registry import get_action
from bastion.respond.model import Step, Workflow

__all__ = ["Edge", "Graph", "Node", "build_graph", "workflow_svg"]

Point = tuple[float, float]

NODE_W = 210.0
NODE_H = 56.0
SMALL_H = 30.0  # start, end and join nodes
DIAMOND = 26.0
VGAP = 36.0
HGAP = 28.0
LANE = 26.0
LOOP = 16.0
MARGIN = 24.0
HANDLER_GAP = 70.0
CHAR_W = 6.4  # average advance of an 11-12px sans-serif character, for truncation
COND_W = NODE_W * 1.1  # room for a condition's text beside its diamond


@dataclass
class Node:
    """One box of the graph. ``id`` is the step id, or a synthetic id holding a character step ids
    cannot contain (``@start``, ``@end``, ``if:<step>``, ``join:<step>``)."""

    id: str
    kind: str  # start, end, action, uses, parallel, join, condition, handler
    title: str
    subtitle: str = ""
    badges: list[str] = field(default_factory=list)
    approval: str | None = None  # "step" (its own block), "policy" (its impact needs one), None
    step_id: str | None = None
    x: float = 0.0  # centre
    y: float = 0.0  # top
    w: float = NODE_W
    h: float = NODE_H
    tooltip: str = ""


@dataclass
class Edge:
    source: str
    target: str
    kind: str  # next, yes, no, branch, join, loop, error
    label: str = ""
    points: list[Point] = field(default_factory=list)


@dataclass
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    width: float
    height: float

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)


@dataclass
class _Pending:
    """An edge whose source is placed and whose target is the entry of whatever block comes next."""

    source: str
    kind: str
    label: str
    points: list[Point]


@dataclass
class _Block:
    nodes: list[Node]
    edges: list[Edge]
    pending: list[_Pending]
    entry: str
    left: float  # extent left of the axis (x = 0)
    right: float
    height: float

    def shift(self, dx: float, dy: float) -> None:
        for n in self.nodes:
            n.x += dx
            n.y += dy
        for e in self.edges:
            e.points = [(x + dx, y + dy) for x, y in e.points]
        for p in self.pending:
            p.points = [(x + dx, y + dy) for x, y in p.points]


def _route_down(points: list[Point], target: Node) -> list[Point]:
    """``points`` continued to the top centre of ``target`` with vertical/horizontal segments."""
    sx, _ = points[-1]
    tx, ty = target.x, target.y
    if abs(sx - tx) < 0.5:
        return [*points, (tx, ty)]
    mid = ty - VGAP / 2
    return [*points, (sx, mid), (tx, mid), (tx, ty)]


def _close(pending: list[_Pending], target: Node) -> list[Edge]:
    return [Edge(p.source, target.id, p.kind, p.label, _route_down(p.points, target)) for p in pending]


def _bare(expression: str) -> str:
    """``${{ x }}`` shown as ``x`` (a condition is always one expression)."""
    text = expression.strip()
    if text.startswith("${{") and text.endswith("}}") and text.count("${{") == 1:
        return text[3:-2].strip()
    return text


def _clip(text: str, width: float) -> str:
    room = max(4, int(width / CHAR_W))
    return text if len(text) <= room else text[: room - 1] + "…"


class _Layout:
    def __init__(self, workflow: Workflow, approval_impacts: Collection[str]) -> None:
        self.workflow = workflow
        self.approval_impacts = set(approval_impacts)
        self.handler_refs: dict[str, list[str]] = {}  # handler id -> node ids that hand over to it

    # ------------------------------------------------------------ one step

    def step_node(self, step: Step, kind: str) -> Node:
        badges: list[str] = []
        approval: str | None = None
        if step.parallel:
            subtitle = f"parallel · {len(step.parallel)} branches"
            kind = "parallel" if kind != "handler" else kind
        elif step.uses:
            subtitle = f"uses {step.uses}" + (f"@{step.uses_version}" if step.uses_version else "")
            kind = "uses" if kind != "handler" else kind
        else:
            subtitle = step.action or ""
            defn = get_action(step.action) if step.action else None
            if step.approval is None and defn is not None and defn.impact in self.approval_impacts:
                approval = "policy"
        if step.approval is not None:
            approval = "step"
            roles = ", ".join(str(r) for r in step.approval.get("roles", []))
            badges.append(f"approval: {roles}")
        elif approval == "policy":
            badges.append("approval (policy)")
        if step.for_each is not None:
            badges.append("for each")
        if step.retry.max_attempts > 1:
            badges.append(f"retry {step.retry.max_attempts}x")
        if step.on_error == "continue":
            badges.append("on error: continue")
        elif step.on_error != "fail":
            badges.append(f"on error → {step.on_error}")
        tip = [f"{step.id}: {subtitle}"]
        if step.if_:
            tip.append(f"if {step.if_}")
        if step.for_each is not None:
            tip.append(f"for each {step.for_each}")
        tip.extend(badges)
        return Node(
            id=step.id,
            kind=kind,
            title=step.id,
            subtitle=subtitle,
            badges=badges,
            approval=approval,
            step_id=step.id,
            tooltip="\n".join(tip),
        )

    def body(self, step: Step, kind: str) -> _Block:
        node = self.step_node(step, kind)
        if step.on_error not in ("fail", "continue"):
            self.handler_refs.setdefault(step.on_error, []).append(node.id)
        if not step.parallel:
            node.x, node.y = 0.0, 0.0
            edges: list[Edge] = []
            left = NODE_W / 2
            if step.for_each is not None:
                x0 = -NODE_W / 2
                edges.append(
                    Edge(
                        node.id,
                        node.id,
                        "loop",
                        "each",
                        [
                            (x0, NODE_H * 0.3),
                            (x0 - LOOP, NODE_H * 0.3),
                            (x0 - LOOP, NODE_H * 0.7),
                            (x0, NODE_H * 0.7),
                        ],
                    )
                )
                left += LOOP + 4
            return _Block(
                [node],
                edges,
                [_Pending(node.id, "next", "", [(0.0, NODE_H)])],
                node.id,
                left,
                NODE_W / 2,
                NODE_H,
            )
        return self.parallel(step, node)

    def parallel(self, step: Step, fork: Node) -> _Block:
        fork.x, fork.y = 0.0, 0.0
        join = Node(
            id=f"join:{step.id}", kind="join", title="join", step_id=step.id, w=NODE_W * 0.6, h=SMALL_H
        )
        branches = [self.sequence(b) for b in step.parallel]
        widths = [b.left + b.right for b in branches]
        total = sum(widths) + HGAP * max(0, len(branches) - 1)
        top = NODE_H + VGAP
        x = -total / 2
        nodes: list[Node] = [fork]
        edges: list[Edge] = []
        pending: list[_Pending] = []
        bottom = top
        for block, width in zip(branches, widths, strict=True):
            block.shift(x + block.left, top)
            x += width + HGAP
            nodes.extend(block.nodes)
            edges.extend(block.edges)
            entry = next(n for n in block.nodes if n.id == block.entry)
            edges.append(Edge(fork.id, entry.id, "branch", "", _route_down([(0.0, NODE_H)], entry)))
            pending.extend(block.pending)
            bottom = max(bottom, top + block.height)
        if not branches:
            pending.append(_Pending(fork.id, "branch", "", [(0.0, NODE_H)]))
            bottom = NODE_H
        join.x, join.y = 0.0, bottom + VGAP
        for p in pending:
            p.kind = "join" if p.kind == "next" else p.kind
        edges.extend(_close(pending, join))
        nodes.append(join)
        half = max(NODE_W / 2, total / 2)
        return _Block(
            nodes,
            edges,
            [_Pending(join.id, "next", "", [(0.0, join.y + SMALL_H)])],
            fork.id,
            half,
            half,
            join.y + SMALL_H,
        )

    def step(self, step: Step, kind: str = "action") -> _Block:
        block = self.body(step, kind)
        if not step.if_:
            return block
        text = _clip("if " + _bare(step.if_), COND_W)
        cond = Node(
            id=f"if:{step.id}",
            kind="condition",
            title=text,
            step_id=step.id,
            w=DIAMOND,
            h=DIAMOND,
            tooltip=f"if {step.if_}",
        )
        block.shift(0.0, DIAMOND + VGAP * 0.8)
        entry = next(n for n in block.nodes if n.id == block.entry)
        lane = max(block.right, DIAMOND / 2 + 8) + LANE
        yes = Edge(cond.id, entry.id, "yes", "yes", [(0.0, DIAMOND), (0.0, entry.y)])
        no = _Pending(cond.id, "no", "no", [(DIAMOND / 2, DIAMOND / 2), (lane, DIAMOND / 2)])
        return _Block(
            [cond, *block.nodes],
            [yes, *block.edges],
            [*block.pending, no],
            cond.id,
            block.left,
            max(lane + 18, DIAMOND / 2 + 8 + len(text) * CHAR_W),
            block.height + DIAMOND + VGAP * 0.8,
        )

    # ------------------------------------------------------------ sequences

    def sequence(self, steps: list[Step], kind: str = "action") -> _Block:
        blocks = [self.step(s, kind) for s in steps]
        return self.stack(blocks)

    def stack(self, blocks: list[_Block]) -> _Block:
        nodes: list[Node] = []
        edges: list[Edge] = []
        pending: list[_Pending] = []
        y = 0.0
        for block in blocks:
            block.shift(0.0, y)
            entry = next(n for n in block.nodes if n.id == block.entry)
            edges.extend(_close(pending, entry))
            nodes.extend(block.nodes)
            edges.extend(block.edges)
            pending = block.pending
            y += block.height + VGAP
        return _Block(
            nodes,
            edges,
            pending,
            blocks[0].entry if blocks else "",
            max((b.left for b in blocks), default=0.0),
            max((b.right for b in blocks), default=0.0),
            max(0.0, y - VGAP),
        )


def _terminal(node_id: str, kind: str, title: str, subtitle: str = "") -> _Block:
    node = Node(id=node_id, kind=kind, title=title, subtitle=subtitle, w=NODE_W * 0.8, h=SMALL_H)
    node.tooltip = f"{title}: {subtitle}" if subtitle else title
    return _Block(
        [node],
        [],
        [_Pending(node_id, "next", "", [(0.0, SMALL_H)])],
        node_id,
        node.w / 2,
        node.w / 2,
        SMALL_H,
    )


def build_graph(workflow: Workflow, *, approval_impacts: Collection[str] = ("high",)) -> Graph:
    """Nodes and edges of ``workflow`` with coordinates (top-left of the drawing is 0, 0).

    ``approval_impacts`` are the action impacts the tenant's policy sends for approval (the default
    policy: ``high``); a step calling such an action without its own ``approval`` block is marked
    "approval (policy)".
    """
    lay = _Layout(workflow, approval_impacts)
    triggers = ", ".join(t.kind for t in workflow.triggers) or "manual"
    start = _terminal("@start", "start", "start", triggers)
    steps = lay.sequence(workflow.steps)
    outputs = ", ".join(workflow.outputs)
    end = _terminal("@end", "end", "end", f"outputs: {outputs}" if outputs else "")
    main = lay.stack([start, steps, end] if workflow.steps else [start, end])
    main.pending = []
    main.shift(MARGIN + main.left, MARGIN)
    nodes, edges = main.nodes, main.edges
    width = MARGIN + main.left + main.right
    height = MARGIN + main.height
    if workflow.handlers:
        axis = width + HANDLER_GAP + NODE_W / 2
        lane = width + HANDLER_GAP / 2
        placed: dict[str, Node] = {}
        floor = MARGIN
        blocks: list[tuple[str, _Block]] = []
        for hid, handler in workflow.handlers.items():
            blocks.append((hid, lay.step(handler, "handler")))
        by_id = {n.id: n for n in nodes}
        right = axis + NODE_W / 2
        for hid, block in blocks:
            refs = [by_id[r] for r in lay.handler_refs.get(hid, []) if r in by_id]
            want = min((r.y for r in refs), default=floor)
            top = max(want, floor)
            block.shift(axis, top)
            nodes.extend(block.nodes)
            edges.extend(block.edges)
            for n in block.nodes:
                by_id[n.id] = n
            entry = by_id[block.entry]
            placed[hid] = entry
            floor = top + block.height + VGAP
            right = max(right, axis + block.right)
        # Error edges, from every step (main line or handler) whose on_error names a handler.
        for hid, sources in lay.handler_refs.items():
            target = placed.get(hid)
            if target is None:
                continue
            ty = target.y + target.h / 2
            for sid in sources:
                src = by_id.get(sid)
                if src is None:
                    continue
                sy = src.y + src.h / 2
                if src.kind == "handler":  # handler to handler: round the right of the column
                    out = right + LANE
                    pts = [(src.x + src.w / 2, sy), (out, sy), (out, ty), (target.x + target.w / 2, ty)]
                else:
                    pts = [(src.x + src.w / 2, sy), (lane, sy), (lane, ty), (target.x - target.w / 2, ty)]
                edges.append(Edge(sid, target.id, "error", "on error", pts))
        width = max(width, right + LANE + 8)
        height = max(height, floor - VGAP)
    return Graph(nodes, edges, width + MARGIN, height + MARGIN)


# ---------------------------------------------------------------- SVG

_FILL = {
    "start": ("#e8eef7", "#2f6db5"),
    "end": ("#e8eef7", "#2f6db5"),
    "action": ("#ffffff", "#5b6470"),
    "uses": ("#f3f0fa", "#6a4fb3"),
    "parallel": ("#eef6f0", "#3a9a5b"),
    "join": ("#eef6f0", "#3a9a5b"),
    "condition": ("#fff6e0", "#b7791f"),
    "handler": ("#fdf0ef", "#c4453c"),
}
_STATUS = {
    "succeeded": ("#e6f4ea", "#2e7d32"),
    "failed": ("#fdecea", "#c62828"),
    "running": ("#e3f2fd", "#1565c0"),
    "waiting_approval": ("#fff8e1", "#b7791f"),
    "skipped": ("#f1f1f1", "#9e9e9e"),
    "cancelled": ("#f1f1f1", "#616161"),
}
_EDGE = {
    "next": ("#5b6470", ""),
    "yes": ("#b7791f", ""),
    "no": ("#b7791f", "5 4"),
    "branch": ("#3a9a5b", ""),
    "join": ("#3a9a5b", ""),
    "loop": ("#6a4fb3", ""),
    "error": ("#c4453c", "6 4"),
}


def _arrow(points: list[Point], colour: str) -> str:
    (x1, y1), (x2, y2) = points[-2], points[-1]
    dx, dy = x2 - x1, y2 - y1
    length = max((dx * dx + dy * dy) ** 0.5, 1e-6)
    ux, uy = dx / length, dy / length
    size = 6.0
    bx, by = x2 - ux * size, y2 - uy * size
    px, py = -uy * size * 0.55, ux * size * 0.55
    pts = f"{x2:.1f},{y2:.1f} {bx + px:.1f},{by + py:.1f} {bx - px:.1f},{by - py:.1f}"
    return f'<polygon points="{pts}" fill="{colour}"/>'


def _edge_svg(edge: Edge) -> str:
    colour, dash = _EDGE.get(edge.kind, _EDGE["next"])
    d = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(edge.points))
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    parts = [
        f"<g data-edge={quoteattr(edge.source + ' -> ' + edge.target)} data-from={quoteattr(edge.source)}"
        f" data-to={quoteattr(edge.target)} data-kind={quoteattr(edge.kind)}>",
        f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.5"{dash_attr}/>',
    ]
    if len(edge.points) >= 2:
        parts.append(_arrow(edge.points, colour))
    if edge.label and edge.kind in ("yes", "no"):
        x, y = edge.points[1] if edge.kind == "no" else edge.points[0]
        lx, ly = (x + 4, y + 13) if edge.kind == "no" else (x + 5, y + 12)
        parts.append(
            f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="10" fill="{colour}">{escape(edge.label)}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _node_svg(node: Node, status: str | None) -> str:
    fill, stroke = _FILL.get(node.kind, _FILL["action"])
    if status in _STATUS:
        fill, stroke = _STATUS[status]
    attrs = f"data-node={quoteattr(node.id)} data-kind={quoteattr(node.kind)}"
    if node.step_id:
        attrs += f" data-step={quoteattr(node.step_id)}"
    if node.approval:
        attrs += f" data-approval={quoteattr(node.approval)}"
    if status:
        attrs += f" data-status={quoteattr(status)}"
    out = [f"<g {attrs}>", f"<title>{escape(node.tooltip or node.title)}</title>"]
    left, top = node.x - node.w / 2, node.y
    if node.kind == "condition":
        c, r = node.y + node.h / 2, node.w / 2
        corners = [(node.x, top), (node.x + r, c), (node.x, top + node.h), (node.x - r, c)]
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in corners)
        out.append(f'<polygon points="{pts}" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>')
        out.append(
            f'<text x="{node.x + r + 8:.1f}" y="{c - 5:.1f}" font-size="11" fill="#7a5a12">'
            f"{escape(node.title)}</text>"
        )
        out.append("</g>")
        return "".join(out)
    radius = node.h / 2 if node.kind in ("start", "end", "join") else 6
    width = 2.5 if node.approval == "step" else 1.5
    dash = ' stroke-dasharray="4 3"' if node.kind == "handler" else ""
    out.append(
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{node.w:.1f}" height="{node.h:.1f}" rx="{radius:.1f}"'
        f' fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}/>'
    )
    if node.kind in ("start", "end", "join"):
        label = node.title + (f" · {node.subtitle}" if node.subtitle else "")
        out.append(
            f'<text x="{node.x:.1f}" y="{top + node.h / 2 + 4:.1f}" font-size="11" fill="#24292f"'
            f' text-anchor="middle">{escape(_clip(label, node.w - 16))}</text>'
        )
    else:
        tx = left + 10
        out.append(
            f'<text x="{tx:.1f}" y="{top + 18:.1f}" font-size="12" font-weight="bold" fill="#24292f">'
            f"{escape(_clip(node.title, node.w - 20))}</text>"
        )
        out.append(
            f'<text x="{tx:.1f}" y="{top + 33:.1f}" font-size="11" fill="#57606a">'
            f"{escape(_clip(node.subtitle, node.w - 20))}</text>"
        )
        if node.badges:
            colour = "#b7791f" if node.approval else "#57606a"
            out.append(
                f'<text x="{tx:.1f}" y="{top + 48:.1f}" font-size="10" fill="{colour}">'
                f"{escape(_clip(' · '.join(node.badges), node.w - 20))}</text>"
            )
        if node.approval:
            cx, cy = left + node.w - 12, top + 12
            out.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="#f2b705" stroke="#7a5a12" stroke-width="1">'
                f"<title>{'needs an approval' if node.approval == 'step' else 'needs an approval by policy'}"
                "</title></circle>"
            )
    out.append("</g>")
    return "".join(out)


def workflow_svg(
    workflow: Workflow,
    *,
    statuses: Mapping[str, str] | None = None,
    approval_impacts: Collection[str] = ("high",),
    label: Callable[[Workflow], str] | None = None,
    version: int | None = None,
) -> str:
    """The SVG markup of ``workflow``'s graph. ``statuses`` (step id -> run status) colours the steps
    of a run; ``label`` gives the accessible name (default: the workflow's title and ``version``, the
    stored version shown, which the source's own ``version:`` key need not match)."""
    graph = build_graph(workflow, approval_impacts=approval_impacts)
    status = dict(statuses or {})
    shown = f"{workflow.id} v{version}" if version is not None else workflow.id
    name = label(workflow) if label else f"Workflow {workflow.title} ({shown})"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="workflow-graph" role="img"'
        f' viewBox="0 0 {graph.width:.0f} {graph.height:.0f}" width="{graph.width:.0f}"'
        f' height="{graph.height:.0f}" font-family="system-ui, -apple-system, Segoe UI, sans-serif"'
        f" aria-label={quoteattr(name)} data-workflow={quoteattr(workflow.id)}>",
        f"<title>{escape(name)}</title>",
        '<g data-layer="edges">',
        *(_edge_svg(e) for e in graph.edges),
        "</g>",
        '<g data-layer="nodes">',
        *(
            _node_svg(n, status.get(n.step_id or "") if n.kind not in ("condition", "join") else None)
            for n in graph.nodes
        ),
        "</g>",
        "</svg>",
    ]
    return "".join(parts)
