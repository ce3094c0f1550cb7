"""Rollouts: which loaded version answers a request (champion, canary) or mirrors it (shadow).

A :class:`Deployment` is what one served name routes to. Its canary split is decided by
the sha256 of the request id, so a retried request lands on the same variant, in every
worker process alike (Python's ``hash()`` is salted per process and would not).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.serving.batching import MicroBatcher
    from shipyard.serving.served import ServedModel

__all__ = ["CANARY", "CHAMPION", "SHADOW", "Deployment", "Rollout", "Target", "parse_canary"]

CHAMPION = "champion"
CANARY = "canary"
SHADOW = "shadow"


@dataclass(frozen=True)
class Rollout:
    """How one served name splits traffic.

    Attributes:
        champion: URI answering by default (``models:/fraud@champion``).
        canary: URI answering ``canary_percent`` % of requests.
        shadow: URI receiving a copy of every request; its answers are logged, never sent.
    """

    champion: str
    canary: str | None = None
    canary_percent: float = 0.0
    shadow: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.canary_percent <= 100.0:
            raise InvalidArgumentError(
                f"Canary share {self.canary_percent}% is outside 0-100.",
                hint="Pass e.g. --canary models:/fraud@challenger=10 for 10%.",
            )


def parse_canary(text: str) -> tuple[str, float]:
    """``models:/fraud@challenger=10`` -> (``models:/fraud@challenger``, 10.0)."""
    uri, sep, share = text.rpartition("=")
    if not sep or not uri:
        raise InvalidArgumentError(
            f"Canary '{text}' has no share.",
            hint="Write URI=PERCENT, e.g. models:/fraud@challenger=10.",
        )
    try:
        percent = float(share.rstrip("%"))
    except ValueError:
        raise InvalidArgumentError(
            f"Canary share '{share}' is not a number.",
            hint="Write URI=PERCENT, e.g. models:/fraud@challenger=10.",
        ) from None
    return uri, percent


@dataclass(eq=False)
class Target:
    """A URI the server follows: the version it resolved to and that version's batcher.

    ``served`` and ``batcher`` are replaced together when the alias moves; a request
    reads both before its first ``await``, so it finishes on the version it started on.
    """

    uri: str
    variant: str
    served: ServedModel
    batcher: MicroBatcher
    percent: float = 0.0

    @property
    def version(self) -> str:
        return self.served.version


@dataclass(eq=False)
class Deployment:
    """The targets of one served name."""

    name: str
    champion: Target
    canary: Target | None = None
    shadow: Target | None = None
    _threshold: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.set_canary_percent(self.canary.percent if self.canary else 0.0)

    def set_canary_percent(self, percent: float) -> None:
        self._threshold = int(percent * 100)  # out of 10,000 buckets

    def targets(self) -> list[Target]:
        return [t for t in (self.champion, self.canary, self.shadow) if t is not None]

    def route(self, digest: bytes) -> Target:
        """The target answering the request whose id hashes to ``digest`` (sha256)."""
        if self.canary is not None and self._threshold:
            bucket = int.from_bytes(digest[:4], "big") % 10_000
            if bucket < self._threshold:
                return self.canary
        return self.champion


def request_digest(request_id: str) -> bytes:
    """The sha256 of a request id: canary bucket (bytes 0-3) and log sampling (4-7)."""
    return hashlib.sha256(request_id.encode("utf-8", "surrogatepass")).digest()


def sampled(digest: bytes, share: float) -> bool:
    """Whether a request is in the logged share (deterministic by request id)."""
    if share >= 1.0:
        return True
    if share <= 0.0:
        return False
    return int.from_bytes(digest[4:8], "big") < share * 4_294_967_296
