"""The two pipelines of the seed guide (section 1), written with shipyard.pipelines.

``training_pipeline`` mirrors the Kubeflow example: parameters, an exit handler with a cleanup
step, a memory request and a memory limit, caching, a GPU with an accelerator node selector, a
condition on a step output and a deploy step tagged with the run id. ``ml_training_pipeline``
mirrors the Airflow DAG: a data-quality gate, then ``a >> b >> c`` with retries every 5 minutes.
Compiler tests can reuse both.
"""

from __future__ import annotations

from datetime import timedelta

from shipyard.pipelines import (
    RUN_ID,
    Dataset,
    ExitHandler,
    Model,
    Outputs,
    pipeline,
    step,
    when,
)


@step
def cleanup() -> None:
    """Remove scratch data, whatever happened to the run."""


@step
def data_preparation(data_path: str) -> Outputs(processed_data=Dataset):
    """Read and clean the raw data."""


@step
def feature_engineering(data: Dataset) -> Outputs(features=Dataset):
    """Build the feature table."""


@step
def train_model(features: Dataset, hyperparameters: dict) -> Outputs(
    model=Model, validation_accuracy=float
):
    """Fit the model and score it on the validation split."""


@step
def deploy_model(model: Model, version: str) -> None:
    """Push the model to serving, tagged with ``version``."""


@pipeline(
    name="advanced-training-pipeline",
    description="End-to-end ML training pipeline with monitoring",
)
def training_pipeline(data_path: str, model_params: dict, validation_threshold: float = 0.85):
    with ExitHandler(cleanup()):
        data_prep = data_preparation(data_path=data_path).resources(memory_request="4G")
        features = (
            feature_engineering(data=data_prep.outputs["processed_data"])
            .resources(memory_limit="8G")
            .cache(True)
        )
        training = train_model(
            features=features.outputs["features"], hyperparameters=model_params
        ).resources(
            gpu=1,
            accelerator="nvidia-tesla-k80",
            node_selector={"cloud.google.com/gke-accelerator": "nvidia-tesla-k80"},
        )
        with when(training.outputs["validation_accuracy"] > validation_threshold):
            deploy_model(model=training.outputs["model"], version=RUN_ID).cache(False)


@step
def validate_data() -> None:
    """The data quality checkpoint: fails the run when an expectation fails."""


@step
def process_features() -> None:
    """Feature engineering."""


@step
def train() -> None:
    """Model training."""


RETRY_DELAY = timedelta(minutes=5)


@pipeline(name="ml-training-pipeline")
def ml_training_pipeline():
    data_validation = validate_data().retries(3, RETRY_DELAY, factor=1)
    feature_engineering = process_features().retries(3, RETRY_DELAY, factor=1)
    model_training = train().retries(3, RETRY_DELAY, factor=1)
    data_validation >> feature_engineering >> model_training
