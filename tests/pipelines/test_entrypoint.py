"""``python -m shipyard.pipelines.entrypoint``: one task with its values on the command line
(KFP placeholders), and tasks sharing a run folder (Airflow)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipyard.pipelines import (
    Collected,
    Dataset,
    Model,
    Outputs,
    ParallelFor,
    pipeline,
    step,
    when,
)
from shipyard.pipelines.entrypoint import decode_parameter, encode_parameter, main
from shipyard.pipelines.serialization import load_path

REF = f"{__file__}:flow"


@step
def make_rows(n: int, label: str, flags: dict) -> Dataset:
    return [{"i": i, "label": label, **flags} for i in range(n)]  # type: ignore[return-value]


@step
def fit(rows: Dataset, scale: float, enabled: bool) -> Outputs(model=Model, size=int, tags=list):
    data = load_path(rows.path)
    return {"scale": scale, "rows": len(data)}, len(data) if enabled else 0, ["a", "b"]


@step
def sleepy(seconds: float) -> None:
    time.sleep(seconds)


@step
def double(x: int) -> int:
    return 2 * x


@step
def add_up(values: list[int]) -> int:
    return sum(values)


@pipeline
def flow(n: int = 3, xs: list = [1, 2, 3]):  # noqa: B006
    rows = make_rows(n=n, label="x", flags={"f": True})
    fitted = fit(rows=rows.output, scale=0.5, enabled=True)
    with ParallelFor(xs) as x:
        doubled = double(x=x)
    summed = add_up(values=Collected(doubled.output))
    with when(fitted.outputs["size"] >= 3):
        sleepy(seconds=0.0)
    with when(summed.output > 100):
        double(x=summed.output)


def test_decode_and_encode_follow_kfp_text_forms() -> None:
    assert decode_parameter("hello world", "str") == "hello world"
    assert decode_parameter("3", "int") == 3
    assert decode_parameter("0.5", "float") == 0.5
    assert decode_parameter("true", "bool") is True
    assert decode_parameter("False", "bool") is False
    assert decode_parameter('{"a": [1]}', "dict") == {"a": [1]}
    assert decode_parameter("[1, 2]", "list[int]") == [1, 2]
    assert encode_parameter("plain", "str") == "plain"
    assert encode_parameter(True, "bool") == "true"
    assert encode_parameter([1, 2], "list") == "[1, 2]"


def test_run_takes_values_and_paths_like_kfp_placeholders(tmp_path: Path) -> None:
    rows = tmp_path / "in" / "rows"
    code = main(
        [
            "run", "--pipeline", REF, "--task", "make-rows",
            "--param", "n=4", "--param", "label=a=b", "--param", 'flags={"f": false}',
            "--output", f"output={rows}",
        ]
    )  # fmt: skip
    assert code == 0
    assert load_path(rows)[1] == {"i": 1, "label": "a=b", "f": False}
    model, size, tags = tmp_path / "out" / "model", tmp_path / "out" / "size", tmp_path / "tags"
    code = main(
        [
            "run", "--pipeline", REF, "--task", "fit",
            "--input", f"rows={rows}", "--param", "scale=2", "--param", "enabled=true",
            "--output", f"model={model}",
            "--output-param", f"size={size}", "--output-param", f"tags={tags}",
        ]
    )  # fmt: skip
    assert code == 0
    assert load_path(model) == {"scale": 2.0, "rows": 4}
    assert size.read_text() == "4"
    assert json.loads(tags.read_text()) == ["a", "b"]


def test_bad_input_exits_with_the_error_code_and_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--pipeline", REF, "--task", "fit", "--param", "nope=1"])
    assert code == 2
    assert "Step 'fit' has no input 'nope'" in capsys.readouterr().err
    assert main(["run", "--pipeline", "no_such_module_xyz:flow", "--task", "fit"]) == 2
    assert "Cannot import 'no_such_module_xyz'" in capsys.readouterr().err


def test_module_entrypoint_enforces_the_timeout(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "shipyard.pipelines.entrypoint", "run",
            "--pipeline", REF, "--task", "sleepy", "--param", "seconds=30", "--timeout", "0.5",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "ran longer than its timeout of 0.5 s" in done.stderr


def test_run_folder_tasks_pass_outputs_loops_and_conditions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["--pipeline", REF, "--run-dir", str(tmp_path / "run")]
    assert main(["init", *run, "--params", '{"n": 5}', "--run-id", "r1"]) == 0
    assert json.loads((tmp_path / "run" / "run.json").read_text())["params"] == {
        "n": 5,
        "xs": [1, 2, 3],
    }
    assert main(["task", *run, "--task", "make-rows"]) == 0
    assert main(["task", *run, "--task", "fit"]) == 0
    capsys.readouterr()
    assert main(["items", *run, "--loop", "for-loop-1"]) == 0
    assert capsys.readouterr().out.strip() == "3"
    for i in range(3):
        assert main(["task", *run, "--task", "double", "--iteration", str(i)]) == 0
    assert main(["task", *run, "--task", "add-up"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"output": 12}
    assert main(["condition", *run, "--group", "condition-2"]) == 0
    assert capsys.readouterr().out.strip() == "true"
    assert main(["condition", *run, "--group", "condition-3"]) == 0
    assert capsys.readouterr().out.strip() == "false"
    assert main(["task", *run, "--task", "double", "--iteration", "7"]) == 2
    assert "has 3 items; there is no iteration 7" in capsys.readouterr().err
