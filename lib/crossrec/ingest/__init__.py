"""Ingest: raw platform logs -> the unified, pseudonymised tables."""
