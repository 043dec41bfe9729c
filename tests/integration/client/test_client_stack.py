"""parlour_client through the real stack (two gateways, one engine, real Kafka and Redis): two
players set up a Bigger Dice game, roll, both see `rolled`; one drops its socket, the game goes
on, and `reconnect()` resumes the room from its last seq with no gap and no duplicate."""

from __future__ import annotations

import uuid

from parlour_client import Frame, FrameHandler, ParlourClient
from tests.support.engine_harness import EngineProcess
from tests.support.gateway_harness import GatewayProc, Keys


async def test_two_clients_play_and_one_resumes_after_a_reconnect(
    stack: tuple[EngineProcess, GatewayProc, GatewayProc, Keys],
) -> None:
    _engine, gw1, gw2, keys = stack
    tag = uuid.uuid4().hex[:6]
    seen: dict[str, list[int]] = {"host": [], "guest": []}

    def record(who: str) -> FrameHandler:
        def on_frame(frame: Frame, _at: float) -> None:
            if frame.get("seq") is not None:
                seen[who].append(frame["seq"])

        return on_frame

    host = await ParlourClient.connect(
        gw1.url, token=keys.token(f"h{tag}"), on_frame=record("host"), timeout=20
    )
    guest = await ParlourClient.connect(
        gw2.url, token=keys.token(f"g{tag}"), on_frame=record("guest"), timeout=20
    )
    try:
        name = f"client {tag}"
        state = await host.request(
            {
                "type": "games.command.create_room",
                "game_type": "bigger_dice",
                "room_name": name,
                "max_players": 2,
            },
            lambda f: f["type"] == "games.event.room_state",
        )
        room_id = str(state["room"]["room_id"])
        joined = host.expect(lambda f: f["type"] == "games.event.lobby_joined")
        await guest.command({"type": "games.command.join_room", "room_name": name})
        await joined
        for user in (host.user_id, guest.user_id):
            await host.command(
                {"type": "games.command.select_player", "room_id": room_id, "target_user_id": user}
            )
        started = host.expect(lambda f: f["type"] == "games.event.game_started")
        turn = host.expect(lambda f: f["type"] == "games.event.turn_changed")
        for player in (host, guest):
            await player.command({"type": "games.command.ready", "room_id": room_id})
        await started
        current = (await turn)["current_turn"]

        async def roll() -> str:
            roller = host if current == host.user_id else guest
            both = [
                c.expect(lambda f: f["type"] == "games.event.bigger_dice.rolled")
                for c in (host, guest)
            ]
            nxt = host.expect(
                lambda f: (
                    f["type"] in ("games.event.turn_changed", "games.event.bigger_dice.game_over")
                )
            )
            await roller.command({"type": "games.command.bigger_dice.roll", "room_id": room_id})
            for wait in both:
                await wait
            frame = await nxt
            return str(frame.get("current_turn", ""))

        current = await roll()
        # the guest drops its socket; the host rolls on without it seeing
        await guest.close()
        if current == host.user_id:
            both_host = host.expect(lambda f: f["type"] == "games.event.bigger_dice.rolled")
            await host.command({"type": "games.command.bigger_dice.roll", "room_id": room_id})
            await both_host
        missed_up_to = host.last_seq(room_id)
        acks = await guest.reconnect()
        assert [a["type"] for a in acks] == ["system.ack"]
        if guest.last_seq(room_id) < missed_up_to:
            await guest.wait_for(lambda f: guest.last_seq(room_id) >= missed_up_to, within=20)
        assert guest.last_seq(room_id) >= missed_up_to
        assert seen["guest"] == sorted(set(seen["guest"])), seen["guest"]
        assert seen["host"] == list(range(seen["host"][0], seen["host"][-1] + 1)), seen["host"]
    finally:
        await host.close()
        await guest.close()
