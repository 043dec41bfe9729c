"""The health server answers probes from its ready check and serves the metrics."""

from __future__ import annotations

import httpx

from parlour_engine.health import HealthServer
from parlour_engine.metrics import EngineMetrics, Outcome


async def test_engine_health_server_reports_readiness() -> None:
    state = {"redis": True, "kafka": False}

    async def ready() -> dict[str, bool]:
        return dict(state)

    metrics = EngineMetrics()
    metrics.commands.labels(type="games.command.ready", outcome=Outcome.APPLIED).inc()
    server = HealthServer("127.0.0.1", 0, metrics, ready)
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/health")).json() == {"status": "ok"}
            not_ready = await client.get(f"{base}/ready")
            assert not_ready.status_code == 503
            assert not_ready.json()["checks"] == {"redis": True, "kafka": False}
            state["kafka"] = True
            assert (await client.get(f"{base}/ready")).status_code == 200
            text = (await client.get(f"{base}/metrics")).text
            assert (
                'parlour_engine_commands_total{outcome="applied",type="games.command.ready"} 1.0'
                in text
            )
            assert (await client.post(f"{base}/health")).status_code == 405
    finally:
        await server.stop()
