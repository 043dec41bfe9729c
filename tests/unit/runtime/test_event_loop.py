"""EVENT_LOOP: which loop `run_on` starts (uvloop, or the standard library's), and the
settings check that refuses `uvloop` where it is not installed."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from parlour_engine.settings import EngineSettings
from parlour_gateway.settings import GatewaySettings
from parlour_runtime import SettingsError, load, loop_in_use, run_on, running_loop
from parlour_runtime import event_loop as event_loop_module


async def _which() -> tuple[str, str]:
    await asyncio.sleep(0)  # a real turn of the loop
    return running_loop(), type(asyncio.get_running_loop()).__module__


def test_uvloop_is_installed_where_the_services_run() -> None:
    # a dependency on Linux (pyproject.toml): the default must find it here
    assert importlib.util.find_spec("uvloop") is not None
    assert loop_in_use("auto") == "uvloop"


@pytest.mark.parametrize(
    ("choice", "expected"), [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")]
)
def test_run_on_starts_the_loop_the_setting_names(choice: str, expected: str) -> None:
    name, module = run_on(_which(), choice)  # type: ignore[arg-type]
    assert name == expected
    assert module.split(".")[0] == expected


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_loop_module, "uvloop_available", lambda: False)
    assert loop_in_use("auto") == "asyncio"
    assert run_on(_which(), "auto")[0] == "asyncio"


def test_run_on_returns_the_result_and_closes_its_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> int:
        loops.append(asyncio.get_running_loop())
        return 42

    assert run_on(main(), "uvloop") == 42
    assert loops[0].is_closed()


@pytest.mark.parametrize("settings", [GatewaySettings, EngineSettings])
def test_event_loop_setting_is_read_from_the_environment(
    settings: type[GatewaySettings] | type[EngineSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_DEV_MODE", "true")  # the gateway needs a key or dev mode
    monkeypatch.delenv("EVENT_LOOP", raising=False)
    assert load(settings).event_loop == "auto"
    monkeypatch.setenv("EVENT_LOOP", " AsyncIO ")
    assert load(settings).event_loop == "asyncio"
    monkeypatch.setenv("EVENT_LOOP", "trio")
    with pytest.raises(SettingsError, match="EVENT_LOOP"):
        load(settings)


def test_uvloop_is_refused_at_start_up_where_it_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(event_loop_module, "uvloop_available", lambda: False)
    monkeypatch.setenv("EVENT_LOOP", "uvloop")
    with pytest.raises(SettingsError, match=r"EVENT_LOOP.*uvloop is not installed"):
        load(EngineSettings)
