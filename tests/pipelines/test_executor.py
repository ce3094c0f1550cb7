"""The local executor: order, isolation, retries, timeouts, conditions, exit handlers,
fan-out/fan-in, placeholders, artifacts handed over in place, and tracking."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from shipyard.config import Settings
from shipyard.pipelines import (
    RUN_ID,
    SCHEDULED_TIME,
    Collected,
    Dataset,
    ExitHandler,
    Metrics,
    Outputs,
    ParallelFor,
    pipeline,
    step,
    when,
)
from shipyard.pipelines.executor import cancel, get_run, list_runs, run_pipeline


def _mark(folder: str, name: str) -> int:
    """Append a line to folder/name and return how many lines it has: a run counter."""
    path = Path(folder) / name
    with open(path, "a") as out:
        out.write("x\n")
    return len(path.read_text().splitlines())


@pytest.fixture
def settings(tmp_path: Path, db_url: str, artifacts_url: str) -> Settings:
    return Settings(home=tmp_path / "home", db=db_url, artifacts=artifacts_url)


@pytest.fixture
def sqlite_settings(tmp_path: Path, fresh_sqlite_url: str, artifacts_url: str) -> Settings:
    return Settings(home=tmp_path / "home", db=fresh_sqlite_url, artifacts=artifacts_url)


@step
def add(x: int) -> int:
    return x + 1


@pipeline
def chain(start: int = 0):
    a = add(x=start)
    b = add(x=a.output)
    add(x=b.output)


def test_chain_runs_in_order_and_passes_outputs(settings: Settings, workspace: str) -> None:
    run = run_pipeline(chain, {"start": 5}, settings=settings, workspace=workspace)
    assert run.status == "succeeded", run.error
    assert [s.key for s in run.steps] == ["add", "add-2", "add-3"]
    assert run.outputs("add-3") == {"output": 8}
    assert all(s.duration_ms is not None for s in run.steps)
    again = get_run(run.run_id, settings=settings, workspace=workspace)
    assert again.params == {"start": 5}
    assert [r.run_id for r in list_runs(settings=settings, workspace=workspace)] == [run.run_id]


@step
def flaky(marks: str) -> str:
    if _mark(marks, "flaky") < 3:
        raise RuntimeError("not yet")
    return "ok"


@pipeline
def flaky_pipeline(marks: str):
    flaky(marks=marks).retries(2, backoff=0.05)


def test_a_step_failing_twice_succeeds_on_its_third_attempt(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    started = time.monotonic()
    run = run_pipeline(flaky_pipeline, {"marks": str(tmp_path)}, settings=sqlite_settings)
    assert run.status == "succeeded", run.error
    assert run.step("flaky").attempts == 3
    assert (tmp_path / "flaky").read_text().count("x") == 3
    assert time.monotonic() - started >= 0.05 + 0.1  # backoff 0.05 then 0.1


@step
def sleepy(seconds: float) -> None:
    time.sleep(seconds)


@pipeline
def timeout_pipeline():
    sleepy(seconds=30.0).timeout(0.5)


def test_a_step_over_its_timeout_is_killed(sqlite_settings: Settings) -> None:
    started = time.monotonic()
    run = run_pipeline(timeout_pipeline, settings=sqlite_settings)
    assert time.monotonic() - started < 10
    assert run.status == "failed"
    assert "timed out after 0.5s" in run.step("sleepy").error


@step
def crash(how: str) -> int:
    if how == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGSEGV)
    return 0


@step
def fine() -> int:
    return 1


@pipeline
def crash_pipeline(how: str):
    crash(how=how)
    fine()


@pytest.mark.parametrize(("how", "message"), [("exit", "exited (3)"), ("segv", "SIGSEGV")])
def test_a_crashing_step_fails_alone(sqlite_settings: Settings, how: str, message: str) -> None:
    run = run_pipeline(crash_pipeline, {"how": how}, settings=sqlite_settings)
    assert run.status == "failed"
    assert message in run.step("crash").error
    assert run.step("fine").state == "succeeded"
    assert "Step 'crash' failed" in run.error


@step
def score(value: float) -> float:
    return value


@step
def deploy(marks: str, version: str) -> None:
    _mark(marks, f"deploy-{version}")


@pipeline
def gated(value: float, marks: str, threshold: float = 0.8):
    s = score(value=value)
    with when(s.output > threshold):
        deploy(marks=marks, version=RUN_ID)


@pytest.mark.parametrize(("value", "deployed"), [(0.9, True), (0.5, False)])
def test_condition_skips_its_block_when_false(
    sqlite_settings: Settings, tmp_path: Path, value: float, deployed: bool
) -> None:
    run = run_pipeline(gated, {"value": value, "marks": str(tmp_path)}, settings=sqlite_settings)
    assert run.status == "succeeded"
    assert run.step("deploy").state == ("succeeded" if deployed else "skipped")
    assert (tmp_path / f"deploy-{run.run_id}").exists() is deployed


@step
def boom() -> int:
    raise ValueError("bad data")


@step
def after_boom(x: int) -> None:
    pass


@step
def cleanup(marks: str) -> None:
    _mark(marks, "cleanup")


@pipeline
def with_exit(marks: str):
    with ExitHandler(cleanup(marks=marks)):
        after_boom(x=boom().output)


def test_exit_handler_runs_after_a_failure(sqlite_settings: Settings, tmp_path: Path) -> None:
    run = run_pipeline(with_exit, {"marks": str(tmp_path)}, settings=sqlite_settings)
    assert run.status == "failed"
    assert run.step("boom").state == "failed"
    assert "ValueError: bad data" in run.step("boom").error
    assert run.step("after-boom").state == "upstream_failed"
    assert run.step("cleanup").state == "succeeded"
    assert (tmp_path / "cleanup").exists()


@step
def numbers(n: int) -> list:
    return list(range(n))


@step
def total(xs: list) -> int:
    return sum(xs)


@pipeline
def fan(n: int = 20):
    items = numbers(n=n)
    with ParallelFor(items.output, parallelism=4) as item:
        plus = add(x=item)
    total(xs=Collected(plus.output))


def test_parallel_for_fans_out_and_collected_fans_in(sqlite_settings: Settings) -> None:
    run = run_pipeline(fan, settings=sqlite_settings, max_workers=4)
    assert run.status == "succeeded", run.error
    assert run.outputs("total") == {"output": sum(range(1, 21))}
    assert sorted(s.key for s in run.steps if s.task == "add") == sorted(
        f"add[{i}]" for i in range(20)
    )


@step
def when_and_where(run_id: str, scheduled: str) -> Outputs(run_id=str, scheduled=str):
    return run_id, scheduled


@pipeline
def placeholders():
    when_and_where(run_id=RUN_ID, scheduled=SCHEDULED_TIME)


def test_placeholders_are_filled_per_run(sqlite_settings: Settings) -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    run = run_pipeline(placeholders, settings=sqlite_settings, scheduled_time=at)
    assert run.outputs("when-and-where") == {"run_id": run.run_id, "scheduled": at.isoformat()}


@step
def big_array(mib: int) -> Dataset:
    return np.ones(mib * 1024 * 1024 // 8)


@step
def sum_array(data: Dataset) -> Outputs(total=float, path=str):
    return float(data.load().sum()), data.path


@pipeline
def handoff(mib: int = 8):
    sum_array(data=big_array(mib=mib).output)


def test_artifacts_are_handed_over_in_place(sqlite_settings: Settings) -> None:
    run = run_pipeline(handoff, settings=sqlite_settings)
    assert run.status == "succeeded", run.error
    produced = run.step("big-array").outputs["artifacts"]["output"]
    assert run.outputs("sum-array")["total"] == 8 * 1024 * 1024 / 8
    root = Path(sqlite_settings.artifacts.removeprefix("file://"))
    # the consumer read the content-addressed file itself: no copy was made for it
    assert run.outputs("sum-array")["path"] == str(root / produced["key"])
    assert produced["key"].endswith(produced["digest"])


@step
def evaluate(x: int) -> Outputs(metrics=Metrics, accuracy=float):
    return {"accuracy": 0.75, "loss": 0.5}, 0.75


@pipeline
def tracked():
    evaluate(x=add(x=1).output)


def test_each_step_is_a_nested_tracking_run(sqlite_settings: Settings) -> None:
    from shipyard.client import Client

    run = run_pipeline(tracked, settings=sqlite_settings)
    client = Client(sqlite_settings)
    parent = client.get_run(run.run_id)
    assert parent.data.tags["shipyard.pipeline"] == "tracked"
    nested = client.get_run(run.step("evaluate").tracking_run_id)
    assert nested.info.parent_run_id == run.run_id
    assert nested.data.metrics["accuracy"] == 0.75
    assert nested.data.metrics["loss"] == 0.5
    paths = {a.path for a in client.list_artifacts(nested.info.run_id, "outputs")}
    assert paths == {"outputs/metrics"}


@step
def wait_for(marks: str) -> None:
    _mark(marks, "started")
    time.sleep(30)


@pipeline
def cancellable(marks: str):
    with ExitHandler(cleanup(marks=marks)):
        wait_for(marks=marks)


def test_cancel_stops_running_steps_and_runs_the_exit_handler(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    run = run_pipeline(cancellable, {"marks": str(tmp_path)}, settings=sqlite_settings, wait=False)
    deadline = time.monotonic() + 20
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    cancel(run.run_id, settings=sqlite_settings)
    while get_run(run.run_id, settings=sqlite_settings).status == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    done = get_run(run.run_id, settings=sqlite_settings)
    assert done.status == "cancelled"
    assert done.step("wait-for").state == "cancelled"
    assert done.step("cleanup").state == "succeeded"


@step
def span(marks: str, name: str) -> None:
    start = time.time()
    time.sleep(0.4)
    with open(Path(marks) / "spans", "a") as out:
        out.write(f"{name} {start} {time.time()}\n")


@pipeline
def independent(marks: str):
    for name in ("a", "b", "c"):
        span(marks=marks, name=name)


def _max_overlap(marks: Path) -> int:
    spans = [
        tuple(map(float, line.split()[1:])) for line in (marks / "spans").read_text().splitlines()
    ]
    return max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)


@pytest.mark.parametrize("workers", [1, 3])
def test_independent_steps_run_in_parallel_up_to_max_workers(
    sqlite_settings: Settings, tmp_path: Path, workers: int
) -> None:
    run = run_pipeline(
        independent, {"marks": str(tmp_path)}, settings=sqlite_settings, max_workers=workers
    )
    assert run.status == "succeeded"
    overlap = _max_overlap(tmp_path)
    assert overlap == 1 if workers == 1 else overlap >= 2


def test_raise_for_status_names_the_step_and_the_resume_command(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    from shipyard.errors import StepFailedError

    run = run_pipeline(with_exit, {"marks": str(tmp_path)}, settings=sqlite_settings)
    with pytest.raises(StepFailedError, match="Step 'boom' failed: ValueError: bad data") as info:
        run.raise_for_status()
    assert f"shipyard pipelines resume {run.run_id}" in str(info.value)


@step
def kill_worker(marks: str) -> str:
    if _mark(marks, "kill-worker") == 1:
        os.kill(os.getppid(), signal.SIGKILL)  # the warm worker that forked this step
        time.sleep(30)
    return "survived"


@pipeline
def worker_killer(marks: str):
    kill_worker(marks=marks).retries(1)


def test_a_dead_worker_is_replaced_and_the_step_retried(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    run = run_pipeline(worker_killer, {"marks": str(tmp_path)}, settings=sqlite_settings)
    assert run.status == "succeeded", run.error
    assert run.step("kill-worker").attempts == 2
    assert run.outputs("kill-worker") == {"output": "survived"}
