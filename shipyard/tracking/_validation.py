"""Input checks shared by tracking backends: key and value limits, run statuses, artifact
paths, dataset inputs, ``max_results`` and page tokens.

Each check returns the accepted value or raises an InvalidArgumentError that shows the bad
value and says what is accepted.
"""

from __future__ import annotations

import base64
import binascii
import json
import numbers
import re

from shipyard.errors import InvalidArgumentError
from shipyard.tracking.entities import DatasetInput, Metric, RunStatus

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_NAME_LENGTH = 256
MAX_BATCH_METRICS = 50_000
MAX_BATCH_PARAMS = 1_000
MAX_BATCH_TAGS = 1_000
MAX_RESULTS = 50_000
_KEY = re.compile(r"^[A-Za-z0-9_\-. /]+$")


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    """The offset in an opaque page token; InvalidArgumentError when it is not ours."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        offset = None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidArgumentError(
            f"Invalid page_token {token!r}.",
            hint="Pass the next_page_token of the previous page unchanged, or omit it.",
        )
    return offset


def check_max_results(max_results: int) -> None:
    if isinstance(max_results, bool) or not isinstance(max_results, int):
        raise InvalidArgumentError(f"max_results must be an integer, got {max_results!r}.")
    if not 1 <= max_results <= MAX_RESULTS:
        raise InvalidArgumentError(
            f"max_results must be between 1 and {MAX_RESULTS}, got {max_results}.",
            hint="Page through larger results with next_page_token.",
        )


def check_key(key: object, what: str) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or not _KEY.match(key):
        raise InvalidArgumentError(
            f"Invalid {what} key {key!r}.",
            hint=f"Use 1-{MAX_KEY_LENGTH} letters, digits, spaces or the characters _ - . /.",
        )
    return key


def check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise InvalidArgumentError(
            f"Invalid {what} name {name!r}.",
            hint=f"Use a non-empty name of at most {MAX_NAME_LENGTH} characters.",
        )
    return name


def check_value(key: str, value: object, limit: int, what: str) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        raise InvalidArgumentError(
            f"Value of {what} '{key}' has {len(text)} characters; the limit is {limit}.",
            hint="Store long values as an artifact instead.",
        )
    return text


def metric_value(metric: Metric) -> float:
    value = metric.value
    if type(value) is float:  # the common case, checked first on the hot path
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgumentError(
            f"Metric '{metric.key}' has value {value!r} ({type(value).__name__}); metric "
            "values must be numbers.",
            hint="Log text as a param or a tag.",
        )
    return float(value)


def metric_int(metric: Metric, name: str) -> int:
    value = getattr(metric, name)
    if type(value) is int:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(
            f"Metric '{metric.key}' has {name} {value!r}; it must be an integer."
        )
    return int(value)


def run_status(value: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        raise InvalidArgumentError(
            f"Invalid run status {value!r}; use one of {', '.join(s.value for s in RunStatus)}."
        ) from None


def clean_artifact_path(path: str) -> str:
    cleaned = path.strip("/")
    parts = cleaned.split("/") if cleaned else []
    if "\\" in path or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        raise InvalidArgumentError(
            f"Invalid artifact path {path!r}.",
            hint="Use a relative path with '/' separators and no '.' or '..' parts.",
        )
    return cleaned


def check_dataset_input(item: DatasetInput) -> DatasetInput:
    dataset = item.dataset
    check_name(dataset.name, "dataset")
    limits = {"digest": 64, "source_type": 32}
    for attribute, limit in limits.items():
        value = getattr(dataset, attribute)
        if (
            not isinstance(value, str)
            or len(value) > limit
            or (attribute == "digest" and not value)
        ):
            raise InvalidArgumentError(
                f"Dataset '{dataset.name}' has an invalid {attribute} {value!r}.",
                hint=f"Use a non-empty string of at most {limit} characters."
                if attribute == "digest"
                else f"Use at most {limit} characters.",
            )
    if not isinstance(item.context, str) or len(item.context) > 64:
        raise InvalidArgumentError(
            f"Invalid input context {item.context!r} for dataset '{dataset.name}'.",
            hint="Use a short label such as 'training' (at most 64 characters).",
        )
    return item
