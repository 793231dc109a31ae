"""Ingestion: sources and normalizers that turn raw input into Events with their observables."""
