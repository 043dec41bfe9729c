"""Unit tests: no Kafka, no Redis, no browser; one package per source package."""
