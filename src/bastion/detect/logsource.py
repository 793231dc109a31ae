"""Which events a Sigma ``logsource`` covers, and how Sigma field names map onto event fields.

Windows events keep their original field names (the evtx JSON form), so SigmaHQ rules apply unchanged;
a log source is a Windows channel plus, for Sigma categories, the EventIDs that carry them (the same
mapping SigmaHQ's own tests use for Sysmon, Security, PowerShell and the rest). Process creation from
Security 4688 uses the field names of that event (``NewProcessName`` for ``Image``), as SigmaHQ does.

Everything else (Linux/auditd, cloud audit logs, proxy, DNS, firewall, web servers) is matched on flat
JSON documents: a ``SourceMap`` names how to recognise the events of a log source and, optionally, maps
Sigma field names onto the document's own (for example ECS) names. Mappings are plain data so a tenant
can add its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CATEGORY_MAP",
    "DEFAULT_SOURCE_MAPS",
    "SERVICE_CHANNELS",
    "SourceMap",
    "WindowsTarget",
    "windows_targets",
]

# Sigma ``service`` (product windows) -> Windows event log channel names.
SERVICE_CHANNELS: dict[str, tuple[str, ...]] = {
    "security": ("Security",),
    "system": ("System",),
    "application": ("Application",),
    "sysmon": ("Microsoft-Windows-Sysmon/Operational",),
    "powershell": ("Microsoft-Windows-PowerShell/Operational", "PowerShellCore/Operational"),
    "powershell-classic": ("Windows PowerShell",),
    "ntlm": ("Microsoft-Windows-NTLM/Operational",),
    "taskscheduler": ("Microsoft-Windows-TaskScheduler/Operational",),
    "wmi": ("Microsoft-Windows-WMI-Activity/Operational",),
    "dhcp": ("Microsoft-Windows-DHCP-Server/Operational",),
    "printservice-admin": ("Microsoft-Windows-PrintService/Admin",),
    "printservice-operational": ("Microsoft-Windows-PrintService/Operational",),
    "smbclient-security": ("Microsoft-Windows-SmbClient/Security",),
    "smbclient-connectivity": ("Microsoft-Windows-SmbClient/Connectivity",),
    "smbserver-connectivity": ("Microsoft-Windows-SMBServer/Connectivity",),
    "terminalservices-localsessionmanager": (
        "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational",
    ),
    "codeintegrity-operational": ("Microsoft-Windows-CodeIntegrity/Operational",),
    "applocker": (
        "Microsoft-Windows-AppLocker/MSI and Script",
        "Microsoft-Windows-AppLocker/EXE and DLL",
        "Microsoft-Windows-AppLocker/Packaged app-Deployment",
        "Microsoft-Windows-AppLocker/Packaged app-Execution",
    ),
    "msexchange-management": ("MSExchange Management",),
    "windefend": ("Microsoft-Windows-Windows Defender/Operational",),
    "firewall-as": ("Microsoft-Windows-Windows Firewall With Advanced Security/Firewall",),
    "bits-client": ("Microsoft-Windows-Bits-Client/Operational",),
    "security-mitigations": (
        "Microsoft-Windows-Security-Mitigations/Kernel Mode",
        "Microsoft-Windows-Security-Mitigations/User Mode",
    ),
    "diagnosis-scripted": ("Microsoft-Windows-Diagnosis-Scripted/Operational",),
    "shell-core": ("Microsoft-Windows-Shell-Core/Operational",),
    "openssh": ("OpenSSH/Operational",),
    "ldap": ("Microsoft-Windows-LDAP-Client/Debug",),
    "bitlocker": ("Microsoft-Windows-BitLocker/BitLocker Management",),
    "vhdmp": ("Microsoft-Windows-VHDMP/Operational",),
    "appxdeployment-server": ("Microsoft-Windows-AppXDeploymentServer/Operational",),
    "lsa-server": ("Microsoft-Windows-LSA/Operational",),
    "appxpackaging-om": ("Microsoft-Windows-AppxPackaging/Operational",),
    "dns-client": ("Microsoft-Windows-DNS Client Events/Operational",),
    "dns-server": ("DNS Server",),
    "dns-server-analytic": ("Microsoft-Windows-DNSServer/Analytical",),
    "appmodel-runtime": ("Microsoft-Windows-AppModel-Runtime/Admin",),
    "capi2": ("Microsoft-Windows-CAPI2/Operational",),
    "certificateservicesclient-lifecycle-system": (
        "Microsoft-Windows-CertificateServicesClient-Lifecycle-System/Operational",
    ),
    "kernel-shimengine": (
        "Microsoft-Windows-Kernel-ShimEngine/Operational",
        "Microsoft-Windows-Kernel-ShimEngine/Diagnostic",
    ),
    "application-experience": (
        "Microsoft-Windows-Application-Experience/Program-Telemetry",
        "Microsoft-Windows-Application-Experience/Program-Compatibility-Assistant",
    ),
    "ntfs": ("Microsoft-Windows-Ntfs/Operational",),
    "hyper-v-worker": ("Microsoft-Windows-Hyper-V-Worker",),
    "kernel-event-tracing": ("Microsoft-Windows-Kernel-EventTracing",),
    "sense": ("Microsoft-Windows-SENSE/Operational",),
    "servicebus-client": ("Microsoft-ServiceBus-Client/Admin", "Microsoft-ServiceBus-Client/Operational"),
    "microsoft-servicebus-client": (
        "Microsoft-ServiceBus-Client/Admin",
        "Microsoft-ServiceBus-Client/Operational",
    ),
    "iis-configuration": ("Microsoft-IIS-Configuration/Operational",),
    "driver-framework": ("Microsoft-Windows-DriverFrameworks-UserMode/Operational",),
    "rdp": ("Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational",),
}

_SYSMON = "sysmon"


@dataclass(frozen=True)
class _Category:
    service: str
    event_ids: tuple[int, ...]
    conditions: tuple[tuple[str, str], ...] = ()
    fields: tuple[tuple[str, str], ...] = ()


def _sysmon(*ids: int, **conds: str) -> list[_Category]:
    return [_Category(_SYSMON, ids, tuple(conds.items()))]


# Sigma ``category`` (product windows) -> where its events are.
CATEGORY_MAP: dict[str, list[_Category]] = {
    "process_creation": [
        _Category(_SYSMON, (1,)),
        _Category(
            "security",
            (4688,),
            fields=(("Image", "NewProcessName"), ("ParentImage", "ParentProcessName")),
        ),
    ],
    "file_change": _sysmon(2),
    "network_connection": _sysmon(3),
    "sysmon_status": _sysmon(4, 16),
    "process_termination": _sysmon(5),
    "driver_load": _sysmon(6),
    "image_load": _sysmon(7),
    "create_remote_thread": _sysmon(8),
    "raw_access_thread": _sysmon(9),
    "process_access": _sysmon(10),
    "file_event": _sysmon(11),
    "registry_event": _sysmon(12, 13, 14),
    "registry_add": _sysmon(12, EventType="CreateKey"),
    "registry_delete": [
        _Category(_SYSMON, (12,), (("EventType", "DeleteKey"),)),
        _Category(_SYSMON, (12,), (("EventType", "DeleteValue"),)),
    ],
    "registry_set": _sysmon(13),
    "registry_rename": _sysmon(14),
    "create_stream_hash": _sysmon(15),
    "pipe_created": _sysmon(17, 18),
    "wmi_event": _sysmon(19, 20, 21),
    "dns_query": _sysmon(22),
    "file_delete": _sysmon(23),
    "clipboard_change": _sysmon(24),
    "process_tampering": _sysmon(25),
    "file_delete_detected": _sysmon(26),
    "file_block_executable": _sysmon(27),
    "file_block_shredding": _sysmon(28),
    "file_executable_detected": _sysmon(29),
    "sysmon_error": _sysmon(255),
    "ps_module": [_Category("powershell", (4103,))],
    "ps_script": [_Category("powershell", (4104,))],
    "ps_classic_start": [_Category("powershell-classic", (400,))],
    "ps_classic_provider_start": [_Category("powershell-classic", (600,))],
    "ps_classic_script": [_Category("powershell-classic", (800,))],
    "antivirus": [
        _Category(
            "windefend",
            (1006, 1007, 1008, 1009, 1010, 1011, 1012, 1017, 1018, 1019, 1115, 1116),
            fields=(("Signature", "ThreatName"), ("Filename", "Path")),
        )
    ],
}


@dataclass(frozen=True)
class WindowsTarget:
    """One place a Windows rule applies: a channel, optionally one EventID, extra field conditions and
    Sigma-to-event field renames. ``event_id`` None means every event of the channel; ``channel`` None
    means every Windows event (rules naming only ``product: windows``)."""

    channel: str | None
    event_id: int | None
    conditions: tuple[tuple[str, str], ...] = ()
    fields: tuple[tuple[str, str], ...] = ()


def windows_targets(category: str | None, service: str | None) -> list[WindowsTarget] | None:
    """Targets for a ``product: windows`` log source; None when the log source is not mapped."""
    if category is not None:
        cats = CATEGORY_MAP.get(category)
        if cats is None:
            return None
        out: list[WindowsTarget] = []
        for cat in cats:
            if service is not None and service != cat.service:
                continue
            for channel in SERVICE_CHANNELS[cat.service]:
                for eid in cat.event_ids:
                    out.append(WindowsTarget(channel, eid, cat.conditions, cat.fields))
        return out or None
    if service is not None:
        channels = SERVICE_CHANNELS.get(service)
        if channels is None:
            return None
        return [WindowsTarget(c, None) for c in channels]
    return [WindowsTarget(None, None)]


@dataclass(frozen=True)
class SourceMap:
    """How to recognise the (non-Windows) events of one Sigma log source, and how to name its fields.

    An event belongs to the log source when every field in ``requires`` is present. ``fields`` maps a
    Sigma field name to the event's own (for example ECS or OCSF) field name; unmapped names are used as
    they are. ``None`` in product/service/category means "any".
    """

    product: str | None = None
    service: str | None = None
    category: str | None = None
    requires: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)

    def covers(self, product: str | None, service: str | None, category: str | None) -> bool:
        """True when a rule with this log source belongs to this map."""
        if self.product is None and self.service is None and self.category is None:
            return False
        return (
            (self.product is None or self.product == product)
            and (self.service is None or self.service == service)
            and (self.category is None or self.category == category)
        )


_ECS_PROXY = {
    "c-uri": "url.original",
    "c-uri-query": "url.query",
    "c-uri-extension": "url.extension",
    "c-useragent": "user_agent.original",
    "cs-method": "http.request.method",
    "cs-host": "url.domain",
    "cs-referrer": "http.request.referrer",
    "sc-status": "http.response.status_code",
    "dst_ip": "destination.ip",
    "src_ip": "source.ip",
}
_ECS_DNS = {"query": "dns.question.name", "answer": "dns.answers.data", "record_type": "dns.question.type"}
_ECS_FIREWALL = {
    "src_ip": "source.ip",
    "dst_ip": "destination.ip",
    "src_port": "source.port",
    "dst_port": "destination.port",
    "action": "event.action",
}

# Log sources of flat JSON documents. Vendor-native documents (CloudTrail, Azure, GCP, Okta, auditd) keep
# their own field names, which is what SigmaHQ rules use; ECS documents get Sigma's generic names mapped.
# A rule whose log source no entry covers applies to every non-Windows document (its own field tests
# decide), which is how tools without a mapping behave.
DEFAULT_SOURCE_MAPS: tuple[SourceMap, ...] = (
    SourceMap(product="aws", service="cloudtrail", requires=("eventSource", "eventName")),
    SourceMap(product="linux", service="auditd", requires=("type",)),
    SourceMap(product="gcp", service="gcp.audit", requires=("protoPayload.methodName",)),
    SourceMap(product="azure", service="activitylogs", requires=("operationName", "resourceId")),
    SourceMap(product="azure", service="signinlogs", requires=("ResultType",)),
    SourceMap(product="azure", service="auditlogs", requires=("ActivityDisplayName",)),
    SourceMap(product="m365", requires=("Workload",)),
    SourceMap(product="okta", service="okta", requires=("eventType",)),
    SourceMap(category="proxy", requires=("url.original",), fields=_ECS_PROXY),
    SourceMap(category="webserver", requires=("url.original",), fields=_ECS_PROXY),
    SourceMap(category="dns", requires=("dns.question.name",), fields=_ECS_DNS),
    SourceMap(category="firewall", requires=("destination.port",), fields=_ECS_FIREWALL),
)
