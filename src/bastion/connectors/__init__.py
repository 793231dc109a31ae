"""Connectors: the action registry, the built-in actions, YAML REST templates and the policy wrappers."""

from bastion.connectors.registry import (
    ActionContext,
    ActionDef,
    ActionError,
    action,
    all_actions,
    check_inputs,
    get_action,
)

__all__ = ["ActionContext", "ActionDef", "ActionError", "action", "all_actions", "check_inputs", "get_action"]
