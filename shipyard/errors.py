"""Errors raised by Shipyard, one root and a few families.

Every error carries an ``http_status`` (the platform server maps it with one handler),
an ``exit_code`` (the CLI exits with it) and a stable ``code`` string for JSON bodies::

    ShipyardError
    ├── ConfigError
    ├── InvalidArgumentError          bad input a user can fix (400)
    │   └── FilterSyntaxError
    ├── PipelineError
    │   ├── PipelineDefinitionError
    │   └── StepFailedError
    ├── CompileError
    │   └── NotSupportedError
    ├── NotFoundError                  (404)
    │   ├── ExperimentNotFoundError
    │   ├── RunNotFoundError
    │   ├── ModelNotFoundError
    │   ├── ArtifactNotFoundError
    │   └── FeatureViewNotFoundError
    ├── ConflictError                  (409)
    │   └── PromotionRefusedError
    ├── IntegrityError                 stored bytes do not match their recorded hash
    ├── BackendError                   a database, object store or remote server failed
    └── AuthError                      (401)
        ├── InvalidTokenError
        └── PermissionDeniedError      (403)
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches


class ShipyardError(Exception):
    """Root of every error a user of Shipyard can act on."""

    http_status: int = 500
    exit_code: int = 1
    code: str = "internal_error"
    headline: str = "Shipyard error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message}\nHint: {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict[str, str]:
        """The JSON error body the platform server sends."""
        return {"code": self.code, "message": str(self)}


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix when a close match exists, else ''."""
    match = get_close_matches(value, list(choices), n=1)
    return f" Did you mean '{match[0]}'?" if match else ""


class ConfigError(ShipyardError):
    http_status = 500
    exit_code = 78
    code = "config_error"
    headline = "Configuration error"


class InvalidArgumentError(ShipyardError):
    http_status = 400
    exit_code = 2
    code = "invalid_argument"
    headline = "Invalid argument"


class FilterSyntaxError(InvalidArgumentError):
    code = "invalid_filter"
    headline = "Invalid filter"


class PipelineError(ShipyardError):
    http_status = 400
    code = "pipeline_error"
    headline = "Pipeline error"


class PipelineDefinitionError(PipelineError):
    code = "invalid_pipeline"


class StepFailedError(PipelineError):
    http_status = 500
    code = "step_failed"


class CompileError(ShipyardError):
    http_status = 400
    code = "compile_error"
    headline = "Compile error"


class NotSupportedError(CompileError):
    code = "not_supported"


class NotFoundError(ShipyardError):
    http_status = 404
    exit_code = 3
    code = "not_found"
    headline = "Not found"


class ExperimentNotFoundError(NotFoundError):
    code = "experiment_not_found"

    def __init__(self, experiment: str, workspace: str = "default") -> None:
        super().__init__(
            f"Experiment '{experiment}' does not exist in workspace '{workspace}'.",
            hint="List experiments with `shipyard experiments list` or create it first.",
        )


class RunNotFoundError(NotFoundError):
    code = "run_not_found"

    def __init__(self, run_id: str, workspace: str = "default") -> None:
        super().__init__(
            f"Run '{run_id}' does not exist in workspace '{workspace}'.",
            hint="List runs with `shipyard runs list`.",
        )


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class ArtifactNotFoundError(NotFoundError):
    code = "artifact_not_found"


class FeatureViewNotFoundError(NotFoundError):
    code = "feature_view_not_found"


class ConflictError(ShipyardError):
    http_status = 409
    exit_code = 4
    code = "conflict"
    headline = "Conflict"


class PromotionRefusedError(ConflictError):
    code = "promotion_refused"
    headline = "Promotion refused"

    def __init__(self, model: str, alias: str, version: int, failing: list[str]) -> None:
        self.failing = failing
        terms = "; ".join(failing)
        super().__init__(
            f"Version {version} of model '{model}' may not become @{alias}: "
            f"gate failed on {terms}.",
            hint="Improve the model, or change the gate with `shipyard models gate`.",
        )


class IntegrityError(ShipyardError):
    http_status = 500
    exit_code = 5
    code = "integrity_error"
    headline = "Integrity error"


class BackendError(ShipyardError):
    http_status = 503
    exit_code = 6
    code = "backend_error"
    headline = "Backend error"


class AuthError(ShipyardError):
    http_status = 401
    exit_code = 7
    code = "unauthenticated"
    headline = "Authentication required"


class InvalidTokenError(AuthError):
    code = "invalid_token"


class PermissionDeniedError(AuthError):
    http_status = 403
    code = "permission_denied"
    headline = "Permission denied"
