"""Rows of scores -> text: an aligned table, JSON with a fixed schema, or CSV.

JSON schema (``perceptlab score --format json``)::

    {
      "metrics": ["psnr", ...],
      "pairs": [{"reference": "...", "distorted": "...", "psnr": 27.01, ...}, ...],
      "mean": {"psnr": 25.1, ...},
      "unmatched": {"reference": [...], "distorted": [...]}
    }

Non-finite values (PSNR of identical images is +inf) are written as ``null``:
JSON has no infinity.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
from collections.abc import Sequence


def machine() -> str:
    """The CPU's model name and core count, for the hardware line of reports and model cards."""
    name = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            name = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def to_json(rows: Sequence[dict], mean: dict, metrics: Sequence[str], unmatched: dict | None = None) -> str:
    doc = {
        "metrics": list(metrics),
        "pairs": [{k: _finite(v) if isinstance(v, float) else v for k, v in row.items()} for row in rows],
        "mean": {k: _finite(v) for k, v in mean.items()},
        "unmatched": unmatched or {"reference": [], "distorted": []},
    }
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def to_csv(rows: Sequence[dict], mean: dict, metrics: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["reference", "distorted", *metrics])
    for row in rows:
        writer.writerow([row["reference"], row["distorted"], *(_fmt(row[m]) for m in metrics)])
    if len(rows) > 1:
        writer.writerow(["mean", "", *(_fmt(mean[m]) for m in metrics)])
    return out.getvalue()


def to_table(rows: Sequence[dict], mean: dict, metrics: Sequence[str]) -> str:
    """A plain-text table, one line per pair (named by the distorted file) and a mean line."""
    lines = [[row["distorted"], *(_fmt(row[m]) for m in metrics)] for row in rows]
    if len(rows) > 1:
        lines.append(["mean", *(_fmt(mean[m]) for m in metrics)])
    header = ["distorted", *metrics]
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    render = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([render(header), render(["-" * w for w in widths]), *map(render, lines)]) + "\n"


FORMATS = {"table": to_table, "csv": to_csv, "json": to_json}
