"""Triton model repositories: ONNX exports that reproduce the model within 1e-5, and a
config.pbtxt that Triton's own protobuf parses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tritonclient.grpc import model_config_pb2 as mc
from typer.testing import CliRunner

from shipyard.deploy.triton import export_triton, triton_config, verify_onnx
from shipyard.errors import IntegrityError, InvalidArgumentError, NotSupportedError
from shipyard.models import load_model, save_model


def _parse_config(text: str) -> Any:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def _run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def test_cli_exports_the_champion_as_a_triton_repository(churn: Any, tmp_path: Path) -> None:
    from shipyard.cli.main import app

    _, model, x = churn
    out = tmp_path / "triton"
    result = CliRunner().invoke(
        app, ["deploy", "render", "models:/churn@champion", "--target", "triton", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (out / "churn" / "1" / "model.onnx").is_file()
    config = _parse_config((out / "churn" / "config.pbtxt").read_text())
    assert config.name == "churn"
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 64
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert list(config.dynamic_batching.preferred_batch_size) == [8, 16, 32, 64]
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("input", mc.TYPE_FP32, [30])
    ]
    outputs = {o.name: o for o in config.output}
    assert list(outputs["probabilities"].dims) == [2]
    assert outputs["label"].data_type == mc.TYPE_INT64
    assert list(outputs["label"].dims) == [1] and outputs["label"].HasField("reshape")
    assert [g.kind for g in config.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    checked = CliRunner().invoke(app, ["deploy", "validate", str(out)])
    assert checked.exit_code == 0 and "config.pbtxt (Triton model_config)" in checked.output

    # Independently of the exporter's own check: ONNX matches sklearn within 1e-5.
    rows = x.sample(100, random_state=1)
    got = _run_onnx(out / "churn" / "1" / "model.onnx", {"input": rows.to_numpy(np.float32)})
    assert np.array_equal(got["label"], model.predict(rows))
    assert np.abs(got["probabilities"] - model.predict_proba(rows)).max() <= 1e-5


def test_gpu_instances_when_asked(churn: Any, tmp_path: Path) -> None:
    from shipyard.deploy.render import render_triton

    client = churn[0]
    export = render_triton("models:/churn/1", tmp_path, gpu=True, client=client).triton
    assert export is not None
    config = _parse_config(export.config_path.read_text())
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU


def test_an_export_that_does_not_reproduce_the_model_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LinearRegression

    from shipyard.deploy import triton

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    first = LinearRegression().fit(x, x @ [1.0, 2.0, 3.0])
    other = LinearRegression().fit(x, x @ [1.0, 2.0, 3.5])
    save_model(first, tmp_path / "first", input_example=x[:10])
    save_model(other, tmp_path / "other", input_example=x[:10])
    model = load_model(tmp_path / "first")
    wrong = triton.export_onnx(load_model(tmp_path / "other"), x[:10])
    monkeypatch.setattr(triton, "export_onnx", lambda *args, **kwargs: wrong)
    with pytest.raises(IntegrityError, match=r"does not reproduce its predictions within 1e-05"):
        export_triton(model, tmp_path / "repo", name="first")
    assert not (tmp_path / "repo").exists()
    monkeypatch.undo()
    export = export_triton(model, tmp_path / "repo", name="first")
    assert export.max_abs_diff <= 1e-5


def test_float64_models_fall_back_to_float64_inputs_when_float32_is_not_exact(
    tmp_path: Path,
) -> None:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(1)
    # The target is a small difference of two large columns: rounding them to float32
    # (about 0.06 at 1e6) changes the prediction far more than 1e-5.
    base = rng.uniform(1e6, 2e6, size=50)
    diff = rng.normal(size=50)
    x = np.column_stack([base, base + diff, rng.normal(size=50)])
    model = LinearRegression().fit(x, diff)
    save_model(model, tmp_path / "m", input_example=x[:10])
    export = export_triton(load_model(tmp_path / "m"), tmp_path / "repo", name="big")
    assert export.float_type == "float64"
    config = _parse_config(export.config_path.read_text())
    assert config.input[0].data_type == mc.TYPE_FP64
    got = _run_onnx(export.onnx_path, {"input": x[:10]})
    expected = model.predict(x[:10])
    assert np.all(np.abs(got["variable"].ravel() - expected) <= 1e-5 * (1 + np.abs(expected)))


def test_lightgbm_exports_natively(tmp_path: Path) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    pytest.importorskip("onnxmltools")
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=300, n_features=8, random_state=0)
    clf = lightgbm.LGBMClassifier(n_estimators=30, verbose=-1).fit(x, y)
    save_model(clf, tmp_path / "lgbm", input_example=x[:20])
    export = export_triton(load_model(tmp_path / "lgbm"), tmp_path / "repo", name="lgbm")
    config = _parse_config(export.config_path.read_text())
    assert config.max_batch_size == 64  # the label's batch dimension was made dynamic
    got = _run_onnx(export.onnx_path, {"input": x[:50].astype(np.float32)})
    assert np.array_equal(got["label"], clf.predict(x[:50]))
    assert np.abs(got["probabilities"] - clf.predict_proba(x[:50])).max() <= 1e-5


class Doubler:
    """A pyfunc model: arbitrary Python, which no converter turns into ONNX."""

    def predict(self, data: Any) -> Any:
        return np.asarray(data) * 2


def test_pyfunc_models_cannot_go_to_triton(tmp_path: Path) -> None:
    save_model(Doubler(), tmp_path / "m", flavor="pyfunc", input_example=np.ones((2, 2)))
    with pytest.raises(NotSupportedError, match="cannot be exported to ONNX"):
        export_triton(load_model(tmp_path / "m"), tmp_path / "repo", name="doubler")


def test_a_model_without_input_example_is_refused(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    x = np.arange(20.0).reshape(10, 2)
    save_model(LinearRegression().fit(x, x.sum(axis=1)), tmp_path / "m")
    with pytest.raises(InvalidArgumentError, match="has no input example"):
        export_triton(load_model(tmp_path / "m"), tmp_path / "repo", name="m")
    with pytest.raises(InvalidArgumentError, match="Invalid Triton model name"):
        export_triton(load_model(tmp_path / "m"), tmp_path / "repo", name="../m", input_example=x)


def test_fixed_batch_models_get_no_batching(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    onnx.checker.check_model(data)
    config = _parse_config(triton_config(data, "fixed", instance_kind="KIND_GPU"))
    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [4, 3]


def test_verify_reports_the_largest_difference(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from shipyard.deploy.triton import export_onnx

    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 5))
    clf = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    save_model(clf, tmp_path / "m", input_example=x[:20])
    model = load_model(tmp_path / "m")
    worst = verify_onnx(export_onnx(model, x[:20]), model, x[:20])
    assert 0 <= worst <= 1e-5
