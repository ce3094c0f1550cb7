"""Client of a Shipyard model server: ``/predict`` and Open Inference Protocol V2."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shipyard.errors import (
    AuthError,
    BackendError,
    InvalidArgumentError,
    ModelNotFoundError,
    PermissionDeniedError,
    ShipyardError,
)
from shipyard.serving.protocol import datatype_of, dumps, loads, numpy_dtype

__all__ = ["Client"]

_BY_STATUS: dict[int, type[ShipyardError]] = {
    400: InvalidArgumentError,
    401: AuthError,
    403: PermissionDeniedError,
    404: ModelNotFoundError,
    413: InvalidArgumentError,
    422: InvalidArgumentError,
}


class Client:
    """Talks to ``shipyard serve``.

    Example::

        client = Client("http://127.0.0.1:8080")
        client.predict([0.1, 0.2, ...])              # one row -> {"prediction": ...}
        client.predict([[...], [...]])               # rows -> {"predictions": [...]}
        client.infer("fraud", {"input-0": X})        # OIP V2 -> {"predict": array, ...}
        client.metadata("fraud")

    Args:
        url: the server's base URL.
        token: bearer token (JWT or API key) when the server has auth on.
        timeout: seconds per request.
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        import httpx

        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        try:
            response = self._http.request(
                method, path, content=None if body is None else dumps(body)
            )
        except httpx.HTTPError as exc:
            raise BackendError(
                f"The model server at {self.url} did not answer: {exc}.",
                hint="Check that `shipyard serve` runs there.",
            ) from exc
        try:
            doc = loads(response.content) if response.content else {}
        except ValueError:
            doc = {"error": response.text}
        if response.status_code >= 400:
            error = doc.get("error") if isinstance(doc, dict) else None
            message = error.get("message") if isinstance(error, dict) else error
            cls = _BY_STATUS.get(response.status_code, BackendError)
            raised = cls(str(message or f"HTTP {response.status_code}"))
            raised.http_status = response.status_code
            retry = response.headers.get("retry-after")
            if retry is not None:
                raised.retry_after = int(retry)  # type: ignore[attr-defined]
            raise raised
        return doc

    def predict(
        self,
        data: Sequence[Any] | Mapping[str, Any],
        model: str | None = None,
        *,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """``POST /predict``: one row (a flat list or ``{feature: value}``) or rows.

        Returns:
            ``prediction``/``confidence`` for one row, ``predictions``/``confidences`` for
            several; with ``model``, ``model_version``, ``request_id``, ``processing_time_ms``.
        """
        if isinstance(data, np.ndarray):
            data = data.tolist()
        if isinstance(data, Mapping):
            body: dict[str, Any] = {"features": dict(data)}
        elif data and isinstance(data[0], list | tuple | dict | np.ndarray):
            body = {"instances": [list(r) if not isinstance(r, dict) else r for r in data]}
        else:
            body = {"features": list(data)}
        if model is not None:
            body["model"] = model
        if request_id is not None:
            body["id"] = request_id
        return self._call("POST", "/predict", body)  # type: ignore[no-any-return]

    def predict_entities(
        self, entities: Mapping[str, Any] | Sequence[Mapping[str, Any]], model: str | None = None
    ) -> dict[str, Any]:
        """``POST /predict`` with entity ids; the server reads their online features."""
        body: dict[str, Any] = {
            "entities": dict(entities) if isinstance(entities, Mapping) else list(entities)
        }
        if model is not None:
            body["model"] = model
        return self._call("POST", "/predict", body)  # type: ignore[no-any-return]

    def infer(
        self,
        model: str,
        inputs: Mapping[str, Any],
        outputs: Sequence[str] | None = None,
        *,
        version: str | None = None,
    ) -> dict[str, np.ndarray]:
        """OIP V2 inference: ``{input name: array}`` in, ``{output name: array}`` out."""
        tensors = []
        for name, value in inputs.items():
            array = np.asarray(value)
            datatype = datatype_of(array.dtype)
            data = array.ravel().tolist()
            if datatype == "BYTES":
                data = [v.decode() if isinstance(v, bytes) else str(v) for v in data]
            tensors.append(
                {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}
            )
        body: dict[str, Any] = {"inputs": tensors}
        if outputs:
            body["outputs"] = [{"name": o} for o in outputs]
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
        doc = self._call("POST", path, body)
        found = {}
        for tensor in doc.get("outputs", []):
            dtype = numpy_dtype(tensor["datatype"])
            found[tensor["name"]] = np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])
        return found

    def metadata(self, model: str | None = None, version: str | None = None) -> dict[str, Any]:
        """Server metadata (``/v2``), or a model's (``/v2/models/<model>``)."""
        if model is None:
            return self._call("GET", "/v2")  # type: ignore[no-any-return]
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
        return self._call("GET", path)  # type: ignore[no-any-return]

    def models(self) -> list[str]:
        """Names of the models the server serves."""
        return list(self._call("GET", "/health")["models"])

    def ready(self, model: str | None = None) -> bool:
        """Whether the server (or ``model``) is ready to answer."""
        path = "/v2/health/ready" if model is None else f"/v2/models/{model}/ready"
        try:
            self._call("GET", path)
        except ShipyardError:
            return False
        return True

    def metrics(self) -> str:
        """The Prometheus exposition text of ``/metrics``."""
        return str(self._http.get("/metrics").text)
