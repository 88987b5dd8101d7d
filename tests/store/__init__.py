"""Tests of the usage store, on SQLite and on the real PostgreSQL."""
