"""Domain types only: no I/O. Everything else in Bastion speaks these."""

from bastion.model.alert import Alert, AlertStatus, ScoreComponent, Verdict
from bastion.model.asset import Asset, Criticality, Identity
from bastion.model.case import (
    Case,
    CaseAttachment,
    CaseComment,
    CaseStatus,
    CaseTask,
    TaskStatus,
    TimelineEntry,
)
from bastion.model.event import (
    ActionId,
    Actor,
    Device,
    Endpoint,
    Event,
    EventClass,
    File,
    Metadata,
    Process,
    Severity,
    Url,
    User,
)
from bastion.model.intel import Indicator, IndicatorType, Tlp
from bastion.model.observable import OBSERVABLE_TYPE_NAMES, Observable, ObservableType
from bastion.model.tenant import ROLE_RANK, Role, Tenant

__all__ = [
    "OBSERVABLE_TYPE_NAMES",
    "ROLE_RANK",
    "ActionId",
    "Actor",
    "Alert",
    "AlertStatus",
    "Asset",
    "Case",
    "CaseAttachment",
    "CaseComment",
    "CaseStatus",
    "CaseTask",
    "Criticality",
    "Device",
    "Endpoint",
    "Event",
    "EventClass",
    "File",
    "Identity",
    "Indicator",
    "IndicatorType",
    "Metadata",
    "Observable",
    "ObservableType",
    "Process",
    "Role",
    "ScoreComponent",
    "Severity",
    "TaskStatus",
    "Tenant",
    "TimelineEntry",
    "Tlp",
    "Url",
    "User",
    "Verdict",
]
