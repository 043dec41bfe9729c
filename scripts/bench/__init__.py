"""The benchmark suite (issue 11): end to end through real gateways and engines, the floor
(Kafka and Redis alone) and the peer (python-socketio with its Redis manager) in the same run,
idle connections, fan-out, and the engine alone. `python scripts/bench --help`."""
