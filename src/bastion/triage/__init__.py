"""Triage: dedupe, correlation into cases, explained risk scores, noise reduction, routing and SLAs."""
