"""Handling one decoded command: rules -> Redis -> events out (`CommandHandler`).

For each command (the processor in worker.py decodes it and drives the retries):

1. load the room (an in-process cache holds the last state this process stored, checked by the
   store's version test), run `rules.apply`;
2. build the events and check each against EVENT_MAX_BYTES (one that would not fit stops the
   command here: nothing is committed);
3. an outcome that changes nothing (a rejection, a read-only answer) is only answered; one
   that changes the room is committed with the store's one Lua script (on a version conflict
   re-run on the state the script returned; on a duplicate msg_id, or a record at or below the
   room's offset watermark, take the recorded events, or send nothing);
4. rewrite the cross-room indexes (idempotent) and hand the events to the idempotent producer.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import random
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from parlour_engine import rules
from parlour_engine.failures import AfterCommitError, EventTooLarge, InfraError
from parlour_engine.kafka_producer import EventSink
from parlour_engine.lobby import Lobby, UserTurns, listing_member
from parlour_engine.logging import get_logger
from parlour_engine.metrics import CommandOutcome, EngineMetrics
from parlour_engine.rules import ChatRead, Emit, RoomState, RulesConfig
from parlour_engine.rules.context import derive_id, reply_audience
from parlour_engine.rules.views import listable
from parlour_engine.store import (
    ChatAppendJson,
    CommitStatus,
    Position,
    PublishedEvent,
    Record,
    RoomStore,
    Seen,
    StateWrite,
    text,
)
from parlour_engine.timers import timer_member
from parlour_protocol.v1 import (
    ERROR_MEANINGS,
    AudienceKind,
    CommandEnvelope,
    ErrorCode,
    EventEnvelope,
    RedisKeys,
    ServerEvent,
    decode_event_envelope,
    limits,
    utc_now,
)
from parlour_protocol.v1.chat import ChatHistory, ChatMessageItem, GetChatHistory
from parlour_protocol.v1.limits import DEFAULT_MAX_ROOMS_PER_HOST, DEFAULT_MAX_ROOMS_PER_USER
from parlour_protocol.v1.records import (
    H_EVENT,
    H_HOPS,
    H_TO,
    HOP_ENGINE_COMMITTED,
    HOP_EVENT_PRODUCED,
    epoch_us,
    error_of,
    event_record,
    event_value,
    floor_of,
    game_type_of,
    hop,
    route_value,
)
from parlour_protocol.v1.rooms import (
    CreateRoom,
    JoinAsSpectator,
    JoinRoom,
    ListRooms,
    RejoinRoom,
    RoomRole,
    RoomStatus,
)
from parlour_protocol.v1.system import Error
from parlour_runtime.redis_client import REDIS_OUTAGE_ERRORS, AnyRedis

_log = get_logger(__name__)

_MAX_CONFLICT_RETRIES = 50
_CACHE_ROOMS = 20_000
_ENDED = frozenset({RoomStatus.FINISHED, RoomStatus.ABANDONED})
EVENT_MAX_BYTES = limits.EVENT_MAX_BYTES
_CHAT_ENVELOPE_RESERVE = 8 * 1024
"""Bytes of a chat_history envelope besides its messages (ids, audience, timestamps), kept
free when the history is filled up to EVENT_MAX_BYTES."""

_ZERO = timedelta(0)

current_hops: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "parlour_hops", default=None
)
"""The per-hop timestamps (`p-hops`, parlour_protocol.v1.records) of the record being
handled, when its producer stamped them; each event it causes carries them on."""

current_position: contextvars.ContextVar[Position | None] = contextvars.ContextVar(
    "parlour_position", default=None
)
"""Where the record being handled sits on the commands topic, set by the processor for each
record: each key's group of a batch runs in its own task (asyncio.gather), so this is per
record, and `_room_command` reads it (the room's offset watermark, see store.py)."""


ApplyFn = Callable[[RoomState | None, CommandEnvelope, rules.Rng, datetime, RulesConfig], Any]
RngFor = Callable[[CommandEnvelope], rules.Rng]


def production_rng() -> RngFor:
    system = secrets.SystemRandom()
    return lambda _command: system


def seeded_rng(seed: int) -> RngFor:
    """TEST ONLY: one `random.Random` per command, seeded from (seed, msg_id), so a command
    gives the same dice however often it is computed, on whichever engine; tests replay a
    room with `rules.replay` and the same derivation."""
    return lambda command: random.Random(f"{seed}:{command.msg_id}")


def error_emit(command: CommandEnvelope, code: ErrorCode, room_id: str | None = None) -> Emit:
    """The `system.error` answer to the command's sender (its connection, else the user)."""
    return Emit(
        reply_audience(command),
        Error(
            code=code,
            message=ERROR_MEANINGS[code],
            request_id=command.request_id,
            room_id=room_id,
        ),
    )


def _role_of(state: RoomState, user_id: str) -> RoomRole | None:
    """The user's role for the `user_rooms` index; None when not a member."""
    if not state.is_member(user_id):
        return None
    if state.host_id == user_id:
        return RoomRole.HOST
    if state.player(user_id) is not None:
        return RoomRole.PLAYER
    if state.lobby_member(user_id) is not None:
        return RoomRole.LOBBY
    return RoomRole.SPECTATOR


def _same_name(state: RoomState, payload: object) -> bool:
    return (
        isinstance(payload, CreateRoom)
        and RedisKeys.fold_room_name(payload.room_name) == RedisKeys.fold_room_name(state.room_name)
        and payload.game_type == state.game_type
    )


def _membership(state: RoomState) -> tuple[object, ...]:
    """Everything the user-rooms index derives from (cheap to compare: no scores)."""
    return (
        state.host_id,
        tuple(m.user_id for m in state.players),
        tuple(m.user_id for m in state.lobby),
        tuple(s.user_id for s in state.spectators),
    )


def _uuid5(namespace: bytes, name: str) -> str:
    """str(uuid.uuid5(UUID(bytes=namespace), name)), without building UUID objects."""
    digest = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def _iso(now: datetime) -> str | None:
    """`now` as pydantic serialises a UTC datetime (`...T..:..:..[.ffffff]Z`); None for any
    other zone (the caller then lets pydantic do it)."""
    if now.utcoffset() != _ZERO:
        return None
    return now.replace(tzinfo=None).isoformat() + "Z"


def envelopes(
    emits: Sequence[Emit],
    command: CommandEnvelope,
    room_id: str | None,
    now: datetime,
    key: str,
) -> list[PublishedEvent]:
    """The events' envelope JSON (exactly pydantic's `EventEnvelope.model_dump_json()`) and
    Kafka records (parlour_protocol.v1.records). Every part is already a validated model or
    value of ours (the rules' messages and audiences, the decoded command's ids) and type/seq
    are the payload's, so the envelope's checks hold by construction: it is written out
    directly, the payload dumped once (it is both the record value and the envelope's tail),
    ids and the timestamp formatted once per command. This is the engine's hot path."""
    out: list[PublishedEvent] = []
    cause = str(command.msg_id)
    namespace = command.msg_id.bytes
    ts_us = epoch_us(now)
    iso = _iso(now)
    room_json = "null" if room_id is None else json.dumps(room_id)
    audiences: dict[int, str] = {}
    for index, emit in enumerate(emits):
        message: ServerEvent = emit.message
        audience = emit.audience
        event_id = _uuid5(namespace, str(index))
        seq = message.seq
        frame = message.model_dump_json()
        if iso is None:  # not UTC: pydantic formats the timestamp
            encoded = EventEnvelope.model_construct(
                event_id=uuid.UUID(event_id),
                type=message.type,
                room_id=room_id,
                seq=seq,
                audience=audience,
                causation_id=command.msg_id,
                timestamp=now,
                payload=message,
            ).model_dump_json()
        else:
            audience_json = audiences.get(id(audience))
            if audience_json is None:
                audience_json = audiences[id(audience)] = audience.model_dump_json()
            encoded = (
                f'{{"event_id":"{event_id}","type":"{message.type}","room_id":{room_json},'
                f'"seq":{"null" if seq is None else seq},"audience":{audience_json},'
                f'"causation_id":"{cause}","timestamp":"{iso}","payload":{frame}}}'
            )
        # a char is at most 4 bytes in UTF-8: only long envelopes need encoding to measure
        if len(encoded) * 4 > EVENT_MAX_BYTES and len(encoded.encode()) > EVENT_MAX_BYTES:
            raise EventTooLarge(
                f"{message.type} would be {len(encoded.encode())} bytes "
                f"(the budget is {EVENT_MAX_BYTES})"
            )
        headers = [
            (
                H_TO,
                route_value(
                    audience.kind,
                    audience.user_ids,
                    audience.connection_id,
                    audience.gateway_id,
                    game_type_of(message) if audience.kind is AudienceKind.BROADCAST else None,
                ),
            ),
            (
                H_EVENT,
                event_value(
                    type=message.type,
                    event_id=event_id,
                    room_id=room_id,
                    seq=seq,
                    causation_id=cause,
                    ts_us=ts_us,
                    floor=floor_of(message),
                    error=error_of(message),
                ),
            ),
        ]
        out.append(
            PublishedEvent(
                key=key, seq=seq, envelope=encoded, frame=frame.encode(), headers=headers
            )
        )
    return out


class CommandHandler:
    """Handles one command at a time per room key. Pure wiring: every decision is the rules'."""

    def __init__(
        self,
        *,
        redis: AnyRedis,
        store: RoomStore,
        sink: EventSink,
        metrics: EngineMetrics,
        config: RulesConfig,
        events_topic: str,
        rng_for: RngFor,
        apply: ApplyFn = rules.apply,
        clock: Callable[[], datetime] = utc_now,
        max_rooms_per_host: int = DEFAULT_MAX_ROOMS_PER_HOST,
        max_rooms_per_user: int = DEFAULT_MAX_ROOMS_PER_USER,
    ) -> None:
        self._redis = redis
        self._store = store
        self._keys: RedisKeys = store.keys
        self._sink = sink
        self._metrics = metrics
        self._config = config
        self._events_topic = events_topic
        self._rng_for = rng_for
        self._apply = apply
        self._clock = clock
        self._cache: OrderedDict[str, RoomState] = OrderedDict()
        self._batch_timers: dict[str, int] = {}
        self._lobby = Lobby(redis, store.keys, games=config.games)
        self._user_turns = UserTurns()
        self._max_rooms_per_host = max_rooms_per_host
        self._max_rooms_per_user = max_rooms_per_user

    def games_in_progress(self) -> int:
        """Rooms this process last stored with a running game (a per-process gauge)."""
        return sum(1 for s in self._cache.values() if s.status is RoomStatus.IN_PROGRESS)

    # --- the batch's timers ---------------------------------------------------------------

    async def flush_timers(self) -> None:
        """Arm the batch's timers in one ZADD. A crash before it leaves the batch uncommitted,
        and the redelivery re-arms them from the commands' records."""
        if not self._batch_timers:
            return
        timers, self._batch_timers = self._batch_timers, {}
        try:
            await self._redis.zadd(self._keys.timers(), timers)
        except REDIS_OUTAGE_ERRORS as exc:
            raise InfraError(f"arming timers failed: {exc}") from exc

    def discard_timers(self) -> None:
        """Forget the batch's timers: the batch failed and is consumed again."""
        self._batch_timers.clear()

    # --- one command ----------------------------------------------------------------------

    async def handle(
        self, command: CommandEnvelope, pending: list[Awaitable[Any]]
    ) -> CommandOutcome:
        payload = command.payload
        now = self._clock()
        if isinstance(payload, ListRooms):
            return await self._list_rooms(command, payload, now, pending)
        if command.type == "chat.command.send_message":
            return await self._direct_message(command, now, pending)
        if command.type == "games.command.presence_changed":
            states = await self._user_room_states(command.actor.user_id)
            emits = rules.presence_changed(states, command)
            await self._send(envelopes(emits, command, None, now, command.key), pending)
            return CommandOutcome.ANSWERED
        if not getattr(payload, "room_scoped", False) and not isinstance(
            payload, CreateRoom | JoinRoom | JoinAsSpectator | RejoinRoom
        ):
            raise ValueError(f"the engine has no handler for {command.type!r}")
        room_id = await self.room_id_for(command)
        if room_id is None:
            # a name that names no active room: the rules answer room_not_found
            outcome = await self._run_apply(None, command, now)
            await self._send(envelopes(outcome.emits, command, None, now, command.key), pending)
            return self._rejected_outcome(outcome)
        if not isinstance(payload, CreateRoom | JoinRoom | JoinAsSpectator):
            return await self._room_command(command, room_id, now, pending)
        # one at a time per user in this engine, from the cap check to the index write
        async with self._user_turns.turn(command.actor.user_id):
            refused = await self._over_cap(command, room_id)
            if refused is not None:
                await self._send(
                    envelopes((refused,), command, command.room_id, now, command.key),
                    pending,
                )
                return CommandOutcome.REJECTED
            if isinstance(payload, CreateRoom):
                owner = await self._claim_name(payload.game_type, payload.room_name, room_id)
                if owner != room_id:
                    emit = error_emit(command, ErrorCode.ROOM_NAME_TAKEN, room_id)
                    await self._send(envelopes((emit,), command, room_id, now, room_id), pending)
                    return CommandOutcome.REJECTED
            return await self._room_command(command, room_id, now, pending)

    async def _over_cap(self, command: CommandEnvelope, room_id: str) -> Emit | None:
        """The `too_many_rooms` / `limit_reached` answer when creating or joining would take
        the user past max_rooms_per_host / max_rooms_per_user (counted from `user_rooms`, see
        lobby.py for the bound that holds under races), else None. Before the name claim, so
        a refused create claims no name."""
        user_id = command.actor.user_id
        refusal = await self._lobby.refusal(
            user_id,
            room_id,
            creating=isinstance(command.payload, CreateRoom),
            max_rooms_per_host=self._max_rooms_per_host,
            max_rooms_per_user=self._max_rooms_per_user,
        )
        if refusal is None:
            return None
        # A redelivery of a command that took effect while its index write was lost (a crash
        # between the commit and `_project`) must get its recorded answer, not a refusal.
        raw = await self._store.load(room_id)
        if raw is not None:
            state = RoomState.load(raw, self._config.games)
            if isinstance(command.payload, CreateRoom) or state.is_member(user_id):
                return None
        return Emit(
            reply_audience(command),
            Error(code=refusal.code, message=refusal.message, request_id=command.request_id),
        )

    async def _direct_message(
        self, command: CommandEnvelope, now: datetime, pending: list[Awaitable[Any]]
    ) -> CommandOutcome:
        """Exactly once: the events are recorded (sender + msg_id, SET NX) before they are
        sent and marked sent once Kafka acknowledged them. A redelivery of a sent message
        publishes nothing; one whose first delivery never got its events acknowledged sends
        the recorded events (same event ids) and nothing new."""
        emits = rules.direct_message(command, now)
        key = command.key
        for emit in emits:
            if emit.audience.user_ids and emit.audience.kind is not AudienceKind.CONNECTION:
                key = emit.audience.user_ids[0]
                break
        events = envelopes(emits, command, None, now, key)
        user_id, msg_id = command.actor.user_id, str(command.msg_id)
        first, earlier = await self._store.record_direct(user_id, msg_id, Record(events=events))
        if not first and earlier is None:
            return CommandOutcome.DUPLICATE
        acks: list[Awaitable[Any]] = []
        await self._send(events if earlier is None else earlier.events, acks)
        pending.extend(acks)
        pending.append(asyncio.ensure_future(self._mark_direct_sent(acks, user_id, msg_id)))
        return CommandOutcome.ANSWERED if first else CommandOutcome.DUPLICATE

    async def _mark_direct_sent(
        self, acks: list[Awaitable[Any]], user_id: str, msg_id: str
    ) -> None:
        await asyncio.gather(*acks)  # a publish failure fails the batch (no commit)
        try:
            await self._store.mark_direct_sent(user_id, msg_id)
        except REDIS_OUTAGE_ERRORS as exc:
            # the events are out; only a redelivery of this very command could repeat them
            _log.warning("direct_message_mark_failed", msg_id=msg_id, error=str(exc))

    async def room_id_for(self, command: CommandEnvelope) -> str | None:
        payload = command.payload
        if isinstance(payload, CreateRoom):
            # the gateway mints the id; lacking one, the rules derive it from the msg_id
            return command.room_id or str(derive_id(command.msg_id, "room"))
        if isinstance(payload, RejoinRoom) and payload.room_id is not None:
            return payload.room_id
        if isinstance(payload, JoinRoom | JoinAsSpectator | RejoinRoom):
            assert payload.room_name is not None  # RejoinRoom validates id or name
            raw: bytes | str | None = await self._redis.get(
                self._keys.room_name(payload.game_type, payload.room_name)
            )
            return None if raw is None else text(raw)
        room_id: str = payload.room_id  # type: ignore[attr-defined]
        return room_id

    async def _claim_name(self, game_type: str, room_name: str, room_id: str) -> str:
        key = self._keys.room_name(game_type, room_name)
        if await self._redis.set(key, room_id, nx=True):
            return room_id
        raw: bytes | str | None = await self._redis.get(key)
        if raw is None:  # released between the two calls: try once more
            return room_id if await self._redis.set(key, room_id, nx=True) else ""
        return text(raw)

    async def _load(self, room_id: str) -> RoomState | None:
        cached = self._cache.get(room_id)
        if cached is not None:
            self._cache.move_to_end(room_id)
            return cached
        raw = await self._store.load(room_id)
        state = None if raw is None else RoomState.load(raw, self._config.games)
        self._remember(room_id, state)
        return state

    def _remember(self, room_id: str, state: RoomState | None) -> None:
        if state is None:
            self._cache.pop(room_id, None)
            return
        self._cache[room_id] = state
        self._cache.move_to_end(room_id)
        while len(self._cache) > _CACHE_ROOMS:
            self._cache.popitem(last=False)

    async def _room_command(
        self, command: CommandEnvelope, room_id: str, now: datetime, pending: list[Awaitable[Any]]
    ) -> CommandOutcome:
        msg_id = str(command.msg_id)
        position = current_position.get()
        state = await self._load(room_id)
        for _ in range(_MAX_CONFLICT_RETRIES):
            outcome = await self._run_apply(state, command, now)
            emits: tuple[Emit, ...] = tuple(outcome.emits)
            if outcome.chat_read is not None:
                emits += (await self._chat_history(outcome.chat_read, command.payload),)
            after: RoomState | None = outcome.state
            if not outcome.changed:
                seen = await self._store.seen(room_id, msg_id, position)
                if seen.version != (0 if state is None else state.version):
                    # the cached state is stale (another engine moved the room on): as the
                    # commit script's version check would, re-run on the stored one
                    self._cache.pop(room_id, None)
                    state = await self._load(room_id)
                    continue
                return await self._answer(command, room_id, outcome, emits, seen, now, pending)
            write = StateWrite.DELETE if after is None else StateWrite.WRITE
            events = envelopes(emits, command, room_id, now, room_id)
            projection = self._projection(state, after, outcome, now)
            record = Record(events=events, projection=projection)
            result = await self._store.commit(
                room_id,
                msg_id=msg_id,
                expected_version=0 if state is None else state.version,
                write=write,
                state_json=after.model_dump_json() if write is StateWrite.WRITE and after else "",
                record=record,
                chat=[
                    ChatAppendJson(channel=c.channel.value, item=c.item.model_dump_json())
                    for c in outcome.chat
                ],
                position=position,
            )
            if result.status is CommitStatus.OLD:
                # handled before, its record trimmed since: its events went out then
                _log.info("command_below_watermark", offset=position.offset if position else None)
                return CommandOutcome.DUPLICATE
            if result.status is CommitStatus.CONFLICT:
                self._metrics.conflicts.inc()
                state = (
                    None
                    if result.current_state is None
                    else RoomState.load(result.current_state, self._config.games)
                )
                self._remember(room_id, state)
                continue
            if result.status is CommitStatus.DUPLICATE:
                assert result.record is not None
                await self._after_commit(self._after_duplicate(room_id, result.record, pending))
                return CommandOutcome.DUPLICATE
            self._remember(room_id, after)
            hops = current_hops.get()
            if hops is not None:
                current_hops.set(hop(hops, HOP_ENGINE_COMMITTED))
            steps = self._committed(
                command, room_id, state, after, outcome, projection, events, pending
            )
            await self._after_commit(steps)
            return (
                CommandOutcome.APPLIED
                if outcome.rejected is None
                else self._rejected_outcome(outcome)
            )
        raise RuntimeError(f"room {room_id}: {_MAX_CONFLICT_RETRIES} version conflicts in a row")

    async def _answer(
        self,
        command: CommandEnvelope,
        room_id: str,
        outcome: Any,
        emits: tuple[Emit, ...],
        seen: Seen,
        now: datetime,
        pending: list[Awaitable[Any]],
    ) -> CommandOutcome:
        """An outcome that changes nothing (a rejection, a read-only answer): sent, never
        stored, so reads and refusals cost the room no record (a redelivery is answered
        again). An earlier delivery that did take effect still gets its recorded events; one
        below the watermark whose record is gone gets no refusal (re-run on today's state, a
        command the room applied then may be refused now), only a read is answered again."""
        if seen.record is not None:
            await self._after_commit(self._after_duplicate(room_id, seen.record, pending))
            return CommandOutcome.DUPLICATE
        if seen.old and outcome.rejected is not None:
            return CommandOutcome.DUPLICATE
        after: RoomState | None = outcome.state
        events = envelopes(emits, command, room_id, now, room_id)
        for timer in outcome.timers:
            member = timer_member(room_id, timer.kind, timer.token)
            self._batch_timers[member] = int(timer.due.timestamp() * 1000)
        await self._send(events, pending)
        if outcome.rejected is not None and (
            after is None or not _same_name(after, command.payload)
        ):
            await self._release_if_create(command, room_id)
        return (
            CommandOutcome.ANSWERED if outcome.rejected is None else self._rejected_outcome(outcome)
        )

    async def _committed(
        self,
        command: CommandEnvelope,
        room_id: str,
        before: RoomState | None,
        after: RoomState | None,
        outcome: Any,
        projection: dict[str, Any],
        events: list[PublishedEvent],
        pending: list[Awaitable[Any]],
    ) -> None:
        """The steps after a commit; all idempotent (a redelivery redoes them)."""
        if outcome.rejected is not None and (
            after is None or not _same_name(after, command.payload)
        ):
            await self._release_if_create(command, room_id)
        await self._project(room_id, before, after, projection)
        await self._send(events, pending)

    @staticmethod
    async def _after_commit(steps: Awaitable[None]) -> None:
        """Run post-commit steps; whatever they raise becomes AfterCommitError (retried
        without limit, never dead-lettered: the command already took effect)."""
        try:
            await steps
        except InfraError:
            raise
        except Exception as exc:  # re-raised as a retry, never swallowed
            raise AfterCommitError(f"{type(exc).__name__}: {exc}") from exc

    def _rejected_outcome(self, outcome: Any) -> CommandOutcome:
        """REJECTED, or FAULT when the rules reported an internal fault: that is logged
        (error level; the notes name the fault, never chat text or passwords)."""
        if not outcome.notes:
            return CommandOutcome.REJECTED
        _log.error("rules_fault", notes=list(outcome.notes))
        return CommandOutcome.FAULT

    async def _run_apply(
        self, state: RoomState | None, command: CommandEnvelope, now: datetime
    ) -> Any:
        rng = self._rng_for(command)
        if getattr(command.payload, "password", None):
            # hashing or checking a room password (scrypt) takes tens of milliseconds; the
            # rules are pure, so they run in a worker thread (scrypt releases the GIL) and
            # the other rooms of the batch go on meanwhile
            return await asyncio.to_thread(self._apply, state, command, rng, now, self._config)
        return self._apply(state, command, rng, now, self._config)

    async def abandon_claim(self, command: CommandEnvelope) -> None:
        """A create_room that never took effect must not keep its name claimed."""
        if not isinstance(command.payload, CreateRoom):
            return
        room_id = await self.room_id_for(command)
        if room_id is not None and await self._store.load(room_id) is None:
            await self._release_if_create(command, room_id)

    async def _release_if_create(self, command: CommandEnvelope, room_id: str) -> None:
        payload = command.payload
        if isinstance(payload, CreateRoom):
            await self._store.release_name(payload.game_type, payload.room_name, room_id)

    async def _chat_history(self, read: ChatRead, payload: object) -> Emit:
        """The newest `read.limit` messages (older than the request's `before`), filled
        newest first while they fit EVENT_MAX_BYTES; `has_more` when older ones are kept."""
        before = payload.before if isinstance(payload, GetChatHistory) else None
        channel = read.channel.value
        if before is None:
            # one more than asked, to know whether older messages exist
            raw = await self._store.chat_history(read.room_id, channel, read.limit + 1)
        else:  # the cursor's place is found in the whole list (at most chat_keep items)
            raw = await self._store.chat_history(read.room_id, channel, self._config.chat_keep)
        items = [(ChatMessageItem.model_validate_json(r), len(r.encode())) for r in raw]
        if before is not None:
            at = next((n for n, (i, _) in enumerate(items) if i.message_id == before), None)
            items = items[:at] if at is not None else []  # a cursor no longer kept: nothing
        has_more = len(items) > read.limit
        budget = EVENT_MAX_BYTES - _CHAT_ENVELOPE_RESERVE
        picked: list[ChatMessageItem] = []
        for item, size in reversed(items[-read.limit :]):
            if item.user_id in read.hidden_user_ids:
                continue
            budget -= size + 1
            if budget < 0:
                has_more = True
                break
            picked.append(item)
        picked.reverse()
        return Emit(
            read.audience,
            ChatHistory(
                room_id=read.room_id, channel=read.channel, messages=picked, has_more=has_more
            ),
        )

    async def _list_rooms(
        self,
        command: CommandEnvelope,
        payload: ListRooms,
        now: datetime,
        pending: list[Awaitable[Any]],
    ) -> CommandOutcome:
        """One page from the room index (lobby.py): never reads every room."""
        user_id, game_type = command.actor.user_id, payload.game_type
        page = await self._lobby.page(
            game_type,
            user_id,
            cursor=payload.cursor,
            limit=payload.limit,
            listable=lambda state: listable(state, user_id, game_type),
        )
        room_list = rules.list_rooms(
            page.states,
            user_id,
            game_type,
            now,
            cursor=payload.cursor,
            next_cursor=page.next_cursor,
        )
        emit = Emit(reply_audience(command), room_list)
        await self._send(envelopes((emit,), command, None, now, command.key), pending)
        return CommandOutcome.ANSWERED

    async def _user_room_states(self, user_id: str) -> list[RoomState]:
        # bounded: `user_rooms` holds at most max_rooms_per_user rooms (see `_over_cap`)
        ids: list[bytes | str] = await self._redis.hkeys(self._keys.user_rooms(user_id))
        return await self._states([text(i) for i in ids])

    async def _states(self, room_ids: list[str]) -> list[RoomState]:
        # read-only, so the cache is not consulted: another engine may own these rooms
        return list((await self._lobby.states(room_ids)).values())

    # --- indexes across rooms (projections of room state) ---------------------------------

    def _projection(
        self, before: RoomState | None, after: RoomState | None, outcome: Any, now: datetime
    ) -> dict[str, Any]:
        """What `_project` needs again on a redelivery, when `before` is long gone."""
        gone = sorted(
            set(before.member_ids() if before else ()) - set(after.member_ids() if after else ())
        )
        subject = after or before
        return {
            "now": now.isoformat(),
            "gone": gone,
            "game": subject.game_type if subject else None,
            "name": subject.room_name if subject else None,
            "listing": listing_member(subject.room_id, subject.created_at) if subject else None,
            "timers": [
                [timer_member(subject.room_id, t.kind, t.token), int(t.due.timestamp() * 1000)]
                for t in outcome.timers
            ]
            if subject
            else [],
        }

    async def _project(
        self,
        room_id: str,
        before: RoomState | None,
        after: RoomState | None,
        projection: dict[str, Any],
    ) -> None:
        """Rewrite the cross-room indexes from the committed state. Every write is
        idempotent, so a redelivery can simply run it again."""
        keys = self._keys
        game: str | None = projection.get("game")
        for member, due in projection.get("timers") or ():
            # armed once per batch, before its offsets are committed (see flush_timers)
            self._batch_timers[member] = due
        unchanged = (
            before is not None
            and after is not None
            and before.status is after.status
            and _membership(before) == _membership(after)
        )
        if unchanged:
            return  # most game moves: no index to touch
        async with self._redis.pipeline(transaction=False) as pipe:
            if after is not None and not unchanged:
                for user_id in after.member_ids():
                    role = _role_of(after, user_id)
                    if role is not None:
                        pipe.hset(keys.user_rooms(user_id), room_id, role.value)
            for user_id in projection.get("gone", ()):
                if after is None or not after.is_member(user_id):
                    pipe.hdel(keys.user_rooms(user_id), room_id)
            if game is not None and not unchanged:
                if after is None or after.status in _ENDED:
                    pipe.srem(keys.rooms_by_game(game), room_id)
                else:
                    pipe.sadd(keys.rooms_by_game(game), room_id)
                # the room list's index: waiting rooms only (a room never returns to waiting)
                subject = after or before
                listing = (
                    listing_member(room_id, subject.created_at)
                    if subject is not None
                    else projection.get("listing")
                )
                if listing is not None:
                    if after is not None and after.status is RoomStatus.WAITING:
                        pipe.zadd(keys.rooms_waiting(game), {listing: 0})
                    else:
                        pipe.zrem(keys.rooms_waiting(game), listing)
            await pipe.execute()
        if after is None and game is not None and projection.get("name"):
            await self._store.release_name(game, projection["name"], room_id)
        if before is not None and after is None and game is not None:
            # a room that is gone leaves no member index behind
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id in before.member_ids():
                    pipe.hdel(keys.user_rooms(user_id), room_id)
                await pipe.execute()

    async def _after_duplicate(
        self, room_id: str, record: Record, pending: list[Awaitable[Any]]
    ) -> None:
        """A redelivered command: redo the projections from the room as it is now, then
        re-send exactly the events recorded the first time (same ids and seqs)."""
        self._cache.pop(room_id, None)  # another engine may have moved the room on
        current = await self._load(room_id)
        await self._project(room_id, None, current, record.projection)
        await self._send(record.events, pending)

    # --- events ---------------------------------------------------------------------------

    async def _send(self, events: Sequence[PublishedEvent], pending: list[Awaitable[Any]]) -> None:
        # one after the other: the producer keeps per-partition order in the order of `send`
        hops = current_hops.get()
        for event in events:
            frame, headers = event.frame, event.headers
            if frame is None or headers is None:  # read back from a record: rebuilt
                frame, headers = event_record(decode_event_envelope(event.envelope))
            if hops is not None:
                headers = [*headers, (H_HOPS, hop(hops, HOP_EVENT_PRODUCED).encode())]
            pending.append(await self._sink.send(self._events_topic, event.key, frame, headers))

    async def publish_now(
        self,
        emits: Sequence[Emit],
        command: CommandEnvelope,
        *,
        key: str,
        room_id: str | None,
        now: datetime,
    ) -> None:
        pending: list[Awaitable[Any]] = []
        await self._send(envelopes(emits, command, room_id, now, key), pending)
        await asyncio.gather(*pending)

    async def publish_recorded(self, events: Sequence[PublishedEvent]) -> None:
        pending: list[Awaitable[Any]] = []
        await self._send(events, pending)
        await asyncio.gather(*pending)
