"""ArtifactStore: keys never escape the root, big files stream, writes are all-or-nothing."""

from __future__ import annotations

import hashlib
import os
import posixpath
import sys
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.errors import (
    ArtifactNotFoundError,
    ConfigError,
    IntegrityError,
    InvalidArgumentError,
)
from shipyard.store.artifacts import CHUNK_SIZE, TMP_PREFIX, ArtifactStore, safe_key

MiB = 1024 * 1024


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, artifacts_url: str) -> Iterator[ArtifactStore]:
    """A store on a local folder, and one on fsspec's in-memory filesystem (a remote stand-in)."""
    if request.param == "file":
        yield ArtifactStore(artifacts_url)
        return
    root = f"memory://bucket-{uuid.uuid4().hex[:8]}/artifacts"
    memory = ArtifactStore(root)
    yield memory
    if memory._fs.exists(memory._root):
        memory._fs.rm(memory._root, recursive=True)


@pytest.fixture
def local(artifacts_url: str) -> ArtifactStore:
    return ArtifactStore(artifacts_url)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("../x", "escapes the artifact root"),
        ("a/../../x", "escapes the artifact root"),
        ("a/..", "escapes the artifact root"),
        ("/etc/passwd", "is absolute"),
        ("C:/Windows", "drive letter"),
        ("c:x", "drive letter"),
        ("a\\b", "backslash"),
        ("..\\x", "backslash"),
        ("a/\x00b", "NUL byte"),
        ("", "is empty"),
        ("./", "is empty"),
        ("//", "is absolute"),
    ],
)
def test_safe_key_rejects_unsafe_keys(key: str, why: str) -> None:
    with pytest.raises(InvalidArgumentError, match=why):
        safe_key(key)


def test_safe_key_message_names_the_key_and_the_fix() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        safe_key("../x")
    assert err.value.message == "Artifact key '../x' escapes the artifact root"
    assert "relative" in (err.value.hint or "")


@pytest.mark.parametrize(
    ("key", "normal"),
    [("a/b.txt", "a/b.txt"), ("a//./b/", "a/b"), ("./model.pkl", "model.pkl"), ("x..y", "x..y")],
)
def test_safe_key_normalizes_ordinary_keys(key: str, normal: str) -> None:
    assert safe_key(key) == normal


_ROOT = "/srv/root"


@given(st.text(alphabet=["a", "b", ".", "/", "\\", ":", "C", "\x00", " "], max_size=14))
def test_safe_key_never_accepts_a_key_that_resolves_outside_the_root(key: str) -> None:
    try:
        normal = safe_key(key)
    except InvalidArgumentError:
        return
    for candidate in (key, normal):
        resolved = posixpath.normpath(posixpath.join(_ROOT, candidate))
        assert resolved.startswith(_ROOT + "/"), (key, resolved)
    assert "\\" not in normal and "\x00" not in normal


_SEGMENT = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,11}", fullmatch=True)


@given(st.lists(_SEGMENT, min_size=1, max_size=6))
def test_safe_key_always_accepts_ordinary_relative_keys(segments: list[str]) -> None:
    key = "/".join(segments)
    assert safe_key(key) == key


def test_a_symlink_leading_outside_the_root_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("s")
    (root / "escape").symlink_to(outside)
    (root / "inner").symlink_to(root / ".")
    store = ArtifactStore(root.as_uri())

    with pytest.raises(InvalidArgumentError, match="escapes the artifact root through a symlink"):
        store.read_bytes("escape/secret")
    with pytest.raises(InvalidArgumentError, match="through a symlink"):
        store.put_bytes(b"x", "escape/planted")
    assert not (outside / "planted").exists()
    assert [i.path for i in store.list()] == ["inner"]  # the escaping link is not listed
    store.put_bytes(b"ok", "inner/file")  # a link that stays inside is fine
    assert store.read_bytes("file") == b"ok"


# -- round trips (local and remote) -------------------------------------------------------


def test_put_and_read_back(store: ArtifactStore) -> None:
    info = store.put_bytes(b"hello", "a/b.txt")
    assert (info.path, info.size, info.sha256) == ("a/b.txt", 5, _sha(b"hello"))
    assert store.read_bytes("a/b.txt") == b"hello"
    with store.open("a/b.txt") as src:
        assert src.read() == b"hello"
    assert store.info("a/b.txt") == info
    assert store.exists("a/b.txt") and store.exists("a") and not store.exists("nope")


def test_put_overwrites_atomically(store: ArtifactStore) -> None:
    store.put_bytes(b"one", "k")
    store.put_bytes(b"two!", "k")
    assert store.read_bytes("k") == b"two!"


def test_list_shows_folders_and_recursive_lists_files(store: ArtifactStore) -> None:
    store.put_bytes(b"1", "run/model/model.pkl")
    store.put_bytes(b"22", "run/model/sub/x.json")
    store.put_bytes(b"333", "run/metrics.csv")

    top = store.list("run")
    assert [(i.path, i.is_dir) for i in top] == [("run/metrics.csv", False), ("run/model", True)]
    deep = store.list("run", recursive=True)
    assert [(i.path, i.size) for i in deep] == [
        ("run/metrics.csv", 3),
        ("run/model/model.pkl", 1),
        ("run/model/sub/x.json", 2),
    ]
    assert [i.path for i in store.list()] == ["run"]
    assert store.list("nothing/here") == []


def test_put_dir_and_get_dir_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"a")
    (src / "sub" / "b.bin").write_bytes(os.urandom(1000))

    infos = store.put_dir(src, "models/m1")
    assert [i.path for i in infos] == ["models/m1/a.txt", "models/m1/sub/b.bin"]
    assert infos[1].sha256 == _sha((src / "sub" / "b.bin").read_bytes())

    out = store.get_dir("models/m1", tmp_path / "out")
    assert (out / "a.txt").read_bytes() == b"a"
    assert (out / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()


def test_get_file_into_a_folder_and_verified(store: ArtifactStore, tmp_path: Path) -> None:
    info = store.put_bytes(b"payload", "x/model.pkl")
    path = store.get_file("x/model.pkl", tmp_path, expected_sha256=info.sha256)
    assert path == tmp_path / "model.pkl" and path.read_bytes() == b"payload"


def test_delete_a_file_and_a_folder(store: ArtifactStore) -> None:
    store.put_bytes(b"1", "d/a")
    store.put_bytes(b"2", "d/e/b")
    store.delete("d/a")
    assert not store.exists("d/a") and store.exists("d/e/b")
    store.delete("d")
    assert not store.exists("d")
    store.delete("d", missing_ok=True)


@pytest.mark.parametrize(
    "call",
    [
        lambda s, tmp: s.read_bytes("nope/x.bin"),
        lambda s, tmp: s.open("nope/x.bin"),
        lambda s, tmp: s.get_file("nope/x.bin", tmp / "x"),
        lambda s, tmp: s.info("nope/x.bin"),
        lambda s, tmp: s.delete("nope/x.bin"),
        lambda s, tmp: s.get_dir("nope/x.bin", tmp / "d"),
    ],
)
def test_missing_key_raises_not_found_naming_it(
    store: ArtifactStore,
    tmp_path: Path,
    call,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(ArtifactNotFoundError, match=r"Artifact 'nope/x\.bin' does not exist"):
        call(store, tmp_path)
    assert not (tmp_path / "x").exists()


def test_reading_a_folder_says_it_is_a_folder(local: ArtifactStore, tmp_path: Path) -> None:
    local.put_bytes(b"1", "dir/file")
    with pytest.raises(InvalidArgumentError, match="'dir' is a folder"):
        local.read_bytes("dir")
    with pytest.raises(InvalidArgumentError, match="'dir/file' is a file, not a folder"):
        local.get_dir("dir/file", tmp_path / "out")


def test_url_for_and_from_url_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "with space"
    store = ArtifactStore(root.as_uri())
    store.put_bytes(b"m", "run 1/model/model.pkl")

    url = store.url_for("run 1/model")
    assert url == (root / "run 1" / "model").as_uri()
    parent, key = ArtifactStore.from_url(url)
    assert key == "model"
    assert parent.read_bytes("model/model.pkl") == b"m"


def test_from_url_on_an_object_store_keeps_the_bucket() -> None:
    store, key = ArtifactStore.from_url("memory://bucket/runs/abc/artifacts/model")
    assert (store.root_url, key) == ("memory://bucket/runs/abc/artifacts", "model")
    with pytest.raises(InvalidArgumentError, match="names no file or folder"):
        ArtifactStore.from_url("memory://")


def test_repr_masks_credentials() -> None:
    store = ArtifactStore("memory://alice:s3cr3t@bucket/prefix")
    assert repr(store) == "ArtifactStore('memory://alice:***@bucket/prefix')"
    assert "s3cr3t" not in repr(store)


def test_a_plain_path_means_file(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "plain"))
    store.put_bytes(b"1", "k")
    assert store.root_url == (tmp_path / "plain").as_uri()
    assert (tmp_path / "plain" / "k").read_bytes() == b"1"


# -- drivers ------------------------------------------------------------------------------


def test_missing_s3_driver_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec

    if "s3" in fsspec.registry:
        pytest.skip("s3fs already imported in this process")
    monkeypatch.setitem(sys.modules, "s3fs", None)
    with pytest.raises(ConfigError, match=r'pip install "shipyard\[s3\]"'):
        ArtifactStore("s3://bucket/prefix")


def test_unknown_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Protocol not known: nosuchfs"):
        ArtifactStore("nosuchfs://x")


# -- large files, integrity and crashes (file://) -----------------------------------------


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    digest = hashlib.sha256()
    block = os.urandom(MiB)
    with open(path, "wb") as out:
        for i in range(50):
            chunk = block[i:] + block[:i]
            digest.update(chunk)
            out.write(chunk)
    return path, digest.hexdigest()


def test_50_mib_streams_through_with_sha256(
    local: ArtifactStore, tmp_path: Path, big_file: tuple[Path, str]
) -> None:
    path, sha = big_file
    tracemalloc.start()
    try:
        info = local.put_file(path, "big/blob.bin")
        _, peak_put = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        out = local.get_file("big/blob.bin", tmp_path / "dl.bin", expected_sha256=sha)
        _, peak_get = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (info.size, info.sha256) == (50 * MiB, sha)
    assert out.stat().st_size == 50 * MiB
    # Streaming holds a few chunks at most, never the 50 MiB file.
    assert peak_put < 8 * CHUNK_SIZE and peak_get < 8 * CHUNK_SIZE, (peak_put, peak_get)


def test_a_corrupted_file_fails_the_download_and_leaves_nothing(
    local: ArtifactStore, tmp_path: Path, big_file: tuple[Path, str]
) -> None:
    path, sha = big_file
    local.put_file(path, "big/blob.bin")
    stored = Path(local._root) / "big" / "blob.bin"
    with open(stored, "r+b") as f:
        f.seek(25 * MiB)
        byte = f.read(1)
        f.seek(25 * MiB)
        f.write(bytes([byte[0] ^ 0xFF]))

    downloads = tmp_path / "downloads"
    with pytest.raises(IntegrityError, match=f"Artifact 'big/blob.bin' is corrupted.*{sha}"):
        local.get_file("big/blob.bin", downloads / "dl.bin", expected_sha256=sha)
    assert list(downloads.iterdir()) == [], "no partial download may remain"
    assert local.info("big/blob.bin").sha256 != sha


class _Exploding:
    """A stream that fails after two chunks, like a dropped upload."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, n: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise ConnectionError("client went away")
        return b"x" * CHUNK_SIZE


def test_a_failed_stream_never_leaves_a_partial_artifact(local: ArtifactStore) -> None:
    local.put_bytes(b"previous", "model/model.pkl")
    with pytest.raises(ConnectionError):
        local.put_stream(_Exploding(), "model/model.pkl")  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        local.put_stream(_Exploding(), "model/new.pkl")  # type: ignore[arg-type]

    assert local.read_bytes("model/model.pkl") == b"previous"
    assert not local.exists("model/new.pkl")
    leftovers = [p.name for p in (Path(local._root) / "model").iterdir()]
    assert leftovers == ["model.pkl"], leftovers
    assert not any(p.startswith(TMP_PREFIX) for p in leftovers)


def test_in_flight_files_are_not_listed(local: ArtifactStore) -> None:
    local.put_bytes(b"1", "d/real")
    (Path(local._root) / "d" / f"{TMP_PREFIX}abc").write_bytes(b"partial")
    assert [i.path for i in local.list("d")] == ["d/real"]
    assert [i.path for i in local.list("d", recursive=True)] == ["d/real"]
