"""Human approvals for workflow steps: request, decide (web/API, CLI, signed links, Slack, e-mail), time out.

The engine relies on exactly these names; see docs/approvals.md.
"""

from bastion.respond.approvals.model import (
    AlreadyDecided,
    Approval,
    ApprovalClosed,
    ApprovalError,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalSpec,
    Decision,
    LinkError,
    NotAllowed,
)
from bastion.respond.approvals.service import (
    close_for_run,
    configure,
    decide,
    decide_from_slack,
    get_approval,
    handle_resolutions,
    list_approvals,
    map_slack_user,
    open_link,
    redeem_link,
    request_approval,
    resolve_on_timeout,
    set_resolution_listener,
    set_slack_channel,
)

__all__ = [
    "AlreadyDecided",
    "Approval",
    "ApprovalClosed",
    "ApprovalError",
    "ApprovalExpired",
    "ApprovalNotFound",
    "ApprovalSpec",
    "Decision",
    "LinkError",
    "NotAllowed",
    "close_for_run",
    "configure",
    "decide",
    "decide_from_slack",
    "get_approval",
    "handle_resolutions",
    "list_approvals",
    "map_slack_user",
    "open_link",
    "redeem_link",
    "request_approval",
    "resolve_on_timeout",
    "set_resolution_listener",
    "set_slack_channel",
]
