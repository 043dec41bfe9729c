"""No event from the rules exceeds EVENT_MAX_BYTES: a room at every cap, with ids and names
of the greatest length (names of 4-byte characters), and every event its commands produce
encoded as the engine publishes it."""

from __future__ import annotations

from uuid import UUID

from parlour_engine.games.bigger_dice import HISTORY_KEEP, DiceConfig, DiceState
from parlour_engine.rules import Emit, Outcome, list_rooms
from parlour_protocol.v1 import Actor, CommandEnvelope, EventEnvelope, encode
from parlour_protocol.v1 import chat as c
from parlour_protocol.v1 import rooms as r
from parlour_protocol.v1.base import ClientCommand
from parlour_protocol.v1.games import bigger_dice as dice
from parlour_protocol.v1.limits import (
    EVENT_MAX_BYTES,
    ID_MAX_LENGTH,
    MAX_BANNED_PER_ROOM,
    MAX_PLAYERS,
    ROOM_LIST_PAGE_MAX,
    ROOM_NAME_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
)
from parlour_protocol.v1.rooms import RoomStatus
from tests.support.rules_table import ScriptedRng, Table, rules_config

WIDE = "\U0001d504"  # MATHEMATICAL FRAKTUR CAPITAL A: a letter of 4 bytes in UTF-8
ROOM_ID = "r" * ID_MAX_LENGTH
ROOM_NAME = WIDE * ROOM_NAME_MAX_LENGTH
CONFIG = rules_config(scrypt_n=16, dice=DiceConfig(winning_score=1000))


def big_id(tag: str, n: int) -> str:
    return f"{tag}{n:0{ID_MAX_LENGTH - len(tag)}d}"


HOST = big_id("h", 0)


class WideTable(Table):
    """Every actor has a 64-character id and a 64-character name of 4-byte letters; the room
    id is 64 characters."""

    def envelope(
        self, user: str, payload: ClientCommand, *, system: bool = False
    ) -> CommandEnvelope:
        self._n += 1
        return CommandEnvelope(
            msg_id=UUID(int=self._n),
            type=payload.type,
            key=ROOM_ID,
            room_id=ROOM_ID,
            actor=Actor(user_id=user, username=WIDE * USERNAME_MAX_LENGTH, roles=["user"]),
            connection_id=None if system else "c" * ID_MAX_LENGTH,
            gateway_id=None if system else "g" * ID_MAX_LENGTH,
            request_id=None if system else f"r{self._n}",
            timestamp=self.now,
            payload=payload,
        )


def wire_size(emit: Emit) -> int:
    """The bytes of the event envelope the engine would publish for this emit."""
    envelope = EventEnvelope(
        event_id=UUID(int=1),
        type=emit.message.type,
        room_id=ROOM_ID,
        seq=emit.message.seq,
        audience=emit.audience,
        causation_id=UUID(int=2),
        payload=emit.message,
    )
    return len(encode(envelope))


def largest(outcome: Outcome, type_: str) -> int:
    sizes = [wire_size(e) for e in outcome.emits if e.message.type == type_]
    assert sizes, f"no {type_}"
    return max(sizes)


def room_at_every_cap() -> tuple[WideTable, dict[str, int]]:
    """A running 10-player game: the ban list full of named users, a 90-member lobby besides
    the seats, every spectator seat taken, players disconnected and played by the server, a
    full round history of 10-roll tiebreakers. Returns the table and the largest sizes of the
    events a joining spectator and a rejoining player get."""
    table = WideTable(config=CONFIG)
    table.ok(
        HOST,
        r.CreateRoom(game_type="bigger_dice", room_name=ROOM_NAME, max_players=MAX_PLAYERS),
    )
    join = r.JoinRoom(room_name=ROOM_NAME)
    for n in range(MAX_BANNED_PER_ROOM):
        # banned members keep their (widest) names in the ban list
        table.ok(big_id("b", n), join)
        table.ok(HOST, r.BanPlayer(room_id=ROOM_ID, target_user_id=big_id("b", n)))
    seats = [HOST, *(big_id("p", n) for n in range(1, MAX_PLAYERS))]
    for user in seats[1:]:
        table.ok(user, join)
    for user in seats:
        table.ok(HOST, r.SelectPlayer(room_id=ROOM_ID, target_user_id=user))
    while True:
        out = table.send(big_id("l", len(table.log)), join)
        if out.rejected is not None:
            break
    assert table.state is not None
    assert len(table.state.lobby) == CONFIG.max_lobby
    for n in range(CONFIG.max_spectators - 1):
        table.ok(big_id("s", n), r.JoinAsSpectator(room_name=ROOM_NAME))
    for user in seats:
        table.ok(user, r.Ready(room_id=ROOM_ID))
    assert table.state.status is RoomStatus.IN_PROGRESS
    # every roll a six: tiebreakers of all ten players until the history is full
    table.rng = ScriptedRng([6] * (MAX_PLAYERS * (HISTORY_KEEP + 2)))  # type: ignore[assignment]
    for _ in range(MAX_PLAYERS * (HISTORY_KEEP + 1)):
        assert table.state.current_turn is not None
        table.ok(table.state.current_turn, dice.Roll(room_id=ROOM_ID))
    game = table.state.game
    assert isinstance(game, DiceState)
    assert len(game.history) == HISTORY_KEEP
    assert all(len(h.rolls) == MAX_PLAYERS for h in game.history)
    for user in seats[1:5]:
        table.disconnect(user)
    for user in seats[5:]:
        table.ok(user, dice.EnableAutoPlay(room_id=ROOM_ID))
    for user in seats[:3]:
        table.ok(user, c.MuteUser(room_id=ROOM_ID, target_user_id=big_id("m", 0)))

    sizes: dict[str, int] = {}
    spectator = table.ok(big_id("s", 99), r.JoinAsSpectator(room_name=ROOM_NAME))
    assert len(table.state.spectators) == CONFIG.max_spectators
    sizes["spectator room_state"] = largest(spectator, "games.event.room_state")
    sizes["spectator game state"] = largest(spectator, "games.event.bigger_dice.state")
    rejoin = table.ok(seats[1], r.RejoinRoom(room_id=ROOM_ID))
    sizes["rejoin room_state"] = largest(rejoin, "games.event.room_state")
    return table, sizes


def test_no_event_of_a_room_at_every_cap_exceeds_the_budget() -> None:
    table, sizes = room_at_every_cap()
    assert table.state is not None
    assert len(table.state.banned) == MAX_BANNED_PER_ROOM
    assert len(table.state.players) == MAX_PLAYERS
    assert len(table.state.lobby) == CONFIG.max_lobby - MAX_PLAYERS
    worst = max((wire_size(e), e.message.type) for _, e in table.all_emits())
    assert worst[0] < EVENT_MAX_BYTES, worst
    for what, size in sizes.items():
        assert size < EVENT_MAX_BYTES, (what, size)
    # the snapshot really is large (so this test would notice an uncapped list)
    assert sizes["spectator room_state"] > 60_000, sizes


def test_a_room_list_page_of_the_widest_rooms_fits_the_budget() -> None:
    table, _ = room_at_every_cap()
    assert table.state is not None
    waiting = table.state.model_copy(update={"status": RoomStatus.WAITING})
    states = [
        waiting.model_copy(update={"room_id": big_id("room", n)}) for n in range(ROOM_LIST_PAGE_MAX)
    ]
    page = list_rooms(states, big_id("x", 0), "bigger_dice", table.now)
    assert len(page.rooms) == ROOM_LIST_PAGE_MAX
    emit = Emit(table.outcomes[-1].emits[0].audience, page)
    assert wire_size(emit) < EVENT_MAX_BYTES
