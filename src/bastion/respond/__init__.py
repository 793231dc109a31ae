"""Response: the workflow language, the durable engine on DBOS, and human approvals.

Modules: ``model``/``loader``/``validate``/``schema``/``expr`` (the language), ``engine`` (the DBOS
workflow that interprets a run), ``runtime`` (where DBOS's state lives, executors, heartbeats and
recovery), ``service`` (start, wait, cancel, retry, hooks, webhooks), ``schedule`` (cron triggers) and
``approvals`` (human decisions).
"""

__all__: list[str] = []
