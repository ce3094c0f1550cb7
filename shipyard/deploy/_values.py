"""Kubernetes value formats the deployment spec checks: quantities, names, images, durations."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from shipyard.errors import InvalidArgumentError

__all__ = ["DURATION", "check_image", "check_label", "dns_name", "parse_quantity"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")
_SUFFIX = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
DURATION = re.compile(r"^\d+(ms|s|m|h)$")


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes resource quantity (``500m``, ``4Gi``, ``1e3``) as a number.

    Raises:
        ValueError: ``text`` is not a quantity.
    """
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number) * Decimal(10) ** int(suffix[1:])
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, KeyError) as exc:  # pragma: no cover - the regex guards this
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from exc


def dns_name(text: str, *, max_length: int = 63) -> str:
    """``text`` as a DNS-1123 label (``Churn_Model v2`` -> ``churn-model-v2``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)[:max_length].rstrip("-")
    if not name:
        raise InvalidArgumentError(
            f"Cannot make a Kubernetes name out of {text!r}.",
            hint="Set name: in the deployment spec (lowercase letters, digits and '-').",
        )
    return name


def check_label(value: str, what: str = "name") -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes {what}: use at most 63 lowercase letters, "
            "digits and '-', starting and ending with a letter or digit"
        )
    return value


_IMAGE_REF = re.compile(r"^[a-z0-9]+(?:[._/:@-][A-Za-z0-9_.-]+)*$")


def check_image(value: str) -> str:
    if not _IMAGE_REF.match(value):
        raise ValueError(f"{value!r} is not an image reference (e.g. registry/org/image:1.2.3)")
    tail = value.rsplit("/", 1)[-1]
    if "@" not in value and (":" not in tail or tail.endswith(":latest")):
        raise ValueError(
            f"image {value!r} has no pinned tag; use an explicit version (e.g. :1.2.3), "
            "since ':latest' makes rollouts unreproducible"
        )
    return value
