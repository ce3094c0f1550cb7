"""Run artifacts over HTTP and locally: streamed upload and download with sha256 checks,
listing, and no path that escapes the run's folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from shipyard.config import Settings
from shipyard.errors import ArtifactNotFoundError, IntegrityError, InvalidArgumentError
from shipyard.testing import platform_client, running_server
from shipyard.tracking.http import HttpTrackingStore
from shipyard.tracking.run_artifacts import HttpRunArtifacts, LocalRunArtifacts, RunArtifacts
from shipyard.tracking.store import TrackingStore
from shipyard.types import ArtifactInfo


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def run_id(client: Any) -> str:
    experiment = client.post("/api/v1/experiments", json={"name": "art"}).json()
    run = client.post("/api/v1/runs", json={"experiment_id": experiment["experiment_id"]})
    return str(run.json()["info"]["run_id"])


def _run_folder(client: Any, run_id: str) -> Path:
    uri = client.get(f"/api/v1/runs/{run_id}").json()["info"]["artifact_uri"]
    return Path(unquote(urlsplit(uri).path))


def test_upload_download_and_list(client: Any, run_id: str) -> None:
    base = f"/api/v1/runs/{run_id}/artifacts"
    uploaded = client.put(f"{base}/model/weights.bin", content=b"abc")
    assert uploaded.status_code == 201
    assert uploaded.json() == {
        "path": "model/weights.bin",
        "size": 3,
        "sha256": _sha(b"abc"),
        "is_dir": False,
    }
    assert (_run_folder(client, run_id) / "model" / "weights.bin").read_bytes() == b"abc"
    client.put(f"{base}/readme.txt", content=b"hi")

    downloaded = client.get(f"{base}/model/weights.bin")
    assert downloaded.status_code == 200
    assert downloaded.content == b"abc"
    assert downloaded.headers["X-Shipyard-Sha256"] == _sha(b"abc")
    assert downloaded.headers["Content-Type"] == "application/octet-stream"

    root = client.get(base).json()["artifacts"]
    assert [(a["path"], a["is_dir"]) for a in root] == [("model", True), ("readme.txt", False)]
    inside = client.get(base, params={"path": "model"}).json()["artifacts"]
    assert [a["path"] for a in inside] == ["model/weights.bin"]


@pytest.mark.parametrize(
    "path", ["../escape.txt", "a/../../escape.txt", "%2E%2E/escape.txt", "a\\..\\b", "/abs"]
)
def test_paths_escaping_the_run_are_refused(client: Any, run_id: str, path: str) -> None:
    response = client.put(f"/api/v1/runs/{run_id}/artifacts/{path}", content=b"x")
    assert response.status_code in (400, 404), response.text
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "invalid_argument"
        assert "Artifact key" in response.json()["error"]["message"]
    listing = client.get(f"/api/v1/runs/{run_id}/artifacts").json()["artifacts"]
    assert listing == []
    response = client.get(f"/api/v1/runs/{run_id}/artifacts", params={"path": "../.."})
    assert response.status_code == 400


def test_upload_with_wrong_declared_sha256_is_not_kept(client: Any, run_id: str) -> None:
    response = client.put(
        f"/api/v1/runs/{run_id}/artifacts/x.bin",
        content=b"data",
        headers={"X-Shipyard-Sha256": "0" * 64},
    )
    assert response.status_code == 400
    assert "it was not kept" in response.json()["error"]["message"]
    assert client.get(f"/api/v1/runs/{run_id}/artifacts").json()["artifacts"] == []
    assert not (_run_folder(client, run_id) / "x.bin").exists()


def test_missing_artifact_and_folder_downloads(client: Any, run_id: str) -> None:
    response = client.get(f"/api/v1/runs/{run_id}/artifacts/nope.txt")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "artifact_not_found",
        "message": f"Run '{run_id}' has no artifact 'nope.txt'.\nHint: List the run's artifacts "
        f"with GET /api/v1/runs/{run_id}/artifacts.",
    }
    client.put(f"/api/v1/runs/{run_id}/artifacts/dir/f.txt", content=b"1")
    response = client.get(f"/api/v1/runs/{run_id}/artifacts/dir")
    assert response.status_code == 400
    assert "is a folder" in response.json()["error"]["message"]
    response = client.put("/api/v1/runs/ghost/artifacts/a.txt", content=b"1")
    assert response.json()["error"]["code"] == "run_not_found"


def _exercise(artifacts: RunArtifacts, tracking: TrackingStore, tmp_path: Path) -> None:
    run = tracking.create_run(tracking.create_experiment("files").experiment_id)
    single = tmp_path / "metrics.json"
    single.write_text('{"acc": 1}')
    info = artifacts.log_artifact(run.run_id, single, "eval")
    expected = ArtifactInfo("eval/metrics.json", single.stat().st_size, _sha(single.read_bytes()))
    assert info == expected

    tree = tmp_path / "model"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"A")
    (tree / "sub" / "b.txt").write_bytes(b"B")
    infos = artifacts.log_artifacts(run.run_id, tree, "model")
    assert [i.path for i in infos] == ["model/a.txt", "model/sub/b.txt"]
    assert artifacts.log_bytes(run.run_id, b"raw", "raw.bin").sha256 == _sha(b"raw")

    listed = artifacts.list_artifacts(run.run_id)
    assert [(i.path, i.is_dir) for i in listed] == [
        ("eval", True),
        ("model", True),
        ("raw.bin", False),
    ]
    out = artifacts.download_artifacts(run.run_id, "model", tmp_path / "out")
    assert out == tmp_path / "out" / "model"
    assert (out / "a.txt").read_bytes() == b"A"
    assert (out / "sub" / "b.txt").read_bytes() == b"B"
    one = artifacts.download_artifacts(run.run_id, "eval/metrics.json", tmp_path / "one")
    assert one.read_text() == '{"acc": 1}'
    everything = artifacts.download_artifacts(run.run_id)
    assert sorted(p.relative_to(everything).as_posix() for p in everything.rglob("*.*")) == [
        "eval/metrics.json",
        "model/a.txt",
        "model/sub/b.txt",
        "raw.bin",
    ]
    with pytest.raises(ArtifactNotFoundError, match="has no artifact 'ghost'"):
        artifacts.download_artifacts(run.run_id, "ghost", tmp_path / "ghost")
    with pytest.raises(InvalidArgumentError, match="escapes"):
        artifacts.log_bytes(run.run_id, b"x", "../up.txt")
    with pytest.raises(InvalidArgumentError, match="is not a file"):
        artifacts.log_artifact(run.run_id, tmp_path / "missing.txt")

    # A stored file changed behind the store's back is caught on download.
    uri = tracking.get_run(run.run_id).info.artifact_uri
    stored = Path(unquote(urlsplit(uri).path)) / "raw.bin"
    stored.write_bytes(b"RAW")
    with pytest.raises(IntegrityError, match=r"raw\.bin"):
        artifacts.download_artifacts(run.run_id, "raw.bin", tmp_path / "bad")
    assert not (tmp_path / "bad" / "raw.bin").exists()


def test_http_run_artifacts(server_settings: Settings, tmp_path: Path) -> None:
    http = platform_client(server_settings)
    _exercise(HttpRunArtifacts(http), HttpTrackingStore(http), tmp_path)


def test_local_run_artifacts(server_settings: Settings, tmp_path: Path) -> None:
    from shipyard.store.db import engine_for
    from shipyard.tracking.sql import SqlTrackingStore

    tracking = SqlTrackingStore(
        engine_for(server_settings.db), artifact_root=server_settings.artifacts
    )
    _exercise(LocalRunArtifacts(tracking, server_settings.artifacts), tracking, tmp_path)


def test_20_mib_file_streams_through_a_real_server(
    server_settings: Settings, tmp_path: Path
) -> None:
    from shipyard._http import HttpSession

    source = tmp_path / "big.bin"
    with open(source, "wb") as out:
        for _ in range(20):
            out.write(os.urandom(1024 * 1024))
    digest = _sha(source.read_bytes())
    settings = server_settings.model_copy(update={"max_request_bytes": 1024 * 1024})
    with running_server(settings) as url, HttpSession(url) as http:
        tracking = HttpTrackingStore(http)
        artifacts = HttpRunArtifacts(http)
        run = tracking.create_run(tracking.create_experiment("big").experiment_id)
        info = artifacts.log_artifact(run.run_id, source, "data")
        assert (info.size, info.sha256) == (20 * 1024 * 1024, digest)
        target = artifacts.download_artifacts(run.run_id, "data/big.bin", tmp_path / "back")
        assert _sha(target.read_bytes()) == digest

        # The artifact limit, not the 1 MiB JSON limit, applied to that upload; a JSON
        # body streamed with no Content-Length is cut off at 1 MiB with a 413.
        def chunks() -> Any:
            for _ in range(4):
                yield b" " * (512 * 1024)

        response = http.client.post(
            http.url("/experiments"), content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
