"""YAML templates for plain REST actions: inputs, one request, an output mapping.

A template becomes an :class:`~bastion.connectors.registry.ActionDef` like a Python action, so it is
listed, validated, wrapped by policy and recorded the same way. The request is rendered with the
workflow expression language over ``inputs``, ``connection`` and ``secrets`` and sent through
``core.http_request`` (so the SSRF guard applies); ``output`` is rendered over ``response`` too.

```yaml
id: abuseipdb.check_ip
impact: read
connection: abuseipdb          # the tenant's connection of that name gives base_url (and allowances)
secrets: [abuseipdb_api_key]
description: Reputation of an IP address.
inputs:
  ip: {type: string, description: the address}
request:
  method: GET
  url: /api/v2/check
  headers: {Key: "${{ secrets.abuseipdb_api_key }}", Accept: application/json}
  params: {ipAddress: "${{ inputs.ip }}"}
output: "${{ response.json.data }}"
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bastion.connectors.registry import IMPACTS, ActionContext, ActionDef, ActionError, register

__all__ = ["TemplateError", "load_all", "load_template"]

_DIR = Path(__file__).parent
_loaded = False
_INPUT_TYPES = {"string", "integer", "number", "boolean", "object", "array"}
_KEYS = {"id", "impact", "connection", "secrets", "description", "inputs", "request", "output", "idempotent"}


class TemplateError(ValueError):
    """A template file is malformed; the message names the file and the field."""


def load_template(doc: dict[str, Any], source: str) -> ActionDef:
    """Build (not register) the action a template describes."""
    if not isinstance(doc, dict):
        raise TemplateError(f"{source}: a template is a mapping")
    unknown = set(doc) - _KEYS
    if unknown:
        raise TemplateError(f"{source}: unknown keys {', '.join(sorted(unknown))}")
    for key in ("id", "impact", "request"):
        if key not in doc:
            raise TemplateError(f"{source}: missing {key!r}")
    if doc["impact"] not in IMPACTS:
        raise TemplateError(f"{source}: impact must be one of {', '.join(IMPACTS)}")
    request = doc["request"]
    if not isinstance(request, dict) or "url" not in request:
        raise TemplateError(f"{source}: request needs a url")
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in (doc.get("inputs") or {}).items():
        spec = spec or {}
        kind = spec.get("type", "string")
        if kind not in _INPUT_TYPES:
            raise TemplateError(f"{source}: input {name!r} has unknown type {kind!r}")
        prop: dict[str, Any] = {"type": kind}
        if "description" in spec:
            prop["description"] = spec["description"]
        if "default" in spec:
            prop["default"] = spec["default"]
        elif spec.get("required", True):
            required.append(name)
        props[name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    output = doc.get("output", "${{ response.json }}")
    defaults = {k: v["default"] for k, v in props.items() if "default" in v}

    async def run(*, ctx: ActionContext, **inputs: Any) -> Any:
        from bastion.connectors.core import http_request
        from bastion.respond.expr import ExpressionError, render

        scope = {"inputs": {**defaults, **inputs}, "connection": ctx.connection, "secrets": ctx.secrets}
        try:
            rendered = render(request, scope)
        except ExpressionError as exc:
            raise ActionError(f"template {doc['id']}: {exc}") from None
        response = await http_request(
            url=rendered["url"],
            method=rendered.get("method", "GET"),
            headers=rendered.get("headers"),
            params=rendered.get("params"),
            json=rendered.get("json"),
            body=rendered.get("body"),
            ctx=ctx,
        )
        try:
            return render(output, {**scope, "response": response})
        except ExpressionError as exc:
            raise ActionError(f"template {doc['id']}: output: {exc}") from None

    return ActionDef(
        id=str(doc["id"]),
        fn=run,
        impact=str(doc["impact"]),
        description=str(doc.get("description", "")),
        schema=schema,
        secrets=tuple(doc.get("secrets") or ()),
        idempotent=bool(doc.get("idempotent", False)),
        connection=doc.get("connection"),
        source=f"template:{source}",
    )


def load_all() -> None:
    """Register every ``*.yaml`` template shipped in this folder (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for path in sorted(_DIR.glob("*.yaml")):
        register(load_template(yaml.safe_load(path.read_text()), path.name))
