"""Where a run's files live in the artifact store, and reading a step's captured logs.

Layout under the artifact root, per workspace::

    pipelines/<workspace>/cas/<ab>/<sha256>                    outputs, content-addressed
    pipelines/<workspace>/runs/<run_id>/<step>/attempt-<n>/
        log.txt        the attempt's stdout and stderr, interleaved as written
        result.json    parameter outputs, artifact digests or the error
        out/<name>     where the step writes an output before it moves into cas/
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from shipyard.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.store.artifacts import ArtifactStore

__all__ = ["attempt_prefix", "cas_prefix", "is_local", "local_root", "read_step_logs"]


def is_local(artifacts_url: str) -> bool:
    """Whether the artifact root is a folder on this machine (file:// or a plain path)."""
    return "://" not in artifacts_url or urlsplit(artifacts_url).scheme in ("file", "local")


def local_root(artifacts_url: str) -> Path:
    """The local folder of a file:// artifact root.

    Raises:
        ConfigError: the root is not on the local file system.
    """
    if "://" not in artifacts_url:
        return Path(artifacts_url).expanduser().absolute()
    parts = urlsplit(artifacts_url)
    if parts.scheme not in ("file", "local"):
        raise ConfigError(
            f"The local pipeline executor needs a file:// artifact root, not "
            f"{parts.scheme}:// ({artifacts_url.split('@')[-1]}).",
            hint="Run pipelines on object storage through the KFP or Airflow compilers, or set "
            "SHIPYARD_ARTIFACTS to a local folder.",
        )
    return Path(url2pathname(unquote(parts.path)))


def cas_prefix(workspace: str) -> str:
    return f"pipelines/{workspace}/cas"


def attempt_prefix(workspace: str, run_id: str, step_key: str, attempt: int) -> str:
    return f"pipelines/{workspace}/runs/{run_id}/{step_key}/attempt-{attempt}"


def read_step_logs(
    root: Path | None,
    workspace: str,
    run_id: str,
    step_key: str,
    store: ArtifactStore | None = None,
) -> list[tuple[int, str]]:
    """Every attempt's log of a step run, oldest first, as (attempt, text): from the local
    artifact root, or from ``store`` when the root is remote."""
    prefix = f"pipelines/{workspace}/runs/{run_id}/{step_key}"
    found = []
    if store is not None:
        for info in store.list(prefix, recursive=True):
            parts = info.path[len(prefix) :].strip("/").split("/")
            number = parts[0].removeprefix("attempt-")
            if len(parts) == 2 and parts[1] == "log.txt" and number.isdigit():
                found.append((int(number), store.read_bytes(info.path).decode(errors="replace")))
        return sorted(found)
    assert root is not None
    for attempt_dir in (root / prefix).glob("attempt-*"):
        log = attempt_dir / "log.txt"
        number = attempt_dir.name.removeprefix("attempt-")
        if log.exists() and number.isdigit():
            found.append((int(number), log.read_text(errors="replace")))
    return sorted(found)
