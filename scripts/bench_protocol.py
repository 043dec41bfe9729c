"""Micro-benchmark of protocol v1 decoding and encoding (a benchmark, not a test).

    .venv/bin/python scripts/bench_protocol.py [--number 20000] [--repeat 5]

For the ten most frequent messages (the golden fixtures, compact JSON) it prints the frame size,
decode+validate and encode time per message (best of --repeat runs), the `json.loads` /
`json.dumps` time of the same bytes as a floor, and the ratio to that floor.
Targets: <= 5 us decode and <= 3 us encode for a ~200-byte message.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import pydantic
from bench.support import ROOT

from parlour_protocol.v1 import (
    decode_client_message,
    decode_command_envelope,
    decode_event_envelope,
    decode_server_message,
    encode,
)

GOLDEN = ROOT / "tests" / "unit" / "protocol" / "golden"

MESSAGES: list[tuple[str, str, Callable[[bytes], Any]]] = [
    ("roll", "games.command.bigger_dice.roll", decode_client_message),
    ("rolled", "games.event.bigger_dice.rolled", decode_server_message),
    ("turn_changed", "games.event.turn_changed", decode_server_message),
    ("round_result", "games.event.bigger_dice.round_result", decode_server_message),
    ("heartbeat", "system.heartbeat", decode_client_message),
    ("heartbeat_ack", "system.heartbeat_ack", decode_server_message),
    ("send_chat", "games.command.send_chat", decode_client_message),
    ("chat_message", "games.event.chat_message", decode_server_message),
    ("command envelope", "_envelope.command", decode_command_envelope),
    ("event envelope", "_envelope.event", decode_event_envelope),
]


def _per_call_us(func: Callable[[], object], number: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(number):
            func()
        best = min(best, (time.perf_counter_ns() - start) / number)
    return best / 1_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per timing run")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs; the best counts")
    args = parser.parse_args(argv)

    print(
        f"python {platform.python_version()}, pydantic {pydantic.VERSION}, "
        f"{args.number} calls x best of {args.repeat}; times in microseconds per message"
    )
    header = (
        f"{'message':<17}{'bytes':>6}{'decode':>9}{'loads':>8}{'ratio':>7}"
        f"{'encode':>9}{'dumps':>8}{'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for label, name, decoder in MESSAGES:
        data = json.loads((GOLDEN / f"{name}.json").read_text())
        raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        model = decoder(raw)
        assert encode(model) == raw, f"{name}: fixture does not round-trip"

        def decode_once(decoder: Callable[[bytes], Any] = decoder, raw: bytes = raw) -> object:
            return decoder(raw)

        def encode_once(model: Any = model) -> object:
            return encode(model)

        def loads_once(raw: bytes = raw) -> object:
            return json.loads(raw)

        def dumps_once(data: Any = data) -> object:
            return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()

        decode_us = _per_call_us(decode_once, args.number, args.repeat)
        loads_us = _per_call_us(loads_once, args.number, args.repeat)
        encode_us = _per_call_us(encode_once, args.number, args.repeat)
        dumps_us = _per_call_us(dumps_once, args.number, args.repeat)
        print(
            f"{label:<17}{len(raw):>6}{decode_us:>9.2f}{loads_us:>8.2f}"
            f"{decode_us / loads_us:>7.2f}{encode_us:>9.2f}{dumps_us:>8.2f}"
            f"{encode_us / dumps_us:>7.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
