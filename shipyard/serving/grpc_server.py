"""Open Inference Protocol V2 over gRPC: ``inference.GRPCInferenceService``.

The service definition and messages are the generated stubs that ship in
``tritonclient[grpc]``, so Triton's and KServe's gRPC clients work unchanged. Models come
from the same :class:`~shipyard.serving.repository.ModelRepository` as the HTTP server;
``RepositoryModelLoad`` loads a registered model by name (its latest version, as Triton's
default version policy does), by ``name@alias``, or by the ``uri`` parameter.

Start it with ``shipyard serve models:/name@alias --grpc-port 8001`` or in Python::

    server = serve_grpc(repository, 8001)
    ...
    server.stop(grace=5)
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from concurrent import futures
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.errors import ConfigError, InvalidArgumentError, ShipyardError
from shipyard.serving.protocol import DATATYPES, datatype_of

if TYPE_CHECKING:
    import grpc

    from shipyard.security import SecurityService
    from shipyard.serving.repository import ModelRepository, ServedModel

__all__ = ["Authorize", "GrpcInferenceService", "security_authorizer", "serve_grpc"]

logger = logging.getLogger("shipyard.serving.grpc")

#: ``authorize(authorization header, resource, action, model name or None)``.
Authorize = Callable[[str | None, str, str, str | None], None]

#: Messages above this size are refused (a request carries whole batches of tensors).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

#: InferTensorContents field holding each OIP datatype's typed values.
_TYPED_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

_STATUS_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "FAILED_PRECONDITION",
    413: "RESOURCE_EXHAUSTED",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}


def _stubs() -> tuple[Any, Any, Any]:
    try:
        import grpc  # noqa: F401
        from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc
    except ImportError as exc:
        raise ConfigError(
            "OIP V2 over gRPC needs grpcio and tritonclient[grpc].",
            hint='Run `pip install "shipyard[grpc]"`.',
        ) from exc
    return service_pb2, service_pb2_grpc, model_config_pb2


def _decode_bytes(raw: bytes, count: int, name: str) -> np.ndarray:
    """Triton's serialized BYTES: each element a 4-byte little-endian length, then bytes."""
    values: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidArgumentError(f"input '{name}': truncated BYTES element length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidArgumentError(f"input '{name}': truncated BYTES element")
        values.append(raw[offset : offset + length])
        offset += length
    if len(values) != count:
        raise InvalidArgumentError(
            f"input '{name}': shape holds {count} values but data has {len(values)}"
        )
    array = np.empty(count, dtype=object)
    array[:] = values
    return array


def _encode(array: np.ndarray) -> tuple[str, bytes]:
    """An output array as (OIP datatype, raw little-endian bytes)."""
    if array.dtype.kind in "OUS":
        parts = []
        for value in array.ravel().tolist():
            raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)) + raw)
        return "BYTES", b"".join(parts)
    datatype = datatype_of(array.dtype)
    return datatype, np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def decode_input(tensor: Any, raw: bytes | None) -> np.ndarray:
    """One ``ModelInferRequest.InferInputTensor`` as a numpy array of its shape.

    Args:
        tensor: the tensor message (name, datatype, shape, maybe typed ``contents``).
        raw: its ``raw_input_contents`` entry, when the client sent raw bytes.

    Raises:
        InvalidArgumentError: unknown datatype, or data that does not fill the shape.
    """
    name, datatype = tensor.name, tensor.datatype
    shape = [int(d) for d in tensor.shape]
    if datatype not in DATATYPES:
        raise InvalidArgumentError(
            f"input '{name}': unknown datatype {datatype!r}; use one of {', '.join(DATATYPES)}."
        )
    if any(d < 0 for d in shape):
        raise InvalidArgumentError(f"input '{name}': shape {shape} has a negative dimension.")
    count = int(np.prod(shape)) if shape else 1
    if raw is not None:
        if datatype == "BYTES":
            return _decode_bytes(raw, count, name).reshape(shape)
        dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
        if len(raw) != count * dtype.itemsize:
            raise InvalidArgumentError(
                f"input '{name}': shape {shape} of {datatype} needs {count * dtype.itemsize} "
                f"bytes, got {len(raw)}."
            )
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    field = _TYPED_FIELDS.get(datatype)
    if field is None:
        raise InvalidArgumentError(
            f"input '{name}': {datatype} has no typed contents in OIP; send raw_input_contents."
        )
    values = list(getattr(tensor.contents, field))
    if len(values) != count:
        raise InvalidArgumentError(
            f"input '{name}': shape {shape} holds {count} values but contents has {len(values)}."
        )
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = values
        return array.reshape(shape)
    return np.asarray(values, dtype=DATATYPES[datatype]).reshape(shape)


def _config_type(datatype: str) -> str:
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def _output_aliases(served: ServedModel) -> dict[str, str]:
    """Signature output names -> served output names, for clients that use the former
    (a model logged with outputs named ``output_1`` answers to ``output_1``)."""
    signature = served.signature
    aliases: dict[str, str] = {}
    if signature is None:
        return aliases
    for spec, served_name in zip(signature.outputs, served.output_names, strict=False):
        if spec.name and spec.name not in served.output_names:
            aliases[spec.name] = served_name
    return aliases


class GrpcInferenceService:
    """The servicer: each RPC reads the repository, so loads and unloads show at once.

    Args:
        repository: the models to serve.
        authorize: ``authorize(authorization, resource, action, model)`` is called before
            every RPC but the health checks, with the request's ``authorization`` metadata
            (or None); it raises an ``AuthError`` to refuse. Inference needs
            ``predictions:invoke``, metadata ``models:read``, load/unload ``models:write``,
            the same permissions as over HTTP.
    """

    def __init__(self, repository: ModelRepository, *, authorize: Authorize | None = None) -> None:
        self.repository = repository
        self.authorize = authorize
        self.pb, _, self.config_pb = _stubs()

    # -- plumbing --------------------------------------------------------------------------

    def _guard(
        self,
        context: grpc.ServicerContext,
        call: Callable[[], Any],
        permission: tuple[str, str, str | None] | None,
    ) -> Any:
        import grpc

        try:
            if permission is not None and self.authorize is not None:
                metadata = dict(context.invocation_metadata() or ())
                self.authorize(metadata.get("authorization"), *permission)
            return call()
        except ShipyardError as exc:
            code = getattr(grpc.StatusCode, _STATUS_CODES.get(exc.http_status, "INTERNAL"))
            context.abort(code, str(exc))
        except Exception:
            logger.exception("gRPC call failed")
            context.abort(grpc.StatusCode.INTERNAL, "Internal error in the model server.")

    # -- health and metadata ----------------------------------------------------------------

    def ServerLive(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: grpc.ServicerContext) -> Any:
        ready = all(self.repository.ready(m.name, m.version) for m in self.repository.index())
        return self.pb.ServerReadyResponse(ready=ready)

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        from shipyard import __version__

        return self.pb.ServerMetadataResponse(
            name="shipyard",
            version=__version__,
            extensions=["model_repository", "model_configuration"],
        )

    def ModelReady(self, request: Any, context: grpc.ServicerContext) -> Any:
        ready = self.repository.ready(request.name, request.version or None)
        return self.pb.ModelReadyResponse(ready=ready)

    def _served(self, name: str, version: str) -> ServedModel:
        return self.repository.get(name, version or None)

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        def call() -> Any:
            served = self._served(request.name, request.version)
            tensor = self.pb.ModelMetadataResponse.TensorMetadata
            return self.pb.ModelMetadataResponse(
                name=served.name,
                versions=[served.version],
                platform=f"shipyard-{served.model.flavor}",
                inputs=[tensor(name=n, datatype=d, shape=s) for n, d, s in served.inputs],
                outputs=[tensor(name=n, datatype=d, shape=s) for n, d, s in served.outputs],
            )

        return self._guard(context, call, ("models", "read", request.name))

    def ModelConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        def call() -> Any:
            served = self._served(request.name, request.version)
            cfg = self.config_pb
            config = cfg.ModelConfig(
                name=served.name,
                platform=f"shipyard-{served.model.flavor}",
                backend="shipyard",
                max_batch_size=0,  # shapes below carry the batch dimension (-1) themselves
                version_policy=cfg.ModelVersionPolicy(
                    specific=cfg.ModelVersionPolicy.Specific(versions=[_int(served.version)])
                ),
                input=[
                    cfg.ModelInput(name=n, data_type=_config_type(d), dims=s)
                    for n, d, s in served.inputs
                ],
                output=[
                    cfg.ModelOutput(name=n, data_type=_config_type(d), dims=s)
                    for n, d, s in served.outputs
                ],
            )
            return self.pb.ModelConfigResponse(config=config)

        return self._guard(context, call, ("models", "read", request.name))

    # -- inference -------------------------------------------------------------------------

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> Any:
        permission = ("predictions", "invoke", request.model_name)
        return self._guard(context, lambda: self._infer(request), permission)

    def _infer(self, request: Any) -> Any:
        served = self._served(request.model_name, request.model_version)
        raws = list(request.raw_input_contents)
        if raws and len(raws) != len(request.inputs):
            raise InvalidArgumentError(
                f"raw_input_contents has {len(raws)} entries for {len(request.inputs)} inputs; "
                "send raw data for every input or for none."
            )
        inputs = {
            tensor.name: decode_input(tensor, raws[i] if raws else None)
            for i, tensor in enumerate(request.inputs)
        }
        aliases = _output_aliases(served)
        requested = [o.name for o in request.outputs]
        wanted = [aliases.get(name, name) for name in requested] or None
        results = served.infer(inputs, wanted)
        names = requested or list(results)
        response = self.pb.ModelInferResponse(
            model_name=served.name, model_version=served.version, id=request.id
        )
        for name in names:
            array = np.asarray(results[aliases.get(name, name)])
            datatype, raw = _encode(array)
            response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
            response.raw_output_contents.append(raw)
        return response

    # -- repository ------------------------------------------------------------------------

    def RepositoryIndex(self, request: Any, context: grpc.ServicerContext) -> Any:
        def call() -> Any:
            index = self.pb.RepositoryIndexResponse.ModelIndex
            return self.pb.RepositoryIndexResponse(
                models=[
                    index(name=m.name, version=m.version, state="READY")
                    for m in self.repository.index()
                ]
            )

        return self._guard(context, call, ("models", "read", None))

    def RepositoryModelLoad(self, request: Any, context: grpc.ServicerContext) -> Any:
        def call() -> Any:
            self._load(request.model_name, request.parameters)
            return self.pb.RepositoryModelLoadResponse()

        return self._guard(context, call, ("models", "write", request.model_name))

    def _load(self, name: str, parameters: Any) -> None:
        uri_param = parameters.get("uri") if parameters else None
        if uri_param is not None and uri_param.string_param:
            self.repository.load(uri_param.string_param, name=name or None)
        elif name.startswith("models:/"):
            self.repository.load(name)
        elif "@" in name:
            self.repository.load(f"models:/{name}")
        elif name in {m.name for m in self.repository.index()}:
            # Loading a served model reloads it: an alias picks up the version it names now.
            served = self.repository.get(name)
            self.repository.load(served.uri or f"models:/{name}/{served.version}", name=name)
        elif not name:
            raise InvalidArgumentError("RepositoryModelLoad needs a model_name.")
        else:
            self.repository.load(f"models:/{name}@latest", name=name)

    def RepositoryModelUnload(self, request: Any, context: grpc.ServicerContext) -> Any:
        def call() -> Any:
            self.repository.get(request.model_name)  # NOT_FOUND when it is not served
            self.repository.unload(request.model_name)
            return self.pb.RepositoryModelUnloadResponse()

        return self._guard(context, call, ("models", "write", request.model_name))


def _int(version: str) -> int:
    return int(version) if version.isdigit() else 0


def security_authorizer(security: SecurityService, workspace: str) -> Authorize:
    """An :data:`Authorize` that checks tokens and API keys like the HTTP model server."""

    def authorize(header: str | None, resource: str, action: str, name: str | None) -> None:
        principal = security.authenticate(header)
        security.authorize(principal, workspace, resource, action, name)

    return authorize


def serve_grpc(
    repository: ModelRepository,
    port: int,
    *,
    host: str = "127.0.0.1",
    max_workers: int = 8,
    authorize: Authorize | None = None,
    allow_unauthenticated_network: bool = False,
) -> grpc.Server:
    """Start OIP V2 over gRPC on ``host:port`` and return the running ``grpc.Server``.

    Args:
        repository: the models to serve (shared with the HTTP server).
        port: TCP port; Triton's default is 8001.
        host: bind address; ``0.0.0.0`` in a container.
        max_workers: threads answering RPCs.
        authorize: see :class:`GrpcInferenceService`; required off loopback.
        allow_unauthenticated_network: serve a network address without ``authorize``
            (only behind a proxy that authenticates every call).

    Raises:
        ConfigError: grpcio or tritonclient is missing, the port is taken, or a network
            address would be served without authorization.
    """
    from shipyard.server.auth import is_loopback

    if authorize is None and not is_loopback(host) and not allow_unauthenticated_network:
        raise ConfigError(
            f"Refusing to serve gRPC without authentication on {host!r}, a network address.",
            hint="Pass authorize= (shipyard serve does when auth is on), bind to 127.0.0.1, "
            "or set SHIPYARD_ALLOW_UNAUTHENTICATED_NETWORK=true behind an authenticating proxy.",
        )
    _, service_grpc, _ = _stubs()
    import grpc

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="shipyard-grpc"),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    # The generated base answers UNIMPLEMENTED for the RPCs not served here (statistics,
    # shared memory, tracing).
    servicer = type(
        "ShipyardInferenceServicer",
        (GrpcInferenceService, service_grpc.GRPCInferenceServiceServicer),
        {},
    )
    service_grpc.add_GRPCInferenceServiceServicer_to_server(
        servicer(repository, authorize=authorize), server
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError(
            f"Cannot listen for gRPC on {address}: {exc}", hint="Pick another --grpc-port."
        ) from exc
    if bound == 0:
        raise ConfigError(
            f"Cannot listen for gRPC on {address}: the port is taken.",
            hint="Pick another --grpc-port.",
        )
    server.start()
    logger.info("OIP V2 gRPC listening on %s", address)
    return server
