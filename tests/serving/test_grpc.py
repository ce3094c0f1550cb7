"""OIP V2 over gRPC, driven by Triton's own client (tritonclient.grpc): health, metadata,
config, inference with raw and typed tensors, repository load/unload, errors and auth."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from shipyard.client import Client
from shipyard.errors import AuthError, ConfigError
from shipyard.serving.grpc_server import serve_grpc
from shipyard.serving.repository import ModelRepository
from tests.conftest import free_port

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture
def repository(client: Client, register: Callable[..., int], logreg: Any) -> ModelRepository:
    register(logreg)
    repository = ModelRepository(client)
    repository.load("models:/fraud@champion")
    return repository


@pytest.fixture
def grpc_url(repository: ModelRepository) -> Iterator[str]:
    port = free_port()
    server = serve_grpc(repository, port)
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture
def triton(grpc_url: str) -> Iterator[Any]:
    client = grpcclient.InferenceServerClient(url=grpc_url)
    yield client
    client.close()


def _infer(triton: Any, x: np.ndarray, datatype: str = "FP64", **kwargs: Any) -> Any:
    tensor = grpcclient.InferInput("input-0", list(x.shape), datatype)
    tensor.set_data_from_numpy(x)
    return triton.infer("fraud", [tensor], **kwargs)


def test_health_and_server_metadata(triton: Any) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("fraud")
    assert triton.is_model_ready("fraud", "1")
    assert not triton.is_model_ready("fraud", "7")
    assert not triton.is_model_ready("nope")
    metadata = triton.get_server_metadata()
    assert metadata.name == "shipyard"
    assert "model_repository" in metadata.extensions


def test_model_metadata_and_config(triton: Any) -> None:
    from tritonclient.grpc import model_config_pb2 as mc

    metadata = triton.get_model_metadata("fraud")
    assert metadata.name == "fraud" and list(metadata.versions) == ["1"]
    assert [(i.name, i.datatype, list(i.shape)) for i in metadata.inputs] == [
        ("input-0", "FP64", [-1, 20])
    ]
    assert [o.name for o in metadata.outputs] == ["predict", "predict_proba"]
    config = triton.get_model_config("fraud", "1").config
    assert config.name == "fraud"
    assert config.input[0].data_type == mc.TYPE_FP64
    assert list(config.input[0].dims) == [-1, 20]
    assert list(config.version_policy.specific.versions) == [1]
    assert config.output[1].data_type == mc.TYPE_FP64


def test_infer_raw_tensors_matches_the_model(triton: Any, logreg: Any, xy: Any) -> None:
    x = xy[0][:17]
    result = _infer(triton, x)
    assert result.get_response().model_version == "1"
    assert np.array_equal(result.as_numpy("predict"), logreg.predict(x))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), logreg.predict_proba(x))
    one = _infer(
        triton, x.astype(np.float32), "FP32", outputs=[grpcclient.InferRequestedOutput("predict")]
    )
    assert [o.name for o in one.get_response().outputs] == ["predict"]
    assert np.array_equal(one.as_numpy("predict"), logreg.predict(x.astype(np.float32)))


def test_infer_typed_contents(grpc_url: str, logreg: Any, xy: Any) -> None:
    """Clients that fill InferTensorContents instead of raw bytes (the protocol allows both)."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    x = xy[0][:5]
    request = service_pb2.ModelInferRequest(model_name="fraud", id="req-1")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(x.shape))
    tensor.contents.fp64_contents.extend(x.ravel().tolist())
    with grpc.insecure_channel(grpc_url) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert response.id == "req-1"
    names = [o.name for o in response.outputs]
    labels = np.frombuffer(response.raw_output_contents[names.index("predict")], dtype="<i8")
    assert labels.tolist() == logreg.predict(x).tolist()


def test_bad_requests_get_grpc_status_codes(triton: Any, xy: Any) -> None:
    with pytest.raises(InferenceServerException) as info:
        triton.infer("nope", [grpcclient.InferInput("input-0", [1, 20], "FP64")])
    assert info.value.status() == "StatusCode.NOT_FOUND"
    assert "'nope' is not served" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        _infer(triton, xy[0][:3, :19])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "expected 20 features, got 19" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        _infer(triton, xy[0][:2], outputs=[grpcclient.InferRequestedOutput("logits")])
    assert "Unknown output 'logits'" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        triton.get_model_config("fraud", "9")
    assert info.value.status() == "StatusCode.NOT_FOUND"


def test_raw_bytes_that_do_not_fill_the_shape_are_refused(grpc_url: str) -> None:
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    request = service_pb2.ModelInferRequest(model_name="fraud")
    request.inputs.add(name="input-0", datatype="FP64", shape=[2, 20])
    request.raw_input_contents.append(b"\0" * 8 * 39)
    with grpc.insecure_channel(grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs 320 bytes, got 312" in info.value.details()


def test_repository_index_load_and_unload(
    triton: Any, register: Callable[..., int], logreg: Any, forest: Any, xy: Any
) -> None:
    index = triton.get_model_repository_index()
    assert [(m.name, m.version, m.state) for m in index.models] == [("fraud", "1", "READY")]
    register(forest)  # version 2 becomes the champion
    triton.load_model("fraud")  # reloading re-resolves the alias it was served by
    assert triton.get_model_metadata("fraud").versions == ["2"]
    x = xy[0][:9]
    assert np.array_equal(_infer(triton, x).as_numpy("predict"), forest.predict(x))
    triton.unload_model("fraud")
    assert not triton.is_model_ready("fraud")
    with pytest.raises(InferenceServerException, match="not served"):
        triton.unload_model("fraud")
    triton.load_model("fraud@champion")
    assert triton.is_model_ready("fraud", "2")
    register(logreg, name="credit", alias=None)
    triton.load_model("credit")  # no alias: the latest version, as Triton's default policy
    assert triton.is_model_ready("credit", "1")
    with pytest.raises(InferenceServerException) as info:
        triton.load_model("missing-model")
    assert info.value.status() == "StatusCode.NOT_FOUND"


def test_string_labels_come_back_as_bytes(
    client: Client, register: Callable[..., int], xy: Any
) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = xy
    labels = np.where(y == 1, "fraud", "ok")
    model = LogisticRegression(max_iter=1000).fit(x, labels)
    register(model, name="kind")
    repository = ModelRepository(client)
    repository.load("models:/kind@champion")
    port = free_port()
    server = serve_grpc(repository, port)
    try:
        with grpcclient.InferenceServerClient(url=f"127.0.0.1:{port}") as triton:
            tensor = grpcclient.InferInput("input-0", [4, 20], "FP64")
            tensor.set_data_from_numpy(x[:4])
            got = triton.infer("kind", [tensor]).as_numpy("predict")
    finally:
        server.stop(None)
    assert [v.decode() for v in got] == model.predict(x[:4]).tolist()


def test_auth_is_checked_per_rpc(repository: ModelRepository, xy: Any) -> None:
    calls: list[tuple[str | None, str, str, str | None]] = []

    def authorize(header: str | None, resource: str, action: str, name: str | None) -> None:
        calls.append((header, resource, action, name))
        if header != "Bearer good":
            raise AuthError("Missing or invalid token.")

    port = free_port()
    server = serve_grpc(repository, port, authorize=authorize)
    try:
        with grpcclient.InferenceServerClient(url=f"127.0.0.1:{port}") as triton:
            assert triton.is_server_live() and triton.is_model_ready("fraud")  # probes: open
            with pytest.raises(InferenceServerException) as info:
                _infer(triton, xy[0][:2])
            assert info.value.status() == "StatusCode.UNAUTHENTICATED"
            result = _infer(triton, xy[0][:2], headers={"authorization": "Bearer good"})
            assert result.as_numpy("predict").shape == (2,)
    finally:
        server.stop(None)
    assert ("Bearer good", "predictions", "invoke", "fraud") in calls


def test_network_addresses_need_authorization(repository: ModelRepository) -> None:
    with pytest.raises(ConfigError, match=r"without authentication on '0\.0\.0\.0'"):
        serve_grpc(repository, free_port(), host="0.0.0.0")
    server = serve_grpc(repository, free_port(), host="0.0.0.0", authorize=lambda *a: None)
    server.stop(None)


def test_a_taken_port_is_a_config_error(repository: ModelRepository, grpc_url: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ConfigError, match="Cannot listen for gRPC"):
            serve_grpc(repository, port)
