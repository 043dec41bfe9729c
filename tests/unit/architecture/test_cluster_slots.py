"""Every Lua script and every multi-key command stays inside one Redis Cluster hash slot.

The services run each script through a recording client (no Redis): every EVALSHA's KEYS must
map to one slot (`redis.crc.key_slot`, what the cluster computes). The table `SCENARIOS` has
one entry per Lua source in the services; a script added without an entry fails
`test_every_lua_script_has_a_scenario`. Multi-key commands and transactional pipelines are
found in the source by name: a new call site fails `test_no_unlisted_multi_key_command` until
it is listed in `MULTI_KEY_SITES` with the reason its keys share a slot.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from parlour_engine import store as store_module
from parlour_engine.store import (
    ChatAppendJson,
    PublishedEvent,
    Record,
    RoomStore,
    StateWrite,
)
from parlour_gateway import presence as presence_module
from parlour_gateway.presence import Presence, SocketInfo
from parlour_protocol.v1 import RedisKeys
from tests.support.paths import REPO_ROOT

SOURCES = [REPO_ROOT / "services", REPO_ROOT / "libs"]

MULTI_KEY_COMMANDS = frozenset(
    {
        "delete", "unlink", "exists", "touch", "mget", "mset", "msetnx", "rename", "renamenx",
        "copy", "smove", "sinter", "sintercard", "sinterstore", "sunion", "sunionstore", "sdiff",
        "sdiffstore", "zunion", "zunionstore", "zinter", "zinterstore", "zintercard", "zdiff",
        "zdiffstore", "zrangestore", "lmove", "blmove", "rpoplpush", "brpoplpush", "lmpop",
        "blmpop", "zmpop", "bzmpop", "blpop", "brpop", "bzpopmin", "bzpopmax", "pfcount",
        "pfmerge", "bitop", "xread", "xreadgroup", "watch", "eval", "evalsha", "eval_ro",
        "evalsha_ro", "fcall", "fcall_ro", "execute_command",
    }
)  # fmt: skip
"""redis-py methods that take (or may take) several keys."""

_ALWAYS_MULTI = frozenset(
    {"mset", "msetnx", "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "execute_command"}
)
"""... even with one argument (a mapping, keys after numkeys, any command by name)."""

MULTI_KEY_SITES: dict[tuple[str, str], str] = {
    ("libs/runtime/parlour_runtime/redis_client.py", "execute_command"): (
        "run_scripts' EVALSHA: the KEYS of one script run; every script's are checked below"
    ),
}
"""(file, method) -> why its keys share one slot."""

LEGACY_USER = "user-7"
ROOM = "6f1c3f0e-2b1d-4a5e-9c11-8d9e0f1a2b3c"


def _key(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


@dataclass
class ScriptRun:
    source: str
    keys: list[str]


@dataclass
class Recorder:
    """A stand-in for `Redis`/`RedisCluster` that records script runs and replies from
    `replies` (by script source, else by command name)."""

    replies: dict[str, Any] = field(default_factory=dict)
    runs: list[ScriptRun] = field(default_factory=list)
    commands: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    by_sha: dict[str, str] = field(default_factory=dict)

    def register_script(self, source: str) -> FakeScript:
        script = FakeScript(self, source)
        self.by_sha[script.sha] = source
        return script

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        assert transaction is False, "a transactional pipeline spans slots on a cluster"
        return FakePipeline(self)

    def run(self, sha: str, numkeys: int, *rest: Any) -> Any:
        source = self.by_sha[sha]
        self.runs.append(ScriptRun(source, [str(k) for k in rest[:numkeys]]))
        return self.replies[source]

    def reply(self, name: str, args: tuple[Any, ...]) -> Any:
        self.commands.append((name, args))
        return self.replies.get(name)

    async def sscan_iter(self, key: str, count: int = 0) -> AsyncIterator[bytes]:
        for member in self.replies.get("sscan_iter", []):
            yield member

    async def script_load(self, source: str) -> str:
        return hashlib.sha1(source.encode()).hexdigest()

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        async def command(*args: Any, **_kwargs: Any) -> Any:
            return self.reply(name, args)

        return command


@dataclass
class FakeScript:
    recorder: Recorder
    script: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.script.encode()).hexdigest()

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        return self.recorder.run(self.sha, len(keys), *keys, *args)


@dataclass
class FakePipeline:
    recorder: Recorder
    queued: list[Callable[[], Any]] = field(default_factory=list)

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    def execute_command(self, name: str, *args: Any) -> FakePipeline:
        if name.upper() == "EVALSHA":
            sha, numkeys, *rest = args
            self.queued.append(lambda: self.recorder.run(sha, numkeys, *rest))
        else:
            self.queued.append(lambda: self.recorder.reply(name.lower(), args))
        return self

    def __getattr__(self, name: str) -> Callable[..., FakePipeline]:
        def command(*args: Any, **_kwargs: Any) -> FakePipeline:
            self.queued.append(lambda: self.recorder.reply(name, args))
            return self

        return command

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        queued, self.queued = self.queued, []
        return [call() for call in queued]


# --- the scenarios: each drives the service code that runs one script ---------------------

Scenario = Callable[[Recorder, RedisKeys, str], Awaitable[None]]


def _store(redis: Recorder, keys: RedisKeys) -> RoomStore:
    return RoomStore(redis, keys, applied_ttl_seconds=60, ended_room_ttl_seconds=60)  # type: ignore[arg-type]


def _presence(redis: Recorder, keys: RedisKeys) -> Presence:
    return Presence(redis, keys, "gw-1", 30)  # type: ignore[arg-type]


async def _commit(redis: Recorder, keys: RedisKeys, user_id: str) -> None:
    redis.replies[store_module._COMMIT_LUA] = [b"ok"]
    record = Record(events=[PublishedEvent(key=ROOM, seq=1, envelope="{}")], projection={})
    for write in StateWrite:  # DELETE adds every chat channel's key
        await _store(redis, keys).commit(
            ROOM,
            msg_id="m-1",
            expected_version=1,
            write=write,
            state_json="{}",
            record=record,
            chat=[ChatAppendJson(channel="lobby", item="{}")],
        )


async def _release_name(redis: Recorder, keys: RedisKeys, user_id: str) -> None:
    redis.replies[store_module._RELEASE_NAME_LUA] = 1
    await _store(redis, keys).release_name("bigger_dice", "Alice's room", ROOM)


def _with_sockets(redis: Recorder) -> None:
    redis.replies.update(
        smembers={b"s-2", b"s-3"}, sadd=1, srem=1, scard=0, exists=0, sscan_iter=[]
    )


async def _register(redis: Recorder, keys: RedisKeys, user_id: str) -> None:
    _with_sockets(redis)
    redis.replies[presence_module.REGISTER_LUA] = 0
    await _presence(redis, keys).register(SocketInfo("s-1", user_id, "alice"), 5, 1.0)


async def _unregister(redis: Recorder, keys: RedisKeys, user_id: str) -> None:
    _with_sockets(redis)
    redis.replies[presence_module.UNREGISTER_LUA] = 1
    redis.replies["sscan_iter"] = [user_id.encode()]
    presence = _presence(redis, keys)
    await presence.unregister(user_id, "s-1")
    await presence.sweep_user(user_id)
    await presence.sweep()


async def _touch(redis: Recorder, keys: RedisKeys, user_id: str) -> None:
    _with_sockets(redis)
    redis.replies[presence_module.TOUCH_LUA] = 1
    info = SocketInfo("s-1", user_id, "alice")
    await _presence(redis, keys).touch_many([(info, True), (info, False)], 1.0)


SCENARIOS: dict[str, Scenario] = {
    store_module._COMMIT_LUA: _commit,
    store_module._RELEASE_NAME_LUA: _release_name,
    presence_module.REGISTER_LUA: _register,
    presence_module.UNREGISTER_LUA: _unregister,
    presence_module.TOUCH_LUA: _touch,
}
"""Lua source -> the scenario that makes the services run it."""


# --- the source scans ----------------------------------------------------------------------


def _python_files() -> Iterator[Path]:
    for root in SOURCES:
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts and "tests" not in path.parts:
                yield path


def _lua_sources() -> dict[str, str]:
    """Every string constant in the services and libs that calls Redis from Lua."""
    found: dict[str, str] = {}
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and "redis.call(" in node.value
            ):
                found[node.value] = str(path.relative_to(REPO_ROOT))
    return found


def _calls() -> Iterator[tuple[str, int, ast.Call, str]]:
    for path in _python_files():
        rel = str(path.relative_to(REPO_ROOT))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                yield rel, node.lineno, node, node.func.attr


def test_every_lua_script_has_a_scenario() -> None:
    sources = _lua_sources()
    assert sources, "the scan found no Lua at all"
    missing = {where for source, where in sources.items() if source not in SCENARIOS}
    assert not missing, f"Lua scripts with no entry in SCENARIOS: {sorted(missing)}"


def _several_arguments(call: ast.Call) -> bool:
    return len(call.args) > 1 or any(isinstance(a, ast.Starred) for a in call.args)


def test_no_unlisted_multi_key_command() -> None:
    unlisted = [
        f"{rel}:{line} .{name}()"
        for rel, line, call, name in _calls()
        if name in MULTI_KEY_COMMANDS
        and (rel, name) not in MULTI_KEY_SITES
        and (name in _ALWAYS_MULTI or _several_arguments(call))
    ]
    assert not unlisted, f"multi-key commands not in MULTI_KEY_SITES: {unlisted}"


def test_every_pipeline_is_non_transactional() -> None:
    """A MULTI/EXEC pipeline must keep to one slot on a cluster; the services use none."""
    wrong = []
    for rel, line, call, name in _calls():
        if name != "pipeline":
            continue
        transaction = next((k.value for k in call.keywords if k.arg == "transaction"), None)
        if not (isinstance(transaction, ast.Constant) and transaction.value is False):
            wrong.append(f"{rel}:{line}")
    assert not wrong, f"pipelines without transaction=False: {wrong}"


@pytest.mark.parametrize("prefix", ["", "t-1:"])
@pytest.mark.parametrize("source", list(SCENARIOS), ids=lambda s: s.split("redis.call")[0][-30:])
async def test_each_script_run_keeps_to_one_slot(source: str, prefix: str) -> None:
    redis = Recorder()
    await SCENARIOS[source](redis, RedisKeys(prefix=prefix), LEGACY_USER)
    runs = [run for run in redis.runs if run.source == source]
    assert runs, "the scenario never ran its script"
    for run in runs:
        slots = {key_slot(_key(k)) for k in run.keys}
        assert len(slots) == 1, f"keys over {len(slots)} slots: {run.keys}"


# user ids come from a token's `sub`: any text without a leading `}` keeps one tag (a `}` first
# would make the tag empty, and Redis hashes the whole key then)
_user_ids = st.text(min_size=1, max_size=40).filter(lambda u: not u.startswith("}"))


@given(user_id=_user_ids, socket_id=st.uuids())
def test_a_users_keys_share_a_slot(user_id: str, socket_id: object) -> None:
    keys = RedisKeys(prefix="p:")
    slots = {
        key_slot(_key(k))
        for k in (
            keys.user_sockets(user_id),
            keys.socket(user_id, str(socket_id)),
            keys.user_rooms(user_id),
            keys.user_direct_applied(user_id, "m-1"),
        )
    }
    assert len(slots) == 1
