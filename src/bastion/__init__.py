"""Bastion: self-hosted security operations."""
