"""Process-wide settings every Bastion process (CLI, ``bastion up``, workers) starts with.

Python's cyclic garbage collector runs a young-generation pass every 700 net container allocations by
default. A Bastion batch (2,000 events, alerts or indicators) allocates hundreds of thousands of
short-lived dicts, lists and structs, almost none of them in reference cycles (reference counting frees
them), so at the default the collector ran hundreds of times per batch and rescanned the batch's live
objects each time: about a tenth of the CPU of triaging alerts. A larger first threshold lets most of
them die before any pass sees them; cycles are still collected, only less often.
"""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLDS", "tune_gc"]

# (young generation allocations, young passes per middle pass, middle passes per full pass); Python's
# defaults are (700, 10, 10). Triage of 30,000 alerts, two sets of three alternating runs: 9% and 14% more
# alerts per CPU second on average than with the defaults.
GC_THRESHOLDS = (10_000, 20, 20)


def tune_gc() -> None:
    """Apply :data:`GC_THRESHOLDS` to this process (idempotent)."""
    gc.set_threshold(*GC_THRESHOLDS)
