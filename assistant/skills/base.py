"""The contract every skill follows."""

from __future__ import annotations

from typing import Iterator, Protocol

from assistant.types import Delta, Reply, Turn


class Skill(Protocol):
    name: str

    def stream(self, turn: Turn) -> Iterator[Delta | Reply]:
        """Yield text deltas as they are produced, then exactly one final Reply."""
        ...


def final_reply(events: Iterator[Delta | Reply]) -> Reply:
    """Drain a skill's stream and return its final Reply."""
    reply: Reply | None = None
    for event in events:
        if isinstance(event, Reply):
            reply = event
    if reply is None:
        raise RuntimeError("skill stream ended without a Reply")
    return reply
