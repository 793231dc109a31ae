"""Detection: Sigma rules loaded with pySigma, compiled into a streaming matcher of our own, indexed by
log source and literal prefilters; alerts with explanations; suppressions; correlation rules.

The pipeline's entry point is ``Detector.from_paths(paths).match_events(events)``.
"""

from bastion.detect.alerts import Suppression, alerts_for_events, build_alert
from bastion.detect.engine import CompiledRule, Detector, Match
from bastion.detect.events import FlatEvent, flatten
from bastion.detect.rules import LoadedRules, RuleProblem, load_rules, parse_rule_text

__all__ = [
    "CompiledRule",
    "Detector",
    "FlatEvent",
    "LoadedRules",
    "Match",
    "RuleProblem",
    "Suppression",
    "alerts_for_events",
    "build_alert",
    "flatten",
    "load_rules",
    "parse_rule_text",
]
