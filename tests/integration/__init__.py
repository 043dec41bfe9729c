"""Integration tests: real Kafka, real Redis, real gateway and engine processes, a real
browser. Every test below this folder gets the `integration` marker (see conftest.py)."""
