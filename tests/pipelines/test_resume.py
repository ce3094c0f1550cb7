"""Resume after ``kill -9`` of the executor: steps that finished are not run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from shipyard.config import Settings
from shipyard.pipelines import pipeline, step
from shipyard.pipelines.executor import get_run, resume, run_pipeline
from shipyard.pipelines.state import PipelineRunNotFoundError


def _mark(folder: str, name: str) -> None:
    with open(Path(folder) / name, "a") as out:
        out.write("x\n")


@step
def fast(marks: str, name: str) -> str:
    _mark(marks, name)
    return name


@step
def slow(marks: str, after: str) -> str:
    _mark(marks, "slow")
    while not (Path(marks) / "go").exists():
        time.sleep(0.05)
    return "slow done"


@step
def last(marks: str, x: str) -> None:
    _mark(marks, "last")


@pipeline
def resumable(marks: str):
    a = fast(marks=marks, name="one")
    b = fast(marks=marks, name="two").after(a)
    s = slow(marks=marks, after=b.output)
    last(marks=marks, x=s.output)


def _count(folder: Path, name: str) -> int:
    path = folder / name
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_resume_after_kill_9_reruns_nothing_that_finished(
    tmp_path: Path, db_url: str, workspace: str, artifacts_url: str
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    settings = Settings(home=tmp_path / "home", db=db_url, artifacts=artifacts_url)
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = {[str(Path(__file__).parent)]!r}
        from shipyard.config import Settings
        from shipyard.pipelines.executor import run_pipeline
        import test_resume
        settings = Settings(home={str(tmp_path / "home")!r}, db={db_url!r},
                            artifacts={artifacts_url!r})
        run_pipeline(test_resume.resumable, {{"marks": {str(marks)!r}}}, settings=settings,
                     workspace={workspace!r})
        """
    )
    executor = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while _count(marks, "slow") == 0:
            assert time.monotonic() < deadline, "the slow step never started"
            assert executor.poll() is None, "the executor exited early"
            time.sleep(0.02)
        os.kill(executor.pid, signal.SIGKILL)
        executor.wait()
    finally:
        if executor.poll() is None:
            executor.kill()
            executor.wait()
    from shipyard.pipelines.executor import list_runs

    (killed,) = list_runs(settings=settings, workspace=workspace)
    assert killed.status == "running"
    states = {
        s.key: s.state for s in get_run(killed.run_id, settings=settings, workspace=workspace).steps
    }
    assert states["fast"] == states["fast-2"] == "succeeded"
    assert states["slow"] == "running"

    (marks / "go").touch()
    done = resume(killed.run_id, settings=settings, workspace=workspace)
    assert done.status == "succeeded", done.error
    assert done.run_id == killed.run_id
    assert (_count(marks, "one"), _count(marks, "two")) == (1, 1)
    assert _count(marks, "slow") == 2  # the killed attempt, then the resumed one
    assert done.step("slow").attempts == 2  # numbered on, so the killed attempt's log stays
    assert _count(marks, "last") == 1


def test_resume_of_a_failed_run_reruns_the_failed_steps(
    tmp_path: Path, fresh_sqlite_url: str, artifacts_url: str
) -> None:
    settings = Settings(home=tmp_path / "home", db=fresh_sqlite_url, artifacts=artifacts_url)
    marks = tmp_path
    (marks / "go").touch()
    first = run_pipeline(resumable, {"marks": str(marks)}, settings=settings)
    assert first.status == "succeeded"
    again = resume(first.run_id, settings=settings)
    assert again.status == "succeeded"
    assert _count(marks, "slow") == 1  # nothing to do: every step had finished


def test_resume_of_an_unknown_run_says_so(tmp_path: Path, fresh_sqlite_url: str) -> None:
    settings = Settings(home=tmp_path / "home", db=fresh_sqlite_url)
    with pytest.raises(PipelineRunNotFoundError, match="Pipeline run 'nope' does not exist"):
        resume("nope", settings=settings)


@step
def needs_fix(marks: str, x: str) -> str:
    _mark(marks, "needs-fix")
    if not (Path(marks) / "fixed").exists():
        raise RuntimeError("broken until fixed")
    return "fixed"


@pipeline
def fixable(marks: str):
    first = fast(marks=marks, name="upstream")
    last(marks=marks, x=needs_fix(marks=marks, x=first.output).output)


def test_resume_of_a_failed_run_reruns_only_what_did_not_finish(
    tmp_path: Path, fresh_sqlite_url: str, artifacts_url: str
) -> None:
    settings = Settings(home=tmp_path / "home", db=fresh_sqlite_url, artifacts=artifacts_url)
    failed = run_pipeline(fixable, {"marks": str(tmp_path)}, settings=settings)
    assert failed.status == "failed"
    assert failed.step("last").state == "upstream_failed"
    (tmp_path / "fixed").touch()
    done = resume(failed.run_id, settings=settings)
    assert done.status == "succeeded", done.error
    assert _count(tmp_path, "upstream") == 1
    assert _count(tmp_path, "needs-fix") == 2
    assert _count(tmp_path, "last") == 1
