"""Model quality once the ground truth arrives: classification and regression metrics as
pure numpy functions (scikit-learn is an optional extra; the tests compare with it).

Classification: accuracy, and precision / recall / F1 of the positive class for two
classes (label 1, else the larger label; sklearn's ``average="binary"``) or their macro
average for more (``average="macro"``); ROC-AUC for two classes when positive-class scores
are known. A precision or recall with an empty denominator is 0, as sklearn's
``zero_division`` default gives. Regression: RMSE and MAE.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.errors import InvalidArgumentError

__all__ = [
    "classification_metrics",
    "infer_task",
    "positive_scores",
    "regression_metrics",
    "roc_auc",
]

#: Labels and predictions with at most this many distinct integral values are classes.
_MAX_CLASSES = 50


def infer_task(y_true: Any, y_pred: Any) -> str:
    """``"classification"`` when labels and predictions look like classes, else
    ``"regression"``: strings, bools, or at most 50 distinct whole numbers."""
    both = np.concatenate([np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()])
    if both.dtype.kind in "OUSb":
        return "classification"
    values = both.astype(np.float64)
    values = values[np.isfinite(values)]
    integral = values.size and np.all(values == np.round(values))
    if integral and np.unique(values).size <= _MAX_CLASSES:
        return "classification"
    return "regression"


def _safe_div(a: float, b: float) -> float:
    return a / b if b else 0.0


def _positive(labels: np.ndarray) -> Any:
    """The positive class: 1 for 0/1 (or bool) labels, as sklearn's ``pos_label=1``,
    even when only 0 occurs; otherwise "1" if present, else the largest label."""
    values = labels.tolist()
    if all(isinstance(v, bool | int | float) and v in (0, 1) for v in values):
        return 1
    return "1" if "1" in values else max(values)


def classification_metrics(y_true: Any, y_pred: Any, scores: Any | None = None) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (and ROC-AUC for two classes with ``scores``).

    Args:
        y_true: True labels.
        y_pred: Predicted labels, aligned.
        scores: Positive-class scores (probabilities), aligned; optional.

    Returns:
        Metric name to value; empty for empty input.
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape:
        raise InvalidArgumentError(f"Labels {t.shape} and predictions {p.shape} differ in shape.")
    if t.size == 0:
        return {}
    if t.dtype.kind != p.dtype.kind and "O" not in (t.dtype.kind, p.dtype.kind):
        t, p = t.astype(np.float64), p.astype(np.float64)
    labels = np.unique(np.concatenate([t, p]))
    out = {"accuracy": float(np.mean(t == p))}
    if labels.size <= 2:
        pos = _positive(labels)
        tp = float(np.sum((p == pos) & (t == pos)))
        fp = float(np.sum((p == pos) & (t != pos)))
        fn = float(np.sum((p != pos) & (t == pos)))
        precision, recall = _safe_div(tp, tp + fp), _safe_div(tp, tp + fn)
        out |= {
            "precision": precision,
            "recall": recall,
            "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
        }
        if scores is not None:
            auc = roc_auc(t == pos, scores)
            if auc is not None:
                out["roc_auc"] = auc
        return out
    precisions, recalls, f1s = [], [], []
    for label in labels:
        tp = float(np.sum((p == label) & (t == label)))
        fp = float(np.sum((p == label) & (t != label)))
        fn = float(np.sum((p != label) & (t == label)))
        precisions.append(_safe_div(tp, tp + fp))
        recalls.append(_safe_div(tp, tp + fn))
        f1s.append(_safe_div(2 * tp, 2 * tp + fp + fn))
    out |= {
        "precision": float(np.mean(precisions)),
        "recall": float(np.mean(recalls)),
        "f1": float(np.mean(f1s)),
    }
    return out


def roc_auc(is_positive: Any, scores: Any) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); None when
    only one class is present or a score is missing."""
    from scipy.stats import rankdata

    y = np.asarray(is_positive, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0 or not np.all(np.isfinite(s)):
        return None
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def positive_scores(prediction: Any, confidence: Any, positive: Any) -> np.ndarray:
    """Positive-class scores from the log's confidence, the probability of the *predicted*
    class: ``confidence`` where the prediction is positive, ``1 - confidence`` elsewhere."""
    c = np.asarray(confidence, dtype=np.float64)
    return np.where(np.asarray(prediction) == positive, c, 1.0 - c)


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """RMSE and MAE; empty for empty input."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise InvalidArgumentError(f"Labels {t.shape} and predictions {p.shape} differ in shape.")
    if t.size == 0:
        return {}
    err = p - t
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}
