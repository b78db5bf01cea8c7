"""The database owner's tools (backup.py, maintenance.py) and the demo's summary, importable so
that they share pg_helpers and have entry points (pyproject.toml)."""
