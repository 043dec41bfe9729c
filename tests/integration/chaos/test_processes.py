"""Faults of Parlour's own processes under 20 concurrent games on 2 engines and 2 gateways:
an engine SIGKILLed, a gateway SIGKILLed (its clients resume on the other), an engine
SIGSTOPped past its session timeout and then SIGCONTinued (a zombie that must not apply a
stale effect). Each finishes every game and checks the verdict of tests/support/chaos.py."""

from __future__ import annotations

import signal

import pytest
import redis.asyncio as aioredis

from tests.support.chaos import GAMES, ChaosRun, ChaosStack, assert_clean

pytestmark = [pytest.mark.chaos_short, pytest.mark.slow, pytest.mark.timeout(240)]


async def test_engine_sigkill(chaos_stack: ChaosStack, redis_client: aioredis.Redis) -> None:
    run = ChaosRun(chaos_stack, games=GAMES)
    try:
        await run.start()
        at = run.mark_fault()
        chaos_stack.engines[0].kill()
        await run.all_progressed(at)
        result = await run.finish_and_verify("engine SIGKILL", redis_client)
    finally:
        await run.close()
    assert_clean(result)


async def test_gateway_sigkill(chaos_stack: ChaosStack, redis_client: aioredis.Redis) -> None:
    run = ChaosRun(chaos_stack, games=GAMES)
    try:
        await run.start()
        at = run.mark_fault()
        chaos_stack.kill_gateway(chaos_stack.gateways[0])
        await run.all_progressed(at)
        result = await run.finish_and_verify("gateway SIGKILL", redis_client)
    finally:
        await run.close()
    assert_clean(result)
    assert result.resumes >= GAMES  # every client of the dead gateway resumed on the other


async def test_engine_sigstop_past_session_timeout(
    chaos_stack: ChaosStack, redis_client: aioredis.Redis
) -> None:
    run = ChaosRun(chaos_stack, games=GAMES)
    zombie = chaos_stack.engines[0]
    assert zombie.proc is not None
    try:
        await run.start()
        at = run.mark_fault()
        zombie.proc.send_signal(signal.SIGSTOP)
        try:
            # every game goes on without it, each progressing after the session timeout had
            # passed: the stopped engine's partitions moved to the other engine
            await run.all_progressed(at + chaos_stack.session_timeout)
        finally:
            zombie.proc.send_signal(signal.SIGCONT)
            run.mark_repaired()
        result = await run.finish_and_verify("engine SIGSTOP+SIGCONT", redis_client)
    finally:
        await run.close()
    assert_clean(result)
    assert zombie.proc.poll() is None, zombie.log_tail()
