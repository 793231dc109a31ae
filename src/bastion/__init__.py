"""Bastion: self-hosted security operations."""

from bastion import native

native.activate()
