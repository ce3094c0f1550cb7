"""``shipyard serve`` on the command line: options, and failing fast on bad models."""

from __future__ import annotations

import pytest


def test_serve_help_lists_the_options(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.cli.main import main

    monkeypatch.setenv("COLUMNS", "300")
    main(["serve", "--help"])
    out = capsys.readouterr().out
    for option in (
        "--max-batch-size",
        "--max-latency-ms",
        "--max-queue",
        "--log-sample",
        "--shadow",
        "--canary",
        "--workers",
        "--grpc-port",
    ):
        assert option in out


def test_unknown_model_fails_before_listening(capsys: pytest.CaptureFixture[str]) -> None:
    from shipyard.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["serve", "models:/nope@champion", "--port", "0"])
    assert done.value.code == 3
    assert "nope" in capsys.readouterr().err


def test_malformed_uri_and_canary_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from shipyard.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["serve", "fraud"])
    assert done.value.code == 2
    assert "is not a registry model URI" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["serve", "models:/a@champion", "--canary", "models:/a@b"])
    assert done.value.code == 2
    assert "has no share" in capsys.readouterr().err
