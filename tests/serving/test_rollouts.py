"""Rollouts: canary split, shadow mirroring, alias moves picked up without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pyarrow.dataset as ds
import pytest

from shipyard.config import Settings
from shipyard.serving.rollout import Deployment, parse_canary, request_digest, sampled


async def _send(
    app: Any,
    bodies: list[dict[str, Any]],
    *,
    ids: list[str] | None = None,
    during: Any = None,
    then: int = 0,
) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    server = app.state.model_server
    await server.start()
    async with httpx.AsyncClient(transport=transport, base_url="http://model") as http:
        calls = [
            http.post("/predict", json=b, headers={"X-Request-Id": ids[i]} if ids else None)
            for i, b in enumerate(bodies)
        ]
        if during is not None:
            calls.append(during())
        responses = await asyncio.gather(*calls)
        for _ in range(then):
            responses.append(await http.post("/predict", json=bodies[0]))
    await server.stop()
    return [r for r in responses if isinstance(r, httpx.Response)]


def _log(settings: Settings) -> Any:
    root = Path(settings.artifacts.removeprefix("file://")) / "prediction-logs/default/fraud"
    return ds.dataset(sorted(root.rglob("*.parquet")), format="parquet").to_table()


def test_canary_takes_its_share_deterministically(
    register: Any, logreg: Any, forest: Any, make_app: Any, xy: Any
) -> None:
    register(logreg)
    register(forest, alias="challenger")
    app = make_app(canaries=("models:/fraud@challenger=30",), log_sample=0)
    ids = [f"user-{i}" for i in range(300)]
    body = {"features": xy[0][0].tolist()}
    responses = asyncio.run(_send(app, [body] * 300, ids=ids))
    variant = {
        r.json()["request_id"]: (r.json()["variant"], r.json()["model_version"]) for r in responses
    }
    canary = [i for i, (v, _) in variant.items() if v == "canary"]
    assert 60 <= len(canary) <= 120
    assert all(variant[i][1] == "2" for i in canary)
    assert all(v == ("champion", "1") for i, v in variant.items() if i not in canary)
    again = asyncio.run(
        _send(
            make_app(canaries=("models:/fraud@challenger=30",), log_sample=0), [body] * 300, ids=ids
        )
    )
    assert {r.json()["request_id"]: r.json()["variant"] for r in again} == {
        i: v for i, (v, _) in variant.items()
    }
    text = app.state.model_server.metrics.exposition().decode()
    assert 'model_predictions_total{model="fraud",model_version="2"' in text
    assert 'model_version_served{model="fraud",model_version="2",variant="canary"} 1.0' in text


def test_shadow_sees_every_request_but_never_answers(
    register: Any, logreg: Any, forest: Any, make_app: Any, xy: Any, settings: Settings
) -> None:
    register(logreg)
    register(forest, alias="challenger")
    app = make_app(shadows=("models:/fraud@challenger",))
    X = xy[0][:12]
    responses = asyncio.run(
        _send(app, [{"features": r} for r in X.tolist()], ids=[f"r{i}" for i in range(12)])
    )
    assert {r.json()["model_version"] for r in responses} == {"1"}
    assert [r.json()["prediction"] for r in responses] == logreg.predict(X).tolist()
    table = _log(settings)
    rows = table.to_pylist()
    champion = {r["request_id"]: r for r in rows if r["variant"] == "champion"}
    shadow = {r["request_id"]: r for r in rows if r["variant"] == "shadow"}
    assert set(champion) == set(shadow) == {f"r{i}" for i in range(12)}
    assert {r["version"] for r in shadow.values()} == {"2"}
    for i in range(12):
        assert shadow[f"r{i}"]["prediction"] == forest.predict(X[i : i + 1])[0]
        assert shadow[f"r{i}"]["features_sha256"] == champion[f"r{i}"]["features_sha256"]


def test_alias_move_is_served_without_restart_or_failed_requests(
    register: Any, logreg: Any, forest: Any, make_app: Any, xy: Any, client: Any
) -> None:
    register(logreg)
    app = make_app(log_sample=0)
    server = app.state.model_server
    version = register(forest, alias=None)
    body = {"features": xy[0][0].tolist()}

    async def move() -> None:
        await asyncio.sleep(0.01)
        await asyncio.to_thread(client.registry.set_alias, "fraud", "champion", version)
        swaps = await server.refresh()
        assert swaps == [("fraud", "1", "2")]

    responses = asyncio.run(_send(app, [body] * 150, during=move, then=3))
    assert len(responses) == 153
    assert {r.status_code for r in responses} == {200}
    versions = [r.json()["model_version"] for r in responses]
    assert set(versions[:150]) <= {"1", "2"} and "1" in versions
    assert versions[150:] == ["2", "2", "2"]
    assert server.repository.ready("fraud", "2")
    assert not server.repository.ready("fraud", "1")  # retired once drained


def test_watcher_polls_the_registry(
    register: Any, logreg: Any, forest: Any, make_app: Any, xy: Any, client: Any
) -> None:
    register(logreg)
    app = make_app(log_sample=0, poll_seconds=0.05)
    version = register(forest, alias=None)

    async def scenario() -> str:
        server = app.state.model_server
        await server.start()
        await asyncio.to_thread(client.registry.set_alias, "fraud", "champion", version)
        for _ in range(600):
            if server.deployments["fraud"].champion.version == "2":
                break
            await asyncio.sleep(0.02)
        await server.stop()
        return server.deployments["fraud"].champion.version

    assert asyncio.run(scenario()) == "2"


def test_canary_needs_its_champion_served(make_app: Any, register: Any, logreg: Any) -> None:
    from shipyard.errors import InvalidArgumentError

    register(logreg)
    with pytest.raises(InvalidArgumentError, match="needs 'other' itself to be served"):
        make_app(canaries=("models:/other@x=5",))


def test_canary_bucket_and_sampling_are_sha256_based() -> None:
    digest = request_digest("abc")
    assert digest == __import__("hashlib").sha256(b"abc").digest()
    assert sampled(digest, 1.0) and not sampled(digest, 0.0)
    assert parse_canary("models:/m@c=12.5") == ("models:/m@c", 12.5)
    with pytest.raises(Exception, match="has no share"):
        parse_canary("models:/m@c")
    assert Deployment.route.__doc__


def test_a_failing_shadow_never_affects_the_answer(
    register: Any, logreg: Any, make_app: Any, xy: Any
) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = xy
    register(logreg)
    narrow = LogisticRegression().fit(X[:, :5], y)  # takes 5 features, not 20
    register(narrow, alias="challenger", input_example=X[:5, :5])
    app = make_app(shadows=("models:/fraud@challenger",), log_sample=0)
    responses = asyncio.run(_send(app, [{"features": X[0].tolist()}] * 4))
    assert {r.status_code for r in responses} == {200}
    assert app.state.model_server.shadow_errors == 4


def test_canary_on_the_champions_own_version_shares_the_loaded_model(
    register: Any, logreg: Any, make_app: Any, client: Any
) -> None:
    register(logreg)
    client.registry.set_alias("fraud", "challenger", 1)
    app = make_app(canaries=("models:/fraud@challenger=50",), log_sample=0)
    deployment = app.state.model_server.deployments["fraud"]
    assert deployment.champion.served is deployment.canary.served
    assert deployment.champion.uri == "models:/fraud@champion"
    assert deployment.canary.uri == "models:/fraud@challenger"
