"""Benchmarks: measured, reported, never asserted by the test suite."""
