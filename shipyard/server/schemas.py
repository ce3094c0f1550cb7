"""The platform server's wire format: pydantic models for every request and response body.

Requests forbid unknown fields, so a misspelt field fails loudly instead of being dropped.
Responses are built from the tracking and registry entities (``from_attributes``); times
are ISO 8601 UTC, metric timestamps epoch milliseconds. Limits here are the API's limits:
they keep every value inside what both SQLite and PostgreSQL store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from shipyard.tracking.entities import RunStatus

#: Largest batches one log_batch call accepts; bigger ones get a 400 asking to split.
MAX_BATCH_METRICS = 10_000
MAX_BATCH_PARAMS = 1_000
MAX_BATCH_TAGS = 1_000

_INT64 = 2**63 - 1


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


_NO_NUL = AfterValidator(_no_nul)


def _limits(max_length: int, min_length: int = 0, pattern: str = "") -> WithJsonSchema:
    """String limits documented in OpenAPI and enforced by the stores.

    The stores check names, keys and values with their own messages, the same locally and
    over HTTP, so the API states the limits without checking them a second time.
    """
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length}
    if min_length:
        schema["minLength"] = min_length
    if pattern:
        schema["pattern"] = pattern
    return WithJsonSchema(schema)


Key = Annotated[str, _NO_NUL, _limits(250, 1, r"^[A-Za-z0-9_\-. /]+$")]
Name = Annotated[str, _NO_NUL, _limits(256, 1)]
Id = Annotated[str, _NO_NUL, _limits(32, 1)]
Label = Annotated[str, _NO_NUL, _limits(64)]
User = Annotated[str, _NO_NUL, _limits(256)]
Uri = Annotated[str, _NO_NUL, _limits(4096, 1)]
ArtifactPath = Annotated[str, _NO_NUL, _limits(1024, 1)]
Expression = Annotated[str, _NO_NUL, _limits(4096, 1)]
Token = Annotated[str, _NO_NUL, _limits(4096)]
OrderBy = Annotated[str, _NO_NUL, _limits(512)]
ParamValue = Annotated[str, _NO_NUL, _limits(6000)]
TagValue = Annotated[str, _NO_NUL, _limits(8000)]
Text = Annotated[str, _NO_NUL, _limits(65_536)]
#: The registry checks model names itself, control characters included.
ModelName = Annotated[str, _limits(256, 1)]
Tags = dict[Key, TagValue]
#: Integers are kept within 64 bits, the widest column of either database.
Int64 = Annotated[int, Field(ge=-_INT64 - 1, le=_INT64)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    # NaN and infinite metric values travel as JSON's NaN/Infinity, which Python reads back.
    model_config = ConfigDict(from_attributes=True, ser_json_inf_nan="constants")


# -- errors ---------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. 'run_not_found'.")
    message: str = Field(description="What is wrong and what to do, with a Hint: line.")
    details: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer has this shape."""

    error: ErrorDetail


# -- experiments ----------------------------------------------------------------------------


class ExperimentCreate(_Request):
    name: Name
    artifact_location: Text | None = None
    description: Text = ""
    tags: Tags = Field(default_factory=dict)


class TagValueBody(_Request):
    value: TagValue


class ExperimentOut(_Response):
    experiment_id: str
    name: str
    workspace: str
    artifact_location: str
    lifecycle_stage: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class ExperimentList(_Response):
    experiments: list[ExperimentOut]
    next_page_token: str | None = None


# -- runs -----------------------------------------------------------------------------------


class RunCreate(_Request):
    experiment_id: Id
    run_name: Name | None = None
    parent_run_id: Id | None = None
    tags: Tags = Field(default_factory=dict)
    user: User = ""
    start_time: Int64 | None = Field(None, description="Epoch ms; default: now.")


class RunUpdate(_Request):
    status: RunStatus | None = None
    end_time: Int64 | None = None
    run_name: Name | None = None


class RunInfoOut(_Response):
    run_id: str
    experiment_id: str
    workspace: str
    run_name: str
    status: RunStatus
    start_time: datetime
    end_time: datetime | None
    artifact_uri: str
    user: str = ""
    parent_run_id: str | None = None
    lifecycle_stage: str = "active"


class RunDataOut(_Response):
    params: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict, description="Latest value per key.")
    tags: dict[str, str] = Field(default_factory=dict)


class DatasetBody(_Request):
    name: Name
    digest: Label
    source: Text = ""
    source_type: Label = ""
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    profile: dict[str, Any] = Field(default_factory=dict)
    num_rows: Int64 | None = None


class DatasetInputBody(_Request):
    dataset: DatasetBody
    context: Label = ""


class LogInputs(_Request):
    inputs: list[DatasetInputBody] = Field(max_length=1000)


class DatasetOut(_Response):
    name: str
    digest: str
    source: str = ""
    source_type: str = ""
    schema_: dict[str, Any] = Field(
        default_factory=dict, validation_alias="schema", serialization_alias="schema"
    )
    profile: dict[str, Any] = Field(default_factory=dict)
    num_rows: int | None = None


class DatasetInputOut(_Response):
    dataset: DatasetOut
    context: str = ""


class RunOut(_Response):
    info: RunInfoOut
    data: RunDataOut
    inputs: list[DatasetInputOut] = Field(default_factory=list)


class RunList(_Response):
    runs: list[RunOut]
    next_page_token: str | None = None


class MetricBody(_Request):
    key: Key
    value: float
    step: Int64 = 0
    timestamp: Int64 | None = Field(None, description="Epoch ms; default: server time.")


class ParamBody(_Request):
    key: Key
    value: ParamValue


class LogBatch(_Request):
    """Metrics, params and tags written in one transaction.

    At most 10,000 metrics, 1,000 params and 1,000 tags per call.
    """

    metrics: list[MetricBody] = Field(default_factory=list)
    params: list[ParamBody] = Field(default_factory=list)
    tags: Tags = Field(default_factory=dict)


class MetricOut(_Response):
    key: str
    value: float
    step: int
    timestamp: int


class MetricHistory(_Response):
    metrics: list[MetricOut]


class SearchRuns(_Request):
    experiment_ids: list[Id] = Field(
        default_factory=list, max_length=1000, description="None: every experiment."
    )
    filter: Text = Field("", description="e.g. \"metrics.acc > 0.9 and params.lr = '0.1'\"")
    order_by: list[OrderBy] = Field(default_factory=list, max_length=20)
    max_results: Int64 = Field(100, description="1 to 50,000.")
    page_token: Token | None = None
    include_deleted: bool = False


# -- artifacts ------------------------------------------------------------------------------


class ArtifactOut(_Response):
    path: str = Field(description="Key relative to the run's artifact root.")
    size: int
    sha256: str
    is_dir: bool = False


class ArtifactBody(_Request):
    path: ArtifactPath
    size: Int64
    sha256: Annotated[str, StringConstraints(pattern=r"^([0-9a-f]{64})?$")] = ""
    is_dir: bool = False


class ArtifactRecords(_Request):
    artifacts: list[ArtifactBody] = Field(max_length=10_000)


class ArtifactList(_Response):
    artifacts: list[ArtifactOut]


# -- registry -------------------------------------------------------------------------------


class ModelCreate(_Request):
    name: ModelName
    description: Text = ""
    tags: Tags = Field(default_factory=dict)


class DescriptionUpdate(_Request):
    description: Text


class ModelOut(_Response):
    name: str
    workspace: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    latest_version: int | None = None
    aliases: dict[str, int] = Field(default_factory=dict)
    gates: dict[str, str] = Field(default_factory=dict, description="alias -> gate")
    tags: dict[str, str] = Field(default_factory=dict)


class ModelList(_Response):
    models: list[ModelOut]
    next_page_token: str | None = None


class VersionCreate(_Request):
    source: Uri = Field(description="URI of the saved model folder.")
    run_id: Id | None = None
    description: Text = ""
    flavor: Label = ""
    manifest_sha256: Label = ""
    tags: Tags = Field(default_factory=dict)


class VersionOut(_Response):
    name: str
    version: int
    workspace: str
    source: str
    run_id: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    flavor: str = ""
    manifest_sha256: str = ""
    aliases: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class VersionList(_Response):
    versions: list[VersionOut]


class AliasSet(_Request):
    version: Int64
    actor: User = ""
    force: bool = Field(False, description="Move the alias even if its gate fails.")


class AliasChangeOut(_Response):
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    at: datetime
    reason: str = ""


class AliasHistory(_Response):
    changes: list[AliasChangeOut]


class VersionAt(_Response):
    version: int | None = Field(description="The version live at that time, or null.")


class GateSet(_Request):
    expression: Expression = Field(description="e.g. 'accuracy >= 0.85 and latency_p99_ms < 20'")


class WebhookCreate(_Request):
    url: Uri
    events: list[Label] | None = Field(None, max_length=100)
    secret: Label | None = Field(
        None, description="Signs each body: X-Shipyard-Signature: sha256=<hmac>."
    )


class WebhookOut(_Response):
    webhook_id: str
    workspace: str
    url: str
    events: list[str]
    created_at: datetime


class WebhookList(_Response):
    webhooks: list[WebhookOut]


class Health(BaseModel):
    status: str = "ok"
    version: str


_ERROR = {"model": ErrorBody}

#: Error answers every API route may give, documented once for OpenAPI.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**_ERROR, "description": "Bad input; the message says what to change."},
    401: {**_ERROR, "description": "Authentication required."},
    403: {**_ERROR, "description": "Permission denied."},
    404: {**_ERROR, "description": "Not found (resource or workspace)."},
    409: {**_ERROR, "description": "Conflict with the stored state."},
    413: {**_ERROR, "description": "Request body too large."},
    422: {**_ERROR, "description": "Request does not match its schema; names the field."},
    503: {**_ERROR, "description": "A backend (database, object store) is unavailable."},
}
