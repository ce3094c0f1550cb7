"""Deployment artifacts: Kubernetes manifests, Dockerfiles and Triton model repositories.

spec.py        ModelDeploymentSpec / PlatformSpec: typed, validated, YAML or Python
k8s.py         model-server objects (Deployment, Service, HPA, PDB, monitoring)
platform.py    platform-server objects (Deployment, Service, PDB, Ingress)
kustomize.py   base + per-environment overlays
dockerfiles.py model-server and platform images
triton.py      ONNX export, verified, plus config.pbtxt
cluster.py     diff and server-side apply through the Kubernetes client
render.py      one function per ``shipyard deploy render --target``
"""

from __future__ import annotations

from shipyard.deploy.spec import ModelDeploymentSpec, PlatformSpec, load_spec

__all__ = ["ModelDeploymentSpec", "PlatformSpec", "load_spec"]
