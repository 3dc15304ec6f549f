"""The chaos soak (harness.py): a producer and a consumer through fault proxies, counted."""
