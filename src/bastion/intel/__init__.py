"""Threat intelligence: feeds (STIX/TAXII, MISP, abuse.ch, CSV/JSON, leaked credentials), the indicator
store and in-memory matcher, MISP warning lists, ATT&CK, retro-hunts and preemptive matching.

Submodules are imported where used; this package keeps no import-time state.
"""
