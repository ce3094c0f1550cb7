"""Dockerfiles for the model-server and platform images, rendered next to the manifests.

Both images run as a non-root user on a pinned Python base and install Shipyard with only
the extras they need: the model server gets its model flavor's extra (and the flavor
library pinned to the version the model was saved with), plus gRPC for OIP V2.
"""

from __future__ import annotations

from shipyard import __version__

__all__ = ["FLAVOR_EXTRAS", "PYTHON_BASE", "model_server_dockerfile", "platform_dockerfile"]

#: Pinned base image: a full patch version on a named Debian release, never a moving tag.
PYTHON_BASE = "python:3.11.11-slim-bookworm"

#: Model flavor -> Shipyard extra that installs its library.
FLAVOR_EXTRAS: dict[str, str | None] = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "torch": "torch",
    "onnx": "onnx",
    "pyfunc": None,
}

#: Flavor -> the distribution whose version the model manifest records.
_FLAVOR_DISTS = {
    "sklearn": "scikit-learn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "torch": "torch",
    "onnx": "onnx",
}


def _header(uid: int) -> str:
    return f"""# syntax=docker/dockerfile:1
FROM {PYTHON_BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    SHIPYARD_HOME=/var/lib/shipyard

RUN groupadd --system --gid {uid} shipyard \\
 && useradd --system --uid {uid} --gid {uid} --no-create-home --shell /usr/sbin/nologin shipyard \\
 && mkdir -p /var/lib/shipyard && chown {uid}:{uid} /var/lib/shipyard
"""


def _pip_line(extras: list[str], pins: list[str], version: str) -> str:
    extra = f"[{','.join(sorted(set(extras)))}]" if extras else ""
    packages = [f'"shipyard{extra}=={version}"', *(f'"{p}"' for p in pins)]
    return "RUN pip install " + " ".join(packages) + "\n"


def model_server_dockerfile(
    flavor: str | None,
    *,
    flavor_version: str | None = None,
    http_port: int = 8080,
    grpc_port: int | None = 8001,
    uid: int = 10001,
    version: str = __version__,
) -> str:
    """The model-server image: ``shipyard serve`` with the extra for ``flavor``.

    Args:
        flavor: the model's flavor (``sklearn``, ``onnx``, ...); None installs no ML library.
        flavor_version: the flavor library's version recorded in the model manifest; it
            is pinned so the server unpickles with the library that saved the model.
    """
    extras = ["grpc"]
    extra = FLAVOR_EXTRAS.get(flavor or "")
    if extra:
        extras.append(extra)
    pins = []
    dist = _FLAVOR_DISTS.get(flavor or "")
    if dist and flavor_version:
        pins.append(f"{dist}=={flavor_version}")
    ports = f"{http_port}" + (f" {grpc_port}" if grpc_port else "")
    return (
        _header(uid)
        + "\n"
        + _pip_line(extras, pins, version)
        + f"""
USER {uid}:{uid}
WORKDIR /var/lib/shipyard
EXPOSE {ports}
# The Deployment passes `serve models:/<name>@<alias> --port ...`: the model is fetched from
# the registry at start, so one image serves every version of every model of this flavor.
ENTRYPOINT ["shipyard"]
CMD ["serve", "--help"]
"""
    )


def platform_dockerfile(*, port: int = 5005, uid: int = 10001, version: str = __version__) -> str:
    """The platform-server image: ``shipyard server`` with PostgreSQL and S3 drivers."""
    return (
        _header(uid)
        + "\n"
        + _pip_line(["postgres", "s3"], [], version)
        + f"""
USER {uid}:{uid}
WORKDIR /var/lib/shipyard
EXPOSE {port}
ENTRYPOINT ["shipyard"]
CMD ["server", "--host", "0.0.0.0", "--port", "{port}"]
"""
    )
