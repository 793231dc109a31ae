"""The workflow graph (``bastion.web.graph``): the SVG is parsed back with ``xml.etree`` and its nodes
and edges checked against the workflow's structure: order, ``if``, ``parallel``, ``for_each``,
``on_error`` handlers and approvals, and every shipped workflow draws as well-formed SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import bastion.connectors  # noqa: F401  (registers the actions the workflows call)
from bastion.respond.validate import parse_workflow
from bastion.web.graph import build_graph, workflow_svg

SVG = "{http://www.w3.org/2000/svg}"
WORKFLOWS = Path(__file__).resolve().parents[2] / "src" / "bastion" / "content" / "workflows"

SOURCE = """\
id: graph-demo
title: "Graph <demo> & co"
trigger: {manual: true, webhook: true}
inputs:
  host: {type: string}
  ips: {type: array, default: []}
steps:
  - id: lookup
    action: core.set
    with: {values: {host: "${{ inputs.host | lower }}"}}
  - id: block
    action: core.log
    for_each: "${{ inputs.ips }}"
    retry: 3
    on_error: {handler: cleanup}
    with: {message: "${{ item }}"}
  - id: isolate
    action: core.log
    if: "${{ steps.lookup.output.host != '<none>' }}"
    approval: {roles: [approver]}
    with: {message: isolate}
  - id: both
    parallel:
      - - {id: note_a, action: core.log, with: {message: a}}
        - {id: note_a2, action: core.log, with: {message: a2}}
      - - {id: note_b, action: core.log, with: {message: b}}
  - id: suspend
    action: ldap.disable_user
    on_error: continue
    with: {username: "${{ steps.lookup.output.host }}"}
handlers:
  - id: cleanup
    action: core.log
    on_error: {handler: last_resort}
    with: {message: failed}
  - id: last_resort
    action: core.log
    with: {message: failed again}
outputs:
  host: "${{ steps.lookup.output.host }}"
"""


def _parse(svg: str) -> tuple[ET.Element, dict[str, ET.Element], list[tuple[str, str, str]]]:
    root = ET.fromstring(svg)  # noqa: S314  (markup made by the code under test)
    nodes = {g.get("data-node", ""): g for g in root.iter(f"{SVG}g") if g.get("data-node")}
    edges = [
        (g.get("data-from", ""), g.get("data-to", ""), g.get("data-kind", ""))
        for g in root.iter(f"{SVG}g")
        if g.get("data-edge")
    ]
    return root, nodes, edges


def test_nodes_and_edges_follow_the_workflow() -> None:
    root, nodes, edges = _parse(workflow_svg(parse_workflow(SOURCE)))
    assert root.tag == f"{SVG}svg"
    assert root.get("data-workflow") == "graph-demo"
    # One node per step (branches and handlers included), plus start/end, the condition and the join.
    steps = {"lookup", "block", "isolate", "both", "note_a", "note_a2", "note_b", "suspend"}
    assert steps | {"cleanup", "last_resort", "@start", "@end", "if:isolate", "join:both"} == set(nodes)
    assert nodes["both"].get("data-kind") == "parallel"
    assert nodes["cleanup"].get("data-kind") == "handler"
    assert nodes["if:isolate"].get("data-kind") == "condition"

    # Order: start -> lookup -> block -> (condition) -> isolate -> both; the "no" edge skips isolate.
    assert ("@start", "lookup", "next") in edges
    assert ("lookup", "block", "next") in edges
    assert ("block", "if:isolate", "next") in edges
    assert ("if:isolate", "isolate", "yes") in edges
    assert ("isolate", "both", "next") in edges
    assert ("if:isolate", "both", "no") in edges
    # Parallel: fork to each branch's first step, sequence inside a branch, every branch end joins.
    assert ("both", "note_a", "branch") in edges
    assert ("both", "note_b", "branch") in edges
    assert ("note_a", "note_a2", "next") in edges
    assert ("note_a2", "join:both", "join") in edges
    assert ("note_b", "join:both", "join") in edges
    assert ("join:both", "suspend", "next") in edges
    assert ("suspend", "@end", "next") in edges
    # for_each is a loop on its step; on_error handlers get error edges, handler to handler too.
    assert ("block", "block", "loop") in edges
    assert ("block", "cleanup", "error") in edges
    assert ("cleanup", "last_resort", "error") in edges
    # A step is never wired to a branch step it does not precede.
    assert ("note_a", "note_b", "next") not in edges
    assert len(edges) == len(set(edges))


def test_approvals_are_marked() -> None:
    _, nodes, _ = _parse(workflow_svg(parse_workflow(SOURCE)))
    assert nodes["isolate"].get("data-approval") == "step"  # its own approval block
    assert nodes["suspend"].get("data-approval") == "policy"  # ldap.disable_user is high impact
    assert nodes["lookup"].get("data-approval") is None
    text = "".join(nodes["isolate"].itertext())
    assert "approval: approver" in text
    # A tenant whose policy approves nothing high-impact: no policy mark.
    _, nodes, _ = _parse(workflow_svg(parse_workflow(SOURCE), approval_impacts=()))
    assert nodes["suspend"].get("data-approval") is None
    assert nodes["isolate"].get("data-approval") == "step"


def test_text_is_escaped_and_statuses_colour_steps() -> None:
    svg = workflow_svg(parse_workflow(SOURCE), statuses={"lookup": "succeeded", "block": "failed"})
    root, nodes, _ = _parse(svg)  # would raise on unescaped "<" or "&"
    assert "Graph <demo> & co" in (root.get("aria-label") or "")
    assert "<demo>" not in svg and "&lt;demo&gt;" in svg
    cond_text = "".join(nodes["if:isolate"].itertext())
    assert "'<none>'" in cond_text  # the condition shown without ${{ }}, its "<" escaped in the markup
    assert nodes["lookup"].get("data-status") == "succeeded"
    assert nodes["block"].get("data-status") == "failed"
    assert nodes["isolate"].get("data-status") is None


def test_layout_is_top_to_bottom_without_overlaps() -> None:
    graph = build_graph(parse_workflow(SOURCE))
    by_id = {n.id: n for n in graph.nodes}
    order = ["@start", "lookup", "block", "if:isolate", "isolate", "both", "join:both", "suspend", "@end"]
    tops = [by_id[i].y for i in order]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)
    # Branches side by side, at the same height, below the fork.
    assert by_id["note_a"].y == by_id["note_b"].y > by_id["both"].y
    assert by_id["note_a"].x < by_id["note_b"].x
    # Handlers in a column right of the main line.
    main_right = max(n.x + n.w / 2 for n in graph.nodes if n.kind != "handler")
    assert all(by_id[h].x - by_id[h].w / 2 > main_right for h in ("cleanup", "last_resort"))
    boxes = [(n.x - n.w / 2, n.y, n.x + n.w / 2, n.y + n.h) for n in graph.nodes]
    for i, a in enumerate(boxes):
        assert a[0] >= 0 and a[1] >= 0 and a[2] <= graph.width and a[3] <= graph.height
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    # Every edge starts and ends on the drawing.
    for e in graph.edges:
        assert len(e.points) >= 2
        assert all(0 <= x <= graph.width and 0 <= y <= graph.height for x, y in e.points)


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.stem)
def test_every_shipped_workflow_draws(path: Path) -> None:
    workflow = parse_workflow(path.read_text())
    _, nodes, edges = _parse(workflow_svg(workflow))
    for step in workflow.all_steps():
        assert step.id in nodes
    ids = set(nodes)
    assert all(src in ids and dst in ids for src, dst, _ in edges)
    # Every node but the start is reached by some edge.
    targets = {dst for _, dst, _ in edges}
    assert ids - targets == {"@start"}
