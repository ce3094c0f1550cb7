"""Virtualenvs holding the real orchestrators (KFP SDK, Airflow) that check compiled output.

Each tool pins dependencies that clash with Shipyard's, so it gets its own virtualenv under
``~/.cache/shipyard-dev/<tool>-<version>``, made on first use and reused afterwards (a
``.ok`` marker is written only after a complete install).
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from shipyard.errors import BackendError

__all__ = ["AIRFLOW_VERSION", "CACHE", "KFP_VERSION", "airflow_python", "kfp_python", "tool_python"]

logger = logging.getLogger(__name__)

#: Where the tool virtualenvs live (outside any clone, shared by test runs).
CACHE = Path.home() / ".cache" / "shipyard-dev"
KFP_VERSION = "2.17.3"
AIRFLOW_VERSION = "3.3.2"


def tool_python(tool: str, version: str, packages: Sequence[str], timeout: float = 900) -> Path:
    """The interpreter of ``<tool>-<version>``'s virtualenv, created (with ``packages``)
    when missing. A lock file keeps two processes from building the same one at once.

    Raises:
        BackendError: pip could not install the packages; the message has pip's errors.
    """
    venv = CACHE / f"{tool}-{version}"
    python = venv / "bin" / "python"
    if (venv / ".ok").exists():
        return python
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{tool}-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".ok").exists():
            return python
        started = time.monotonic()
        logger.info("creating %s with %s", venv, " ".join(packages))
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
            raise BackendError(
                f"Could not install {' '.join(packages)} into {venv}: "
                f"{'; '.join(errors)[-600:] or done.stderr[-600:]}",
                hint="Check that PyPI is reachable; the next call retries from scratch.",
            )
        seconds = time.monotonic() - started
        (venv / ".ok").write_text(f"{version}\n{seconds:.0f}s\n")
        logger.info("created %s in %.0f s", venv, seconds)
    return python


def kfp_python() -> Path:
    """Python of the KFP SDK virtualenv (kfp and kfp-kubernetes, for their protos)."""
    return tool_python(
        "kfp", KFP_VERSION, [f"kfp=={KFP_VERSION}", f"kfp-kubernetes=={KFP_VERSION}"]
    )


def airflow_python() -> Path:
    """Python of the Airflow virtualenv (apache-airflow, SQLite metadata)."""
    return tool_python("airflow", AIRFLOW_VERSION, [f"apache-airflow=={AIRFLOW_VERSION}"])
