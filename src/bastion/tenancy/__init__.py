"""Tenants, users, roles, API keys: who may do what, in which tenant."""
