"""CLI fixtures: a console wide enough that tables never wrap ids or keys."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's consoles are created at import, so their width is set here, not via COLUMNS."""
    from shipyard.cli import _common

    monkeypatch.setattr(_common.console, "width", 300)
    monkeypatch.setattr(_common.err_console, "width", 300)
