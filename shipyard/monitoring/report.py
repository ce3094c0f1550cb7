"""Drift reports: one self-contained HTML page (inline SVG, no script, no external link) and
the same content as JSON.

Per column: reference and current distributions side by side (shared bins for numeric
columns, the most frequent categories for categorical ones), the test used, its score and
threshold, the verdict, and data quality (missing share, values outside the reference's
range, new categories). The reference may be raw data, a prepared Reference or a Profile:
the charts of a profiled column come from its quantile sketch.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.monitoring.columns import (
    CategoricalSample,
    ColumnSample,
    NumericSample,
    column_sample,
    table_columns,
)
from shipyard.monitoring.drift import DEFAULT_DRIFT_SHARE, DatasetDrift, detect_drift
from shipyard.monitoring.profiles import Profile
from shipyard.monitoring.quality import ColumnQuality, column_quality
from shipyard.monitoring.reference import Reference

__all__ = ["DriftReport", "build_report"]

_BINS = 30
_TOP_CATEGORIES = 20
_REF_COLOR = "#4C78A8"
_CUR_COLOR = "#F58518"


@dataclass(frozen=True)
class DriftReport:
    """A computed drift report; render it with :meth:`to_html` / :meth:`to_dict`."""

    title: str
    drift: DatasetDrift
    quality: Mapping[str, ColumnQuality]
    charts: Mapping[str, dict[str, Any]]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Everything in the report, JSON-able."""
        columns = []
        for r in self.drift.columns:
            q = self.quality.get(r.column)
            columns.append(
                {
                    "column": r.column,
                    "kind": r.kind,
                    "test": r.test,
                    "score": r.score,
                    "threshold": r.threshold,
                    "drifted": r.drifted,
                    "statistic": r.statistic,
                    "p_value": r.p_value,
                    "n_reference": r.n_reference,
                    "n_current": r.n_current,
                    "missing_reference": r.missing_reference,
                    "missing_current": r.missing_current,
                    "out_of_range_share": q.out_of_range_share if q else None,
                    "new_category_share": q.new_category_share if q else None,
                    "new_categories": [str(c) for c in q.new_categories] if q else [],
                    "chart": self.charts.get(r.column),
                }
            )
        return {
            "title": self.title,
            "created_at": self.created_at.isoformat(timespec="seconds"),
            "meta": dict(self.meta),
            "dataset": {
                "drifted": self.drift.drifted,
                "share_drifted": self.drift.share_drifted,
                "n_drifted": self.drift.n_drifted,
                "n_columns": len(self.drift.columns),
                "drift_share": self.drift.drift_share,
            },
            "columns": columns,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=str)

    def to_html(self) -> str:
        """The report as one HTML page with inline CSS and SVG."""
        return _render(self)

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``report.html`` and ``report.json`` into ``out_dir``; returns both paths."""
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        html_path, json_path = folder / "report.html", folder / "report.json"
        html_path.write_text(self.to_html(), encoding="utf-8")
        json_path.write_text(self.to_json(), encoding="utf-8")
        return html_path, json_path


def _numeric_chart(ref: NumericSample, cur: NumericSample) -> dict[str, Any]:
    lo = min(ref.minimum, cur.minimum)
    hi = max(ref.maximum, cur.maximum)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, _BINS + 1)
    ref_share = ref.histogram(edges) / max(ref.n, 1)
    cur_share = cur.histogram(edges) / max(cur.n, 1)
    return {
        "type": "numeric",
        "edges": edges.tolist(),
        "reference": ref_share.tolist(),
        "current": cur_share.tolist(),
    }


def _categorical_chart(ref: CategoricalSample, cur: CategoricalSample) -> dict[str, Any]:
    labels, ref_counts, cur_counts = ref.align(cur)
    ref_share = ref_counts / max(ref.n, 1)
    cur_share = cur_counts / max(cur.n, 1)
    order = np.argsort(-(ref_share + cur_share), kind="stable")[:_TOP_CATEGORIES]
    return {
        "type": "categorical",
        "labels": [str(x) for x in labels[order].tolist()],
        "reference": ref_share[order].tolist(),
        "current": cur_share[order].tolist(),
        "other_categories": int(max(labels.size - order.size, 0)),
    }


def build_report(
    reference: Any,
    current: Any,
    *,
    title: str = "Drift report",
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = DEFAULT_DRIFT_SHARE,
    meta: Mapping[str, Any] | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` and collect what the report shows.

    Args:
        reference: A table, a :class:`Reference` or a :class:`Profile`.
        current: A table.
        title: The page title.
        columns: Columns to compare (default: every reference column in ``current``).
        categorical: Columns to treat as categorical (raw tables).
        numeric: Columns to treat as numeric (raw tables).
        tests: Column to test name, overriding the default choice.
        thresholds: Column to threshold.
        drift_share: Share of drifted columns at which the dataset counts as drifted.
        meta: Extra facts shown at the top (model, version, window...).
    """
    if isinstance(reference, Profile):
        prepared = reference.reference()
    elif isinstance(reference, Reference):
        prepared = reference
    else:
        prepared = Reference.from_data(reference, categorical=categorical, numeric=numeric)
    table = table_columns(current)
    names = list(columns) if columns is not None else [c for c in prepared if c in table]
    samples: dict[str, ColumnSample] = {
        c: column_sample(table[c], name=c, kind=prepared.kind(c).value) for c in names if c in table
    }
    drift = detect_drift(
        prepared,
        samples,
        columns=names,
        tests=tests,
        thresholds=thresholds,
        drift_share=drift_share,
    )
    quality = {c: column_quality(prepared[c], samples[c]) for c in names}
    charts: dict[str, dict[str, Any]] = {}
    for c in names:
        ref, cur = prepared[c], samples[c]
        if ref.n == 0 or cur.n == 0:
            continue
        if isinstance(ref, NumericSample) and isinstance(cur, NumericSample):
            charts[c] = _numeric_chart(ref, cur)
        elif isinstance(ref, CategoricalSample) and isinstance(cur, CategoricalSample):
            charts[c] = _categorical_chart(ref, cur)
    return DriftReport(title, drift, quality, charts, meta=dict(meta or {}))


# --- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}
.meta{color:#666;font-size:13px;margin-bottom:16px}
.summary{padding:12px 16px;border-radius:6px;margin-bottom:20px;font-size:15px}
.drifted{background:#fdecea;border:1px solid #f5c2c0}
.stable{background:#e8f5e9;border:1px solid #b7dfb9}
table{border-collapse:collapse;font-size:13px;margin-bottom:24px}
th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.yes{color:#b71c1c;font-weight:600}.no{color:#2e7d32}
.cards{display:flex;flex-wrap:wrap;gap:16px}
.card{border:1px solid #ddd;border-radius:6px;padding:10px;width:380px}
.card h3{font-size:14px;margin:0 0 6px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.small{font-size:12px;color:#555}
"""


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def _svg(chart: Mapping[str, Any]) -> str:
    width, height, pad = 360, 150, 24
    ref = np.asarray(chart["reference"], dtype=float)
    cur = np.asarray(chart["current"], dtype=float)
    k = ref.size
    if k == 0:
        return ""
    top = float(max(ref.max(initial=0), cur.max(initial=0))) or 1.0
    slot = (width - 2 * pad) / k
    bar = max(slot / 2 - 0.5, 0.5)
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#999" stroke-width="1"/>',
    ]
    scale = (height - 2 * pad) / top
    for i in range(k):
        x = pad + i * slot
        for offset, value, color, side in (
            (0.0, ref[i], _REF_COLOR, "reference"),
            (bar, cur[i], _CUR_COLOR, "current"),
        ):
            h = value * scale
            parts.append(
                f'<rect x="{x + offset:.2f}" y="{height - pad - h:.2f}" width="{bar:.2f}" '
                f'height="{h:.2f}" fill="{color}"><title>{side}: {value:.3%}</title></rect>'
            )
    if chart["type"] == "numeric":
        edges = chart["edges"]
        parts.append(
            f'<text x="{pad}" y="{height - 6}" font-size="10" fill="#555">{edges[0]:.4g}</text>'
        )
        parts.append(
            f'<text x="{width - pad}" y="{height - 6}" font-size="10" fill="#555" '
            f'text-anchor="end">{edges[-1]:.4g}</text>'
        )
    else:
        labels = chart["labels"]
        for i, label in enumerate(labels[:12]):
            x = pad + i * slot + slot / 2
            parts.append(
                f'<text x="{x:.1f}" y="{height - 10}" font-size="9" fill="#555" '
                f'text-anchor="middle">{html.escape(label[:8])}</text>'
            )
    parts.append(
        f'<text x="{pad}" y="14" font-size="10" fill="#555">max share {top:.3g}</text></svg>'
    )
    return "".join(parts)


def _render(report: DriftReport) -> str:
    data = report.to_dict()
    ds = data["dataset"]
    esc = html.escape
    verdict = "Dataset drift detected" if ds["drifted"] else "No dataset drift"
    rows = []
    cards = []
    for c in data["columns"]:
        new = ", ".join(c["new_categories"][:5])
        rows.append(
            "<tr>"
            f"<td>{esc(c['column'])}</td><td>{esc(c['kind'])}</td><td>{esc(c['test'])}</td>"
            f"<td class='num'>{_fmt(c['score'])}</td><td class='num'>{_fmt(c['threshold'])}</td>"
            f"<td class='{'yes' if c['drifted'] else 'no'}'>"
            f"{'drifted' if c['drifted'] else 'stable'}</td>"
            f"<td class='num'>{_fmt(c['missing_current'])}</td>"
            f"<td class='num'>{_fmt(c['out_of_range_share'])}</td>"
            f"<td class='num'>{_fmt(c['new_category_share'])}</td>"
            f"<td>{esc(new)}</td></tr>"
        )
        chart = c["chart"]
        if chart:
            extra = ""
            if chart["type"] == "categorical" and chart["other_categories"]:
                extra = f" ({chart['other_categories']} more categories not drawn)"
            cards.append(
                "<div class='card'>"
                f"<h3>{esc(c['column'])} <span class='{'yes' if c['drifted'] else 'no'}'>"
                f"{'drifted' if c['drifted'] else 'stable'}</span></h3>"
                f"<div class='small'>{esc(c['test'])}: score {_fmt(c['score'])}, threshold "
                f"{_fmt(c['threshold'])}; n = {c['n_reference']:,} / {c['n_current']:,}"
                f"{esc(extra)}</div>"
                f"{_svg(chart)}</div>"
            )
    meta = " · ".join(f"{esc(str(k))}: {esc(str(v))}" for k, v in data["meta"].items())
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(data['title'])}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(data['title'])}</h1>"
        f"<div class='meta'>Created {esc(data['created_at'])}"
        f"{' · ' + meta if meta else ''}</div>"
        f"<div class='summary {'drifted' if ds['drifted'] else 'stable'}'><b>{verdict}</b>: "
        f"{ds['n_drifted']} of {ds['n_columns']} columns drifted "
        f"({ds['share_drifted']:.0%}; the dataset drifts at {ds['drift_share']:.0%}).</div>"
        "<table><thead><tr><th>column</th><th>kind</th><th>test</th><th>score</th>"
        "<th>threshold</th><th>verdict</th><th>missing</th><th>out of range</th>"
        "<th>new categories</th><th>examples</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        f"<div class='legend small'>Distributions:<span style='background:{_REF_COLOR}'>"
        f"</span>reference<span style='background:{_CUR_COLOR}'></span>current</div>"
        f"<div class='cards'>{''.join(cards)}</div></body></html>"
    )
