"""``shipyard serve models:/name@alias``: the model server."""

from __future__ import annotations


def serve() -> None:
    """Serve registered models over OIP V2 and /predict."""
