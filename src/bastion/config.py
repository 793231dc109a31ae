"""Settings: environment variables (``BASTION_*``) over an optional ``bastion.toml`` over defaults.

The TOML file is ``./bastion.toml``, or the path in ``BASTION_CONFIG``. Keys are the field names below,
at the top level of the file. The default store is a SQLite file under ``./var/``; a ``postgresql://`` URL
selects PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["DEFAULT_DATABASE_URL", "Settings", "load_settings"]

DEFAULT_DATABASE_URL = "sqlite:///var/bastion.db"


class Settings(BaseSettings):
    """Everything an operator may set. Each field is also ``BASTION_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="BASTION_", extra="ignore")

    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLAlchemy URL of the store")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="largest request body, before and after decompression"
    )
    ingest_queue_size: int = Field(
        32, ge=1, description="ingest batches waiting or being stored before the API answers 429"
    )
    # Larger batches write fewer index pages an event but hold more in memory and the write lock longer
    # (docs/architecture.md, Storage); the bound keeps a typo from holding a whole file in memory.
    ingest_batch_size: int = Field(2000, ge=1, le=50_000, description="events stored per transaction")
    body_idle_timeout_s: float = Field(
        15.0, gt=0, description="a request body that sends nothing for this long is refused (408)"
    )
    body_timeout_s: float = Field(300.0, gt=0, description="a request body must be complete within this")
    syslog_host: str = "127.0.0.1"
    syslog_udp_port: int | None = Field(5514, ge=0, le=65535)
    syslog_tcp_port: int | None = Field(5514, ge=0, le=65535)
    syslog_tenant: str | None = Field(None, description="tenant that syslog input belongs to")
    log_level: str = "info"
    ingest_mappings: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="named field mappings for generic JSON, normalizer generic:NAME "
        "([ingest_mappings.NAME] fields = {EVENT_PATH = SOURCE_PATH})",
    )
    warninglists_path: str | None = Field(None, description="MISP warning lists (default ../shared/data)")
    attack_path: str | None = Field(None, description="ATT&CK enterprise bundle (default ../shared/data)")
    geoip_db: str | None = Field(None, description="MaxMind-format City/Country .mmdb for enrichment")
    geoip_asn_db: str | None = Field(None, description="MaxMind-format ASN .mmdb for enrichment")
    # Approvals (docs/approvals.md): signed links, Slack, e-mail.
    public_url: str = Field("http://127.0.0.1:8000", description="base URL of links sent to approvers")
    approval_link_key: str | None = Field(None, description="HMAC key for approval links")
    approval_link_key_file: str = Field("var/approval-link.key", description="key file used when no key set")
    approval_link_ttl_s: int = Field(86400, ge=60, description="lifetime of an approval link")
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_channel: str | None = Field(None, description="channel that approval requests are posted to")
    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_from: str = "bastion@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    # Triage: how often ``bastion up`` checks case SLAs (escalation and notification); 0 turns it off.
    sla_check_interval_s: int = Field(60, ge=0, description="seconds between SLA checks in bastion up")
    # DNS blocking (dns.block_domain): the operator's resolver integration. Tenants choose nothing here:
    # a file path or a command from a tenant's connection would let a tenant write files or run programs
    # on the Bastion host. Each tenant's files are <dns_blocks_dir>/<tenant id>.local-zone.conf and/or
    # <tenant id>.rpz; unbound includes them (``include: "<dir>/*.local-zone.conf"``) or loads the zone.
    dns_blocks_dir: str | None = Field(None, description="folder of the per-tenant DNS block files")
    dns_format: Literal["local-zone", "rpz", "both"] = "local-zone"
    dns_reload_command: list[str] | None = Field(
        None, description='argv that reloads the resolver, e.g. ["unbound-control", "reload"]'
    )
    dns_pid_file: str | None = Field(None, description="the resolver's pid file: SIGHUP reloads it")
    # Files submitted for malware analysis: <samples_dir>/<tenant id>/<sha256>/<name>. The malware agent
    # reads files only there, so no prompt or API call can make it read other files of the host.
    samples_dir: str = Field("var/samples", description="folder of files submitted for malware analysis")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("BASTION_CONFIG", "bastion.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_path))


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and ``bastion.toml``, with explicit ``overrides`` (None = not given)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
