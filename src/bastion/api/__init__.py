"""HTTP API (transport only: validation, auth, calling services)."""
