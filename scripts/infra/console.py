"""What the infra commands print: one-line progress, and the error a user can act on."""

from __future__ import annotations


class InfraError(Exception):
    """A problem the user can act on; printed as one line, without a traceback."""


def say(msg: str) -> None:
    print(msg, flush=True)
