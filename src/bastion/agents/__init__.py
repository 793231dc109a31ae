"""The agent layer: specialist agents that reason over Bastion's data and act through its registered
actions, under the same approval policy and audit as workflows.

- ``spec``: what an agent is (its tools allow-list, typed output, offline reasoner) and the tool registry.
- ``runtime``: runs an agent on pydantic-ai, durably on DBOS, with guardrails and budgets; the model is
  the tenant's LLM or, with none, the deterministic reasoner through a ``FunctionModel``.
- ``specialists/``: threat intelligence, malware analysis, troubleshooting, workflow design, workflow
  construction, documentation, and the objective runner.
- ``malware/``: static file analysis (no execution).
"""
