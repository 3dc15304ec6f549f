"""Integration tests: tether against real peers (see tests/servers and servers/README.md)."""
