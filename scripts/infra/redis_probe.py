"""Is a Redis usable: a minimal RESP2 client on a plain socket (no redis-py), so `status` and
`down` work before the virtualenv exists."""

from __future__ import annotations

import socket

from infra.addresses import RedisTarget
from infra.console import InfraError


def _resp_command(args: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _read_reply(sock: socket.socket, buffer: bytearray) -> object:
    """One RESP2 reply: str for simple strings, bytes | None for bulk strings, int, list;
    an error reply becomes an InfraError."""

    def line() -> bytes:
        while b"\r\n" not in buffer:
            chunk = sock.recv(4096)
            if not chunk:
                raise OSError("connection closed")
            buffer.extend(chunk)
        end = buffer.index(b"\r\n")
        text = bytes(buffer[:end])
        del buffer[: end + 2]
        return text

    head = line()
    kind, rest = head[:1], head[1:]
    if kind == b"+":
        return rest.decode(errors="replace")
    if kind == b"-":
        raise InfraError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        while len(buffer) < size + 2:
            chunk = sock.recv(max(4096, size + 2 - len(buffer)))
            if not chunk:
                raise OSError("connection closed")
            buffer.extend(chunk)
        data = bytes(buffer[:size])
        del buffer[: size + 2]
        return data
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_read_reply(sock, buffer) for _ in range(count)]
    raise OSError(f"unexpected reply {head[:80]!r}")


def redis_call(target: RedisTarget, *commands: list[str], timeout: float = 2.0) -> list[object]:
    """Send commands on one connection (after AUTH when the target has a password) and
    return their replies. Raises OSError when nothing answers, InfraError on an error reply."""
    with socket.create_connection((target.host, target.port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        buffer = bytearray()
        if target.password is not None:
            auth = ["AUTH", target.password]
            if target.username:
                auth.insert(1, target.username)
            sock.sendall(_resp_command([a.encode() for a in auth]))
            _read_reply(sock, buffer)
        if target.db:
            sock.sendall(_resp_command([b"SELECT", str(target.db).encode()]))
            _read_reply(sock, buffer)
        replies = []
        for command in commands:
            sock.sendall(_resp_command([a.encode() for a in command]))
            replies.append(_read_reply(sock, buffer))
        return replies


def redis_ping(target: RedisTarget, timeout: float = 2.0) -> str | None:
    """None when Redis answers PING with PONG; otherwise why not (one line)."""
    try:
        [reply] = redis_call(target, ["PING"], timeout=timeout)
    except OSError as exc:
        return f"no answer ({exc.strerror or exc})"
    except (InfraError, ValueError) as exc:
        return f"refused: {exc}"
    if reply == "PONG":
        return None
    return f"unexpected reply to PING: {reply!r:.80}"


def redis_persistence(target: RedisTarget) -> str:
    """One line on what survives a restart of the Redis at `target`: its AOF and RDB
    settings and its eviction policy, read with CONFIG GET."""
    wanted = ["appendonly", "appendfsync", "save", "maxmemory-policy", "dir"]
    try:
        replies = redis_call(target, *(["CONFIG", "GET", name] for name in wanted))
    except (OSError, InfraError, ValueError) as exc:
        return f"persistence unknown (CONFIG GET refused: {exc})"
    config: dict[str, str] = {}
    for reply in replies:
        if isinstance(reply, list) and len(reply) == 2:
            name, value = (
                v.decode(errors="replace") if isinstance(v, bytes) else "" for v in reply
            )
            config[name] = value
    if config.get("appendonly") == "yes":
        how = f"AOF on (appendfsync {config.get('appendfsync', '?')})"
    elif config.get("save"):
        how = f"AOF OFF, RDB snapshots only (save {config['save']}): a crash loses recent writes"
    else:
        how = "NO persistence (AOF off, no RDB): a restart loses every game"
    policy = config.get("maxmemory-policy", "?")
    if policy != "noeviction":
        policy += " (evicts keys: games can vanish)"
    return f"{how}; maxmemory-policy {policy}; dir {config.get('dir', '?')}"
