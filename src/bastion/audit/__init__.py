"""Append-only, hash-chained audit log: every state change and action call is recorded here."""
