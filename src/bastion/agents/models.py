"""Which model decides for a tenant's agents: its ``llm`` connection, turned into a pydantic-ai model.

A tenant configures one connection named ``llm``::

    {"base_url": "http://127.0.0.1:8080/v1", "allow_private": true,
     "settings": {"provider": "openai" | "anthropic" | "none", "model": "gpt-4o-mini"}}

with the API key (optional for local servers) in the tenant vault as ``llm_api_key``. ``openai`` is any
OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp server, LM Studio, Ollama). No
connection, or provider ``none``, means *offline*: the agent's deterministic reasoner plays the model
through a pydantic-ai ``FunctionModel`` (see :mod:`bastion.agents.offline`).

The bench (``bench/agents_eval.py``) uses :func:`llm_config_from_env`, :func:`build_model` and
:func:`model_label` to evaluate whatever model is configured beside the offline reasoner.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pydantic_ai.models import Model

from bastion.store import Database, TenantScope

__all__ = [
    "LLM_CONNECTION",
    "LLM_SECRET",
    "PROVIDERS",
    "LLMConfig",
    "LLMConfigError",
    "build_model",
    "llm_config",
    "llm_config_from_env",
    "model_label",
]

LLM_CONNECTION = "llm"
LLM_SECRET = "llm_api_key"  # noqa: S105  (the name of the vault entry, not a secret)
PROVIDERS = ("openai", "anthropic", "none")
_DEFAULT_MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest"}


class LLMConfigError(ValueError):
    """The tenant's ``llm`` connection cannot be used; the message says what to change."""


@dataclass(frozen=True)
class LLMConfig:
    """A tenant's model: provider, model name, endpoint and key (``repr`` hides the key)."""

    provider: str  # openai | anthropic
    model: str
    base_url: str | None = None
    api_key: str | None = None
    allow_private: bool = False
    timeout_s: float = 120.0

    def __repr__(self) -> str:
        return (
            f"LLMConfig(provider={self.provider!r}, model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key={'***' if self.api_key else None}, allow_private={self.allow_private})"
        )


def _config(
    provider: str | None, model: str | None, base_url: str | None, api_key: str | None, allow_private: bool
) -> LLMConfig | None:
    name = (provider or "openai").strip().lower()
    if name not in PROVIDERS:
        raise LLMConfigError(f"unknown llm provider {provider!r}: use {', '.join(PROVIDERS)}")
    if name == "none":
        return None
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise LLMConfigError(f"llm base_url must be an http(s) URL, not {base_url!r}")
    return LLMConfig(
        provider=name,
        model=(model or _DEFAULT_MODEL[name]).strip(),
        base_url=base_url.rstrip("/") if base_url else None,
        api_key=api_key or None,
        allow_private=allow_private,
    )


def llm_config(db: Database, tenant_id: str) -> LLMConfig | None:
    """The tenant's model, or None for offline (no ``llm`` connection, or provider ``none``)."""
    from bastion.tenancy.connections import get_connection
    from bastion.tenancy.secrets import SecretsVault, load_key

    with db.read() as conn:
        found = get_connection(conn, tenant_id, LLM_CONNECTION)
        if found is None:
            return None
        settings: dict[str, Any] = dict(found.get("settings") or {})
        if str(settings.get("provider", "openai")).lower() == "none":
            return None
        secrets = SecretsVault(load_key(db)).get_many(TenantScope(conn, tenant_id))
    return _config(
        settings.get("provider"),
        settings.get("model"),
        found.get("base_url"),
        secrets.get(LLM_SECRET),
        bool(found.get("allow_private", False)),
    )


def llm_config_from_env(environ: dict[str, str] | None = None) -> LLMConfig | None:
    """A model from ``BASTION_LLM_PROVIDER``, ``BASTION_LLM_MODEL``, ``BASTION_LLM_BASE_URL`` and
    ``BASTION_LLM_API_KEY`` (for the bench); None when ``BASTION_LLM_PROVIDER`` is unset or ``none``."""
    env = os.environ if environ is None else environ
    provider = env.get("BASTION_LLM_PROVIDER")
    if not provider:
        return None
    return _config(
        provider,
        env.get("BASTION_LLM_MODEL"),
        env.get("BASTION_LLM_BASE_URL"),
        env.get("BASTION_LLM_API_KEY"),
        True,
    )


def model_label(config: LLMConfig | None) -> str:
    """``offline`` or ``<provider>:<model>``: what ``agent_runs.model`` records."""
    return "offline" if config is None else f"{config.provider}:{config.model}"


def build_model(config: LLMConfig | None) -> Model | None:
    """A pydantic-ai model for ``config`` (None for offline). Builds a new HTTP client each call, so call
    it in the event loop that will use the model."""
    if config is None:
        return None
    if config.provider == "openai":
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        # Local servers often need no key, but the client insists on one.
        provider = OpenAIProvider(base_url=config.base_url, api_key=config.api_key or "none")
        return OpenAIChatModel(config.model, provider=provider)
    if config.provider == "anthropic":
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        if not config.api_key and not config.base_url:
            raise LLMConfigError(
                f"the anthropic provider needs the secret {LLM_SECRET!r} (`bastion secret set`)"
            )
        anthropic = AnthropicProvider(api_key=config.api_key or "none", base_url=config.base_url)
        return AnthropicModel(config.model, provider=anthropic)
    raise LLMConfigError(f"unknown llm provider {config.provider!r}")
