"""What the soak measures: RSS of each service process, Redis memory and keys over every
master, and the keys left under the soak's prefix, each judged expected or a leak."""

from __future__ import annotations

import fnmatch
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from parlour_protocol.v1.keys import RECONNECT_TTL_SECONDS
from soak.services import APPLIED_TTL_SECONDS, ENDED_ROOM_TTL_SECONDS, HEARTBEAT_SECONDS


def rss_bytes(pid: int) -> int | None:
    """The process's resident memory, None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return 0


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far, None when the process is gone."""
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def shape(key: str) -> str:
    """A key without the prefix, ids replaced by `*`: `{room:*}:state`, `user:{*}:rooms`."""
    key = re.sub(r"\{room:[^}]*\}", "{room:*}", key)
    key = re.sub(r"\{(?!room:\*\})[^}]*\}", "{*}", key)
    parts = key.split(":")
    return ":".join(
        part if part.startswith("{") or part == "*" or not _looks_like_id(part) else "*"
        for part in parts
    )


def _looks_like_id(part: str) -> bool:
    return bool(re.search(r"[0-9.]", part)) or len(part) > 24


TIMER_HORIZON_SECONDS = 60
"""The latest a timer of the soak's rooms falls due: the turn timer and the disconnect grace
(ENGINE_TURN_TIMEOUT_SECONDS, ENGINE_DISCONNECT_GRACE_SECONDS: 30 s each by default)."""
TIMER_OVERDUE_SECONDS = 30
"""A timer this long past due was not taken by any engine: a leak, not an expiring key."""

EXPIRING: dict[str, tuple[int, str]] = {
    "{room:*}:applied": (
        APPLIED_TTL_SECONDS,
        "a room's idempotency records (msg_id -> events, offset watermark) live "
        "ENGINE_APPLIED_TTL_SECONDS after its last command, so a late Kafka redelivery or "
        "gateway re-send is still recognised",
    ),
    "{room:*}:applied_order": (APPLIED_TTL_SECONDS, "the order of those records, same TTL"),
    "{room:*}:events": (
        ENDED_ROOM_TTL_SECONDS,
        "a removed room's replay stream, kept ENGINE_ENDED_ROOM_TTL_SECONDS for resuming clients",
    ),
    "{room:*}:chat:*": (
        ENDED_ROOM_TTL_SECONDS,
        "a removed room's chat lists expire with its replay stream",
    ),
    "reconnect:*:*": (
        RECONNECT_TTL_SECONDS,
        "where a dropped user was, for a quick rejoin (RECONNECT_TTL_SECONDS)",
    ),
    "socket:*": (
        3 * HEARTBEAT_SECONDS,
        "a socket's presence record, 3x the heartbeat when its gateway could not delete it",
    ),
    "timers": (
        TIMER_HORIZON_SECONDS,
        "due timers of rooms already removed (a turn timer, a disconnect grace): the engine "
        "drops each as stale when it falls due, and the sorted set goes with the last one",
    ),
    "gateway:*": (
        3 * HEARTBEAT_SECONDS + 60,
        "a running gateway's liveness key, refreshed while it runs",
    ),
}
LONG_LIVED: dict[str, str] = {
    "lobby:*:indexed": (
        "one marker per game type: its waiting-room index was built (tiny, by design)"
    ),
}


def _rule(key_shape: str, table: dict[str, Any]) -> Any:
    """The entry of `table` whose pattern (fnmatch) the shape matches, or None."""
    for pattern, entry in table.items():
        if fnmatch.fnmatchcase(key_shape, pattern):
            return entry
    return None


@dataclass
class KeyGroup:
    shape: str
    count: int = 0
    bytes: int = 0
    ttl_min: int | None = None
    ttl_max: int | None = None
    without_ttl: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if _rule(self.shape, LONG_LIVED) is not None:
            return "long-lived"
        bound = _rule(self.shape, EXPIRING)
        if bound is None or self.without_ttl or (self.ttl_max or 0) > bound[0]:
            return "leak"
        return "expiring"

    @property
    def why(self) -> str:
        long_lived: str | None = _rule(self.shape, LONG_LIVED)
        if long_lived is not None:
            return long_lived
        bound = _rule(self.shape, EXPIRING)
        if self.verdict == "leak":
            reasons = []
            if self.without_ttl:
                reasons.append(f"{self.without_ttl} without a TTL")
            if bound is None:
                reasons.append("not a key that should outlive its users")
            elif (self.ttl_max or 0) > bound[0]:
                reasons.append(f"TTL up to {self.ttl_max} s, more than {bound[0]} s")
            return "; ".join(reasons)
        return bound[1] if bound else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "count": self.count,
            "bytes": self.bytes,
            "ttl_min": self.ttl_min,
            "ttl_max": self.ttl_max,
            "without_ttl": self.without_ttl,
            "verdict": self.verdict,
            "why": self.why,
            "examples": self.examples,
        }


async def prefix_keys(masters: list[aioredis.Redis], prefix: str) -> list[bytes]:
    keys: list[bytes] = []
    for master in masters:
        keys += [key async for key in master.scan_iter(match=f"{prefix}*", count=2_000)]
    return keys


async def _timers_ttl(master: aioredis.Redis, key: bytes, group: KeyGroup) -> int:
    """The timer set has no TTL of its own: it lasts until its last member falls due (and is
    dropped). Returns the seconds until then, or -1 when a member is long overdue (no engine
    takes it: it would stay). Its members' kinds go to the examples."""
    now_ms = time.time() * 1000
    reply: list[Any] = list(await master.zrange(key, 0, -1, withscores=True))
    raw = [(bytes(pair[0]), float(pair[1])) for pair in reply]
    kinds = Counter(
        member.decode(errors="replace").split("|")[1]
        for member, _ in raw
        if member.count(b"|") >= 2
    )
    group.examples.append(f"timer kinds {dict(kinds)}")
    if not raw:
        return 0
    first, last = float(raw[0][1]), float(raw[-1][1])
    if now_ms - first > TIMER_OVERDUE_SECONDS * 1000:
        return -1
    return max(0, int((last - now_ms) / 1000))


async def key_groups(
    masters: list[aioredis.Redis], prefix: str, *, sizes: bool = True
) -> list[KeyGroup]:
    """The keys under the prefix on every master, grouped by shape with TTLs (and sizes)."""
    groups: dict[str, KeyGroup] = {}
    for master in masters:
        keys = [key async for key in master.scan_iter(match=f"{prefix}*", count=2_000)]
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            pipe = master.pipeline(transaction=False)
            for key in batch:
                pipe.ttl(key)
                if sizes:
                    pipe.memory_usage(key)
            replies = await pipe.execute()
            step = 2 if sizes else 1
            for i, key in enumerate(batch):
                name = key.decode(errors="replace")[len(prefix) :]
                ttl = int(replies[step * i])
                if ttl == -2:
                    continue  # gone (expired) between the SCAN and the TTL
                group = groups.setdefault(shape(name), KeyGroup(shape(name)))
                if name == "timers" and ttl < 0:
                    ttl = await _timers_ttl(master, key, group)
                group.count += 1
                if sizes:
                    group.bytes += int(replies[step * i + 1] or 0)
                if ttl < 0:
                    group.without_ttl += 1
                else:
                    group.ttl_min = ttl if group.ttl_min is None else min(group.ttl_min, ttl)
                    group.ttl_max = ttl if group.ttl_max is None else max(group.ttl_max, ttl)
                if len(group.examples) < 3:
                    group.examples.append(name)
    return sorted(groups.values(), key=lambda g: (-g.count, g.shape))


async def room_states(masters: list[aioredis.Redis], prefix: str, most: int = 200) -> Counter[str]:
    """The rooms whose state is still stored, counted by status (and by how many of their
    players are disconnected): evidence for a `{room:*}:state` left behind."""
    found: Counter[str] = Counter()
    for master in masters:
        async for key in master.scan_iter(match=f"{prefix}{{room:*}}:state", count=2_000):
            if sum(found.values()) >= most:
                return found
            raw = await master.get(key)
            if raw is None:
                continue
            try:
                state = json.loads(raw)
            except ValueError:
                found["unreadable"] += 1
                continue
            gone = len(state.get("disconnects") or ())
            found[f"{state.get('status')}, {gone} player(s) disconnected"] += 1
    return found


async def redis_figures(masters: list[aioredis.Redis], prefix: str) -> dict[str, int]:
    """used_memory and DBSIZE summed over the masters, and the prefix's keys and bytes."""
    used = 0
    dbsize = 0
    for master in masters:
        info = await master.info("memory")
        used += int(info["used_memory"])
        dbsize += int(await master.dbsize())
    groups = await key_groups(masters, prefix)
    return {
        "used_memory": used,
        "dbsize": dbsize,
        "prefix_keys": sum(g.count for g in groups),
        "prefix_bytes": sum(g.bytes for g in groups),
    }


def shapes_summary(groups: list[KeyGroup]) -> Counter[str]:
    return Counter({g.shape: g.count for g in groups})
