"""A store seeded with real data for the agent tests: the demo intrusion (events, alerts from three
sources, the story case) through the real pipeline, the STIX 2.1 Poison Ivy threat report from
``../shared/data`` through the intel loader, and a small CSV feed naming the demo's C2 address and
domain (so retro-hunt and sightings have something to find)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bastion.agents.spec import AgentDeps
from bastion.demo import INDICATORS
from bastion.demo.seed import seed_demo
from bastion.intel.service import load_file
from bastion.store import Database, TenantRepository

POISON_IVY = Path("stix21/examples/threat-reports/poisonivy.json")


@dataclass
class Seeded:
    db: Database
    tenant_id: str
    case_id: str
    path: Path

    def deps(self, actor: str = "test") -> AgentDeps:
        return AgentDeps(db=self.db, tenant_id=self.tenant_id, actor=actor, run_id="test-run")


def seed(tmp: Path, shared_data: Path, tenant: str = "demo") -> Seeded:
    path = tmp / "bastion.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    report = seed_demo(db, tenant)
    with db.read() as conn:
        found = TenantRepository(conn).by_name(tenant)
        assert found is not None
        tid = found.id
    load_file(db, tid, shared_data / POISON_IVY, "stix", actor="test")
    feed = tmp / "demo-feed.csv"
    feed.write_text(
        "indicator,type,confidence,tags\n"
        f"{INDICATORS['c2_ip']},ipv4,85,c2\n"
        f"{INDICATORS['c2_domain']},domain,80,c2\n"
    )
    load_file(db, tid, feed, "csv", actor="test", source="demo-feed")
    return Seeded(db=db, tenant_id=tid, case_id=report["case_id"], path=path)
