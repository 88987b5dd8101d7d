"""Contract tests: each provider adapter against a loopback fake of its vendor."""
