"""The seed's TritonModelServer class, copied verbatim, against a Shipyard model server
with gRPC on (the app `shipyard serve --grpc-port` runs, started with its lifespan)."""

# The seed's blank lines carry indentation and its imports sit right above the class;
# the copy keeps both, byte for byte.
# ruff: noqa: I001, W293

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.client import Client
from shipyard.config import Settings
from tests.conftest import free_port

pytest.importorskip("tritonclient.grpc")

# --- verbatim from the seed guide, section 3 ("GPU Resource Management with NVIDIA Triton")
# fmt: off
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

class TritonModelServer:
    def __init__(self, url="localhost:8001"):
        self.client = grpcclient.InferenceServerClient(url=url)
        
    def load_model(self, model_name, model_version="1"):
        try:
            self.client.load_model(model_name)
            model_config = self.client.get_model_config(model_name, model_version)
            return True, model_config
        except InferenceServerException as e:
            return False, str(e)
    
    def get_inference(self, input_data, model_name):
        inputs = [
            grpcclient.InferInput(
                "input_1", input_data.shape, "FP32"
            )
        ]
        inputs[0].set_data_from_numpy(input_data)
        
        outputs = [
            grpcclient.InferRequestedOutput("output_1")
        ]
        
        response = self.client.infer(
            model_name=model_name,
            inputs=inputs,
            outputs=outputs
        )
        return response.as_numpy("output_1")
# fmt: on
# --- end of the seed's code


@pytest.fixture
def iris(settings: Settings, client: Client) -> tuple[Any, np.ndarray]:
    """``models:/iris@champion``: one FP32 tensor named input_1 in, output_1 out."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from shipyard.models.logging import log_model

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    run = client.create_run(client.create_experiment("triton-seed"))
    log_model(
        model,
        run_id=run.info.run_id,
        client=client,
        registered_model_name="iris",
        input_example=x[:5],
        signature={
            "inputs": [{"name": "input_1", "dtype": "float32", "shape": [-1, 4]}],
            "outputs": [{"name": "output_1", "dtype": "int64", "shape": [-1]}],
        },
    )
    client.registry.set_alias("iris", "champion", 1)
    return model, x


def test_seed_triton_client_works_against_shipyard(
    settings: Settings, client: Client, iris: tuple[Any, np.ndarray], tmp_path: Path
) -> None:
    from shipyard.models.logging import load
    from shipyard.serving.runner import ServeConfig, build_app
    from shipyard.testing import test_client

    _, x = iris
    port = free_port()
    config = ServeConfig(
        models=["models:/iris@champion"], options={"poll_seconds": 0}, grpc_port=port
    )
    app = build_app(config, settings)
    with test_client(app):  # runs the lifespan, which starts and stops the gRPC server
        server = TritonModelServer(url=f"localhost:{port}")
        loaded, config_response = server.load_model("iris")
        assert loaded, config_response
        assert config_response.config.name == "iris"
        assert [i.name for i in config_response.config.input] == ["input_1"]

        predictions = server.get_inference(x[40:70], "iris")
        in_process = load("models:/iris@champion", client=client).predict(x[40:70])
        assert predictions.tolist() == np.asarray(in_process).tolist()
        assert len(set(predictions.tolist())) > 1  # several classes, not a constant

        missing, message = server.load_model("no-such-model")
        assert not missing and "no-such-model" in message
        server.client.close()
