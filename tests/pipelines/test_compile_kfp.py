"""The KFP v2 IR compiler: what each pipeline feature becomes, checked by the kfp SDK itself
(loaded as a component and parsed strictly as PipelineSpec, PipelineDeploymentConfig and
the Kubernetes PlatformSpec) in its own virtualenv."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from seed_pipelines import ml_training_pipeline, training_pipeline

from shipyard.errors import CompileError, NotSupportedError
from shipyard.pipelines import (
    RUN_ID,
    Collected,
    Dataset,
    ExitHandler,
    Model,
    Outputs,
    ParallelFor,
    pipeline,
    step,
    when,
)
from shipyard.pipelines.compile.kfp import check_references, compile_kfp, kfp_yaml

CHECK = """
import sys, yaml
from google.protobuf import json_format
from kfp import components
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

for path in sys.argv[1:]:
    docs = list(yaml.safe_load_all(open(path)))
    component = components.load_component_from_file(path)
    json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
    json_format.ParseDict(docs[0]["deploymentSpec"], pipeline_spec_pb2.PipelineDeploymentConfig())
    for doc in docs[1:]:
        json_format.ParseDict(doc, pipeline_spec_pb2.PlatformSpec())
        executors = doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for config in executors.values():
            json_format.ParseDict(
                config, kubernetes_executor_config_pb2.KubernetesExecutorConfig()
            )
    print("ok", component.name)
"""


@step
def make_data(n: int) -> Dataset:
    return list(range(n))  # type: ignore[return-value]


@step
def fit(data: Dataset, scale: float) -> Outputs(model=Model, score=float):
    return {"scale": scale}, scale


@step
def square(x: int) -> int:
    return x * x


@step
def total(values: list[int]) -> int:
    return sum(values)


@step
def publish(model: Model, version: str, total: int) -> str:
    return f"{version}:{total}"


@step
def cleanup() -> None:
    pass


@pipeline
def features(n: int = 5, scale: float = 1.0, threshold: float = 0.1, xs: list = [1, 2, 3]):  # noqa: B006
    with ExitHandler(cleanup()):
        data = make_data(n=n).resources(
            cpu="500m", memory_request="1G", memory_limit="2G", gpu=2, accelerator="nvidia-tesla-t4"
        )
        model = fit(data=data.output, scale=scale).retries(2, 5).timeout(60)
        with ParallelFor(xs, parallelism=2) as x:
            squared = square(x=x)
        summed = total(values=Collected(squared.output))
        with when((model.outputs["score"] > threshold) & (summed.output >= 1)):
            publish(model=model.outputs["model"], version=RUN_ID, total=summed.output).cache(False)


@step
def keyed(lr: float, depth: int) -> float:
    return lr * depth


@pipeline
def grid():
    items = [{"lr": 0.1, "depth": 2}, {"lr": 0.01, "depth": 4}]
    with ParallelFor(items) as item, when(item["depth"] > 2):
        keyed(lr=item["lr"], depth=item["depth"])


@step
def many(data: list[Dataset]) -> int:
    return len(data)


@pipeline
def collects_artifacts():
    with ParallelFor([1, 2]) as n:
        made = make_data(n=n)
    many(data=Collected(made.output))


@pytest.fixture(scope="module")
def kfp_python() -> Path:
    from shipyard.pipelines.compile.toolenv import kfp_python

    return kfp_python()


def _tasks(spec: dict[str, Any], component: str | None = None) -> dict[str, Any]:
    dag = spec["root"]["dag"] if component is None else spec["components"][component]["dag"]
    return dag["tasks"]  # type: ignore[no-any-return]


@pytest.mark.xdist_group("kfp")
def test_kfp_sdk_loads_and_parses_every_compiled_pipeline(kfp_python: Path, tmp_path: Path) -> None:
    files = []
    for flow in (features, grid, training_pipeline, ml_training_pipeline):
        path = tmp_path / f"{flow.name}.yaml"
        path.write_text(kfp_yaml(flow, "registry.example.com/team/train:1.2"))
        files.append(str(path))
    done = subprocess.run(
        [str(kfp_python), "-c", CHECK, *files], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:4] == [
        "ok features",
        "ok grid",
        "ok advanced-training-pipeline",
        "ok ml-training-pipeline",
    ]


def test_each_step_runs_the_entrypoint_in_the_image_with_placeholders() -> None:
    spec = compile_kfp(features, "img:1")
    container = spec["deploymentSpec"]["executors"]["exec-fit"]["container"]
    assert container["image"] == "img:1"
    assert container["command"] == ["python", "-m", "shipyard.pipelines.entrypoint"]
    assert container["args"] == [
        "run",
        "--pipeline",
        "test_compile_kfp:features",
        "--task",
        "fit",
        "--input",
        "data={{$.inputs.artifacts['data'].path}}",
        "--param",
        "scale={{$.inputs.parameters['scale']}}",
        "--output",
        "model={{$.outputs.artifacts['model'].path}}",
        "--output-param",
        "score={{$.outputs.parameters['score'].output_file}}",
        "--timeout",
        "60",
    ]
    fit_component = spec["components"]["comp-fit"]
    assert fit_component["inputDefinitions"] == {
        "artifacts": {
            "data": {"artifactType": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}}
        },
        "parameters": {"scale": {"parameterType": "NUMBER_DOUBLE"}},
    }
    assert fit_component["outputDefinitions"]["artifacts"]["model"]["artifactType"] == {
        "schemaTitle": "system.Model",
        "schemaVersion": "0.0.1",
    }
    assert spec["root"]["inputDefinitions"]["parameters"]["n"] == {
        "parameterType": "NUMBER_INTEGER",
        "defaultValue": 5.0,
        "isOptional": True,
    }
    assert spec["schemaVersion"] == "2.1.0"


def test_exit_handler_body_is_a_sub_dag_the_exit_task_always_follows() -> None:
    spec = compile_kfp(features, "img:1")
    root = _tasks(spec)
    assert set(root) == {"cleanup", "exit-handler-1"}
    assert root["cleanup"]["dependentTasks"] == ["exit-handler-1"]
    assert root["cleanup"]["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    body = _tasks(spec, "comp-exit-handler-1")
    assert set(body) == {"make-data", "fit", "for-loop-2", "total", "condition-3"}
    assert body["fit"]["inputs"]["artifacts"]["data"] == {
        "taskOutputArtifact": {"producerTask": "make-data", "outputArtifactKey": "output"}
    }
    assert body["fit"]["inputs"]["parameters"]["scale"] == {
        "componentInputParameter": "pipelinechannel--scale"
    }
    assert root["exit-handler-1"]["inputs"]["parameters"]["pipelinechannel--scale"] == {
        "componentInputParameter": "scale"
    }
    assert body["fit"]["retryPolicy"] == {
        "backoffDuration": "5s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "3600s",
        "maxRetryCount": 2,
    }


def test_condition_becomes_a_cel_trigger_policy_over_channel_inputs() -> None:
    spec = compile_kfp(features, "img:1")
    condition = _tasks(spec, "comp-exit-handler-1")["condition-3"]
    assert condition["triggerPolicy"]["condition"] == (
        "(inputs.parameter_values['pipelinechannel--fit-score'] > "
        "inputs.parameter_values['pipelinechannel--threshold']) && "
        "(int(inputs.parameter_values['pipelinechannel--total-output']) >= 1)"
    )
    assert condition["dependentTasks"] == ["fit", "total"]
    publish_task = _tasks(spec, "comp-condition-3")["publish"]
    assert publish_task["cachingOptions"] == {}
    assert publish_task["inputs"]["parameters"]["version"] == {
        "runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}
    }
    assert publish_task["inputs"]["artifacts"]["model"] == {
        "componentInputArtifact": "pipelinechannel--fit-model"
    }


def test_parallel_for_iterates_and_collected_leaves_as_the_loop_output() -> None:
    spec = compile_kfp(features, "img:1")
    body = _tasks(spec, "comp-exit-handler-1")
    loop = body["for-loop-2"]
    assert loop["parameterIterator"] == {
        "itemInput": "pipelinechannel--for-loop-2-loop-item",
        "items": {"inputParameter": "pipelinechannel--xs"},
    }
    assert loop["iteratorPolicy"] == {"parallelismLimit": 2}
    loop_component = spec["components"]["comp-for-loop-2"]
    assert loop_component["dag"]["outputs"]["parameters"]["pipelinechannel--square-output"] == {
        "valueFromParameter": {"producerSubtask": "square", "outputParameterKey": "output"}
    }
    assert body["total"]["inputs"]["parameters"]["values"] == {
        "taskOutputParameter": {
            "producerTask": "for-loop-2",
            "outputParameterKey": "pipelinechannel--square-output",
        }
    }
    grid_spec = compile_kfp(grid, "img:1")
    iterator = _tasks(grid_spec)["for-loop-1"]["parameterIterator"]
    assert iterator["items"] == {"raw": '[{"lr": 0.1, "depth": 2}, {"lr": 0.01, "depth": 4}]'}
    condition = _tasks(grid_spec, "comp-for-loop-1")["condition-2"]
    subvar = "pipelinechannel--for-loop-1-loop-item-subvar-depth"
    assert condition["triggerPolicy"]["condition"] == (
        f"int(inputs.parameter_values['{subvar}']) > 2"
    )
    assert condition["inputs"]["parameters"][subvar] == {
        "componentInputParameter": "pipelinechannel--for-loop-1-loop-item",
        "parameterExpressionSelector": 'parseJson(string_value)["depth"]',
    }
    inner = _tasks(grid_spec, "comp-condition-2")["keyed"]["inputs"]["parameters"]["lr"]
    assert inner == {
        "componentInputParameter": "pipelinechannel--for-loop-1-loop-item",
        "parameterExpressionSelector": 'parseJson(string_value)["lr"]',
    }


def test_resources_and_node_selector_use_kfp_constructs() -> None:
    text = kfp_yaml(features, "img:1")
    spec, platform = yaml.safe_load_all(text)
    resources = spec["deploymentSpec"]["executors"]["exec-make-data"]["container"]["resources"]
    assert resources["resourceCpuRequest"] == "500m"
    assert resources["resourceCpuLimit"] == "500m"
    assert resources["resourceMemoryRequest"] == "1G"
    assert resources["resourceMemoryLimit"] == "2G"
    assert resources["memoryLimit"] == 2.0
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "2"
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors == {
        "exec-make-data": {
            "nodeSelector": {"labels": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}}
        }
    }
    seed = yaml.safe_load_all(kfp_yaml(training_pipeline, "img:1"))
    seed_spec, seed_platform = seed
    train = seed_spec["deploymentSpec"]["executors"]["exec-train-model"]["container"]
    assert train["resources"]["accelerator"]["resourceCount"] == "1"
    assert seed_platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][
        "exec-train-model"
    ]["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-k80"}


def test_collected_artifacts_are_refused_with_what_to_do() -> None:
    with pytest.raises(NotSupportedError, match=r"(?s)Collected artifacts .* Collect parameters"):
        compile_kfp(collects_artifacts, "img:1")


def test_dangling_references_are_caught_before_upload() -> None:
    spec = compile_kfp(features, "img:1")
    spec["root"]["dag"]["tasks"]["cleanup"]["dependentTasks"] = ["nowhere"]
    with pytest.raises(CompileError, match="waits for missing 'nowhere'"):
        check_references(spec)
    spec = compile_kfp(features, "img:1")
    del spec["deploymentSpec"]["executors"]["exec-fit"]
    with pytest.raises(CompileError, match="comp-fit' names a missing executor"):
        check_references(spec)


def test_compiled_container_commands_run_the_steps(tmp_path: Path) -> None:
    """Fill in the placeholders the way KFP's launcher does and run each container's
    command: the entrypoint reads the inputs and writes the outputs KFP collects."""
    import re

    from shipyard.pipelines.entrypoint import main
    from shipyard.pipelines.serialization import load_path

    executors = compile_kfp(features, "img:1")["deploymentSpec"]["executors"]
    values = {
        "inputs.parameters['n']": "4",
        "inputs.parameters['scale']": "2.5",
        "outputs.artifacts['output'].path": str(tmp_path / "make-data" / "output"),
        "inputs.artifacts['data'].path": str(tmp_path / "make-data" / "output"),
        "outputs.artifacts['model'].path": str(tmp_path / "fit" / "model"),
        "outputs.parameters['score'].output_file": str(tmp_path / "fit" / "score"),
    }

    def fill(arg: str) -> str:
        return re.sub(r"\{\{\$\.(.+?)\}\}", lambda m: values[m.group(1)], arg)

    for executor in ("exec-make-data", "exec-fit"):
        container = executors[executor]["container"]
        assert container["command"][-1] == "shipyard.pipelines.entrypoint"
        assert main([fill(a) for a in container["args"]]) == 0
    assert load_path(tmp_path / "make-data" / "output") == [0, 1, 2, 3]
    assert load_path(tmp_path / "fit" / "model") == {"scale": 2.5}
    assert (tmp_path / "fit" / "score").read_text() == "2.5"
