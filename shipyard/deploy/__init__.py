"""Deployment artifacts: Kubernetes manifests, Dockerfiles and Triton model repositories."""
