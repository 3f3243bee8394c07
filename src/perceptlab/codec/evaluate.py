"""Rate-distortion evaluation of codecs on an image folder: rows, mean RD curves, BD-rates, a report and plots.

Protocol: every image (read as 8-bit RGB) is encoded at every point of each
codec's sweep; the rate is the real size of what was written, ``8 * bytes /
pixels`` bits per pixel; every metric of the registry compares the decoded
8-bit image with the original (PSNR over RGB, data range 1). A codec's RD
curve is the mean bpp and the mean of each metric over the images, per point.
BD-rates (:mod:`perceptlab.codec.bd`, PCHIP) of every codec against the
anchor, for every metric, over the quality range both curves cover;
lower-is-better metrics (LPIPS) are negated first, which leaves BD-rate
unchanged and makes the curve rise with rate.

Learned codecs plug in beside the standard ones (:mod:`perceptlab.codec.classic`):
pass models with ``.name`` and ``.compress(x) -> bytes`` / ``.decompress(data) -> x_hat``
(NCHW tensors in [0, 1]), or callables ``x -> (bytes, x_hat)`` with a ``.name``;
models sharing a name form one curve, one RD point each (:func:`load_learned`
builds them from ``perceptlab.codec.load_codec_model``).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from perceptlab._files import atomic_write_text

DEFAULT_CODECS = ("jpeg", "webp", "avif", "jpeg2000", "jpegxl", "hevc")
DEFAULT_METRICS = ("psnr", "ms_ssim", "vmaf", "lpips")
DECODED_CONTEXT = {"scale": 1}  # what a measure of ``also`` may ask for: the decoded image is at its original's scale
PROTOCOL = (
    "images read as 8-bit RGB; each encoded at every point of the codec's sweep on one thread; "
    "bpp = 8 * encoded bytes / pixels (the whole file or stream each codec writes, see perceptlab.codec.classic); "
    "metrics (perceptlab.metrics registry) on the decoded 8-bit image against the original, PSNR over RGB; "
    "RD curve = mean bpp and mean metric over images per point; "
    "BD-rate (PCHIP, log-rate over quality) against the anchor over the common quality range, "
    "lower-is-better metrics negated"
)


@dataclass(frozen=True)
class _Curve:
    """One codec as the loop runs it: ``run(rgb, x, point) -> (bytes, x_hat, encode s, decode s)`` per point."""

    name: str
    points: tuple
    run: Callable
    info: dict


def _classic_curve(codec, points: Sequence[float], detail: str) -> _Curve:
    def run(rgb: np.ndarray, x: torch.Tensor, point: float):
        start = time.perf_counter()
        data = codec.encode(rgb, point)
        middle = time.perf_counter()
        decoded = codec.decode(data)
        end = time.perf_counter()
        if decoded.shape != rgb.shape:
            raise ValueError(f"{codec.name} decoded a {decoded.shape} image from a {rgb.shape} one")
        x_hat = torch.from_numpy(np.array(decoded)).permute(2, 0, 1).unsqueeze(0).float() / 255
        return len(data), x_hat, middle - start, end - middle

    info = {"kind": "classic", "settings": codec.settings, "detail": detail, "param": codec.param,
            "params": list(points)}  # fmt: skip
    return _Curve(codec.name, tuple(points), run, info)


def _learned_curve(name: str, models: Sequence) -> _Curve:
    def run(rgb: np.ndarray, x: torch.Tensor, model):
        start = time.perf_counter()
        if hasattr(model, "compress"):
            data = bytes(model.compress(x))
            middle = time.perf_counter()
            x_hat = model.decompress(data)
        else:
            data, x_hat = model(x)
            data, middle = bytes(data), time.perf_counter()
        end = time.perf_counter()
        if tuple(x_hat.shape) != tuple(x.shape):
            raise ValueError(f"{name} decoded a {tuple(x_hat.shape)} image from a {tuple(x.shape)} one")
        # What a saved PNG would hold, as for the standard codecs.
        x_hat = torch.round(x_hat.detach().float().cpu().clamp(0, 1) * 255) / 255
        return len(data), x_hat, middle - start, end - middle

    labels = [str(getattr(m, "label", i)) for i, m in enumerate(models)]
    if len(set(labels)) < len(labels):
        raise ValueError(f"the models of {name} need distinct labels, got {', '.join(labels)}")
    info = {"kind": "learned", "settings": "learned codec", "detail": "", "param": "model", "params": labels}
    return _Curve(name, tuple(models), run, info)


def _model_name(model) -> str:
    name = getattr(model, "name", None) or getattr(model, "__name__", None)
    if not name:
        raise ValueError(f"a learned codec needs a .name, got {type(model).__name__}")
    return str(name)


@torch.no_grad()
def evaluate_codecs(
    images_dir: str | Path,
    codecs: Sequence[str] = DEFAULT_CODECS,
    learned: Sequence = (),
    metrics: Sequence[str] = DEFAULT_METRICS,
    anchor: str = "jpeg",
    params: Mapping[str, Sequence[float]] | None = None,
    limit: int | None = None,
    method: str = "pchip",
    missing: Mapping[str, str] | None = None,
    progress: bool = False,
    also: Sequence[str] = (),
) -> dict:
    """Encode every image of ``images_dir`` with every codec at every point, score it, and compare the curves.

    Args:
        images_dir: folder of images (:func:`perceptlab.io.list_images`).
        codecs: standard codecs by name (:data:`perceptlab.codec.classic.CODECS`); those that cannot run here
            are listed in the result's ``missing`` with the reason, not run.
        learned: learned models (module docstring); models sharing a ``.name`` form one curve.
        metrics: metric registry names; full-reference metrics that need no task context.
        anchor: the codec (standard or learned) every BD-rate is measured against.
        params: sweeps replacing a codec's default, ``{"jpeg": [10, 30, 50, 70, 90]}``.
        limit: evaluate the first ``limit`` images only (sorted by name).
        method: BD interpolation, ``"pchip"`` or ``"cubic"``.
        missing: codecs known to be unavailable before the call (a learned codec that could not be
            loaded), ``{name: reason}``, carried into the result.
        progress: show a progress bar over images x points.
        also: measures kept in each row beside the metrics but given no BD-rate, since they need not rise with
            the rate or are outside the comparison: ``"grid"`` (a lattice fixed to the pixel grid, period 4;
            the decoded image alone, at scale 1), ``"chroma_psnr"`` (colour), or any metric that needs no task
            context beyond the scale.

    Returns:
        A dict with a fixed schema: ``data``, ``images``, ``metrics``, ``anchor``, ``bd_method``,
        ``protocol``, ``codecs`` (name -> settings, library, sweep), ``missing`` (name -> reason),
        ``rows`` (one per image, codec and point: ``image``, ``codec``, ``param``, ``bytes``, ``bpp``,
        each metric and measure of ``also``, ``encode_s``, ``decode_s``), ``rd`` (codec -> mean points sorted by bpp),
        ``bd_rate`` and ``bd_quality`` (codec -> metric -> value or None), ``bd_range`` (codec -> metric ->
        the common quality range), ``bd_notes`` (why a value is None), ``seconds``, ``machine``.

    Raises:
        ValueError: an unknown codec or metric, a metric that needs task context, an anchor that is
            not among the codecs, no images, or a bad ``limit``.
    """
    from perceptlab.codec.bd import METHODS
    from perceptlab.codec.classic import get_codec
    from perceptlab.io import IMAGE_SUFFIXES, list_images, read_image
    from perceptlab.metrics.registry import get_metric
    from perceptlab.report import machine

    infos = [get_metric(m) for m in metrics]
    for info in infos:
        if info.context or not info.needs_reference:
            raise ValueError(f"metric {info.name!r} cannot score a decoded image against its original here")
    if not infos:
        raise ValueError("no metric given")
    extras = [get_metric(m) for m in also]
    for info in extras:
        if set(info.context) - set(DECODED_CONTEXT):
            raise ValueError(f"measure {info.name!r} needs {', '.join(info.context)}: not known for a decoded image")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of images, got {limit}")
    unknown = set(params or {}) - set(codecs)
    if unknown:
        raise ValueError(f"params given for codecs not evaluated: {', '.join(sorted(unknown))}")
    classics = [get_codec(name) for name in dict.fromkeys(codecs)]  # unknown names fail before any work
    groups: dict[str, list] = {}
    for model in learned:
        groups.setdefault(_model_name(model), []).append(model)
    names = [c.name for c in classics] + list(groups) + list(missing or {})
    if anchor not in names:
        raise ValueError(f"the anchor {anchor!r} is not among the codecs ({', '.join(names)})")
    paths = list_images(images_dir)[:limit]
    if not paths:
        raise ValueError(f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")

    curves, absent = [], dict(missing or {})
    for codec in classics:
        found = codec.available()
        if found:
            curves.append(_classic_curve(codec, (params or {}).get(codec.name, codec.params), found.detail))
        else:
            absent[codec.name] = found.detail
    for name, reason in absent.items():
        warnings.warn(f"{name} is missing: {reason}", stacklevel=2)
    curves += [_learned_curve(name, models) for name, models in groups.items()]

    start = time.perf_counter()
    rows = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths) * sum(len(c.points) for c in curves), desc="eval codecs", unit="pt")
    try:
        for index, path in enumerate(paths):
            rgb = np.round(read_image(path)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float() / 255
            if index == 0:
                for info in infos:  # a missing package or weights file fails here, not after the first codec
                    info(x, x)
                for info in extras:
                    info(x, x, **DECODED_CONTEXT)
            pixels = rgb.shape[0] * rgb.shape[1]
            for curve in curves:
                for k, point in enumerate(curve.points):
                    nbytes, x_hat, enc, dec = curve.run(rgb, x, point)
                    row = {"image": path.name, "codec": curve.name, "param": curve.info["params"][k],
                           "bytes": nbytes, "bpp": 8.0 * nbytes / pixels}  # fmt: skip
                    row |= {info.name: float(info(x_hat, x)[0]) for info in infos}
                    row |= {info.name: float(info(x_hat, x, **DECODED_CONTEXT)[0]) for info in extras}
                    rows.append(row | {"encode_s": enc, "decode_s": dec})
                    if bar is not None:
                        bar.set_postfix_str(f"{path.stem} {curve.name}", refresh=False)
                        bar.update()
    finally:
        if bar is not None:
            bar.close()

    rd = {curve.name: rd_points(rows, curve.name, (*metrics, *also)) for curve in curves}
    result = {
        "data": str(images_dir), "images": [p.name for p in paths], "metrics": list(metrics), "also": list(also),
        "anchor": anchor, "bd_method": method, "protocol": PROTOCOL, "codecs": {c.name: c.info for c in curves}, "missing": absent,
        "rows": rows, "rd": rd,
    }  # fmt: skip
    result |= bd_table(rd, anchor, metrics, method, absent)
    result |= {"seconds": time.perf_counter() - start, "machine": machine(), "threads": torch.get_num_threads()}
    return result


def rd_points(rows: Sequence[dict], codec: str, metrics: Sequence[str]) -> list[dict]:
    """The mean RD points of ``codec``: per param, the mean bpp, metrics and times over images, sorted by bpp."""
    by_param: dict = {}
    for row in rows:
        if row["codec"] == codec:
            by_param.setdefault(row["param"], []).append(row)
    points = []
    for param, group in by_param.items():
        keys = ("bpp", *metrics, "encode_s", "decode_s")
        points.append({"param": param, "images": len(group)} |
                      {k: math.fsum(r[k] for r in group) / len(group) for k in keys})  # fmt: skip
    return sorted(points, key=lambda p: p["bpp"])


def bd_table(rd: Mapping[str, Sequence[dict]], anchor: str, metrics: Sequence[str], method: str = "pchip",
             missing: Mapping[str, str] | None = None) -> dict:  # fmt: skip
    """BD-rate and BD-quality of every curve in ``rd`` against ``anchor``, for every metric.

    Returns:
        ``{"bd_rate", "bd_quality", "bd_range", "bd_notes"}``, each ``{codec: {metric: ...}}``: the
        values (None where they cannot be computed), the common quality range ``[low, high]`` of the
        BD-rate, and the reason for each None.
    """
    from perceptlab.codec.bd import bd_psnr, bd_rate
    from perceptlab.metrics.registry import get_metric

    out: dict = {"bd_rate": {}, "bd_quality": {}, "bd_range": {}, "bd_notes": {}}
    if anchor not in rd:
        reason = (missing or {}).get(anchor, "not evaluated")
        out["bd_notes"] = {name: {m: f"the anchor {anchor} is missing: {reason}" for m in metrics}
                           for name in rd if name != anchor}  # fmt: skip
        out["bd_rate"] = out["bd_quality"] = {name: dict.fromkeys(metrics) for name in rd if name != anchor}
        return out
    for name, points in rd.items():
        if name == anchor:
            continue
        for key in out:
            out[key][name] = {}
        for m in metrics:
            sign = 1.0 if get_metric(m).higher_is_better else -1.0
            a_rate, a_q = [p["bpp"] for p in rd[anchor]], [sign * p[m] for p in rd[anchor]]
            t_rate, t_q = [p["bpp"] for p in points], [sign * p[m] for p in points]
            try:
                out["bd_rate"][name][m] = bd_rate(a_rate, a_q, t_rate, t_q, method)
                out["bd_quality"][name][m] = sign * bd_psnr(a_rate, a_q, t_rate, t_q, method)
                low, high = max(min(a_q), min(t_q)), min(max(a_q), max(t_q))
                out["bd_range"][name][m] = sorted([sign * low, sign * high])
            except ValueError as err:
                out["bd_rate"][name][m] = out["bd_quality"][name][m] = None
                out["bd_notes"][name][m] = str(err)
    return out


def bd_per_image(rows: Sequence[dict], anchor: str, codec: str, metric: str, method: str = "pchip") -> dict:
    """BD-rate of ``codec`` against ``anchor`` on each image's own RD curves, and its mean and spread.

    The layout of Chen et al.'s table (mean and standard deviation over the test images), next to the
    BD-rate of the mean curves that :func:`bd_table` gives. An image whose curves cannot be compared
    (non-monotone, no common quality range) is left out and named in ``failed``.

    Returns:
        ``{"mean", "std", "values": {image: BD-rate %}, "failed": {image: reason}}``; ``mean`` and ``std``
        (population) are ``None`` when no image could be compared.
    """
    from perceptlab.codec.bd import bd_rate
    from perceptlab.metrics.registry import get_metric

    sign = 1.0 if get_metric(metric).higher_is_better else -1.0
    images = sorted({r["image"] for r in rows if r["codec"] == codec})
    values, failed = {}, {}
    for image in images:
        curves = []
        for name in (anchor, codec):
            points = sorted((r["bpp"], sign * r[metric]) for r in rows if r["codec"] == name and r["image"] == image)
            curves.append(([p[0] for p in points], [p[1] for p in points]))
        try:
            values[image] = bd_rate(*curves[0], *curves[1], method)
        except ValueError as err:
            failed[image] = str(err)
    if not values:
        return {"mean": None, "std": None, "values": values, "failed": failed}
    v = np.asarray(list(values.values()))
    return {"mean": float(v.mean()), "std": float(v.std()), "values": values, "failed": failed}


def _finite(value):
    """``value`` with non-finite floats as None, recursively (JSON has no infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def report_files(metrics: Sequence[str]) -> list[str]:
    """The files :func:`write_report` writes: the JSON, the markdown, and one SVG of RD curves per metric."""
    return ["results.json", "results.md", *(f"rd_{m}.svg" for m in metrics)]


def write_report(out_dir: str | Path, result: dict, title: str | None = None) -> list[Path]:
    """``results.json`` (the whole result), ``results.md`` (tables) and ``rd_<metric>.svg`` in ``out_dir``.

    Returns:
        The paths written.
    """
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "results.json", json.dumps(_finite(result), indent=2, allow_nan=False) + "\n")
    atomic_write_text(out_dir / "results.md", markdown_report(result, title))
    for m in result["metrics"]:
        atomic_write_text(out_dir / f"rd_{m}.svg", rd_plot(result, m))
    return [out_dir / name for name in report_files(result["metrics"])]


def rd_plot(result: dict, metric: str) -> str:
    """SVG of every codec's mean RD curve for ``metric`` (log bpp axis, points marked)."""
    from perceptlab.metrics.registry import get_metric
    from perceptlab.plot.lines import line_plot

    series = [{"label": name, "x": [p["bpp"] for p in points], "y": [p[metric] for p in points], "markers": True,
               "dash": "dashed" if result["codecs"][name]["kind"] == "learned" else "solid"}
              for name, points in result["rd"].items()]  # fmt: skip
    legend = "lower right" if get_metric(metric).higher_is_better else "upper right"
    return line_plot(series, xlog=True, xlabel="bits per pixel", ylabel=metric, legend=legend,
                     title=f"{metric} on {Path(result['data']).name} ({len(result['images'])} images)")  # fmt: skip


def _cell(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}{unit}"


def bd_markdown(result: dict) -> str:
    """The BD-rate table: rows codecs, columns metrics, in percent against the anchor; missing codecs say so."""
    metrics = result["metrics"]
    lines = ["| codec | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    if result["anchor"] not in result["missing"]:
        lines.append(f"| {result['anchor']} (anchor) | " + " | ".join("0 %" for _ in metrics) + " |")
    for name, values in result["bd_rate"].items():
        lines.append(f"| {name} | " + " | ".join(_cell(values[m], 1, " %") for m in metrics) + " |")
    lines += [f"| {name} | " + " | ".join("missing" for _ in metrics) + " |" for name in result["missing"]]
    return "\n".join(lines) + "\n"


def markdown_report(result: dict, title: str | None = None) -> str:
    """The report: settings, missing codecs, the BD-rate and BD-quality tables, the RD points and timings."""
    metrics, anchor = result["metrics"], result["anchor"]
    title = title or f"Codecs on {Path(result['data']).name}"
    text = [f"# {title}\n", f"- data: {result['data']} ({len(result['images'])} images)",
            f"- anchor: {anchor}; BD interpolation: {result['bd_method']}", f"- protocol: {result['protocol']}",
            f"- machine: {result['machine']}, {result['threads']} thread(s); {result['seconds']:.0f} s in all"]
    text.append("\n## Codecs\n")
    for name, info in result["codecs"].items():
        sweep = f"{info['param']} {', '.join(str(p) for p in info['params'])}"
        text.append(f"- **{name}**: " + "; ".join(part for part in (info["settings"], info["detail"], sweep) if part))
    text += [f"- **{name}**: missing, {reason}" for name, reason in result["missing"].items()]
    text.append(f"\n## BD-rate against {anchor} (negative: fewer bits for the same quality)\n")
    text.append(bd_markdown(result))
    text.append(f"\n## BD-quality against {anchor} (mean quality difference at equal rate, metric units)\n")
    lines = ["| codec | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    lines += [f"| {name} | " + " | ".join(_cell(v[m], 4 if m not in ("psnr", "vmaf") else 2) for m in metrics) + " |"
              for name, v in result["bd_quality"].items()]  # fmt: skip
    text.append("\n".join(lines) + "\n")
    ranges = [f"- {name}, {m}: {lo:.4g} to {hi:.4g}" for name, per in result["bd_range"].items()
              for m, (lo, hi) in per.items()]  # fmt: skip
    if ranges:
        text.append("Common quality ranges the BD values average over:\n\n" + "\n".join(ranges) + "\n")
    notes = [f"- {name}, {m}: {note}" for name, per in result["bd_notes"].items() for m, note in per.items()]
    if notes:
        text.append("Not computed:\n\n" + "\n".join(notes) + "\n")
    text.append("\n## Mean RD points\n")
    for name, points in result["rd"].items():
        param = result["codecs"][name]["param"]
        lines = [f"**{name}**\n", f"| {param} | bpp | " + " | ".join(metrics) + " | encode s | decode s |",
                 "|---:|---:|" + "---:|" * len(metrics) + "---:|---:|"]  # fmt: skip
        lines += [f"| {p['param']} | {p['bpp']:.4f} | " + " | ".join(f"{p[m]:.4f}" for m in metrics) +
                  f" | {p['encode_s']:.3f} | {p['decode_s']:.3f} |" for p in points]  # fmt: skip
        text.append("\n".join(lines) + "\n")
    text.append("RD curves: " + ", ".join(f"[{m}](rd_{m}.svg)" for m in metrics) + "\n")
    return "\n".join(text)


def load_learned(specs: Sequence[str], name: str | None = None) -> tuple[list, str | None]:
    """Learned codec models for ``specs`` (one RD point each, labelled by its spec), as one curve named ``name``.

    Loads each with ``perceptlab.codec.load_codec_model`` and codes with
    ``perceptlab.codec.compress(model, x)`` / ``decompress(data, model)["image"]``:
    the ``.plc`` bytes, header included, are what the rate counts.

    Returns:
        ``(models, None)``, or ``([], reason)`` when the learned codec is not available in this
        installation (so an evaluation can go on with the standard codecs and report it missing).
    """
    try:
        from perceptlab.codec import compress, decompress, load_codec_model
    except ImportError:
        return [], "the learned codec is not available (perceptlab.codec.load_codec_model is missing)"
    name = name or Path(specs[0]).stem
    return [_LearnedModel(name, spec, load_codec_model(spec), compress, decompress) for spec in specs], None


@dataclass(frozen=True)
class _LearnedModel:
    """One loaded learned codec model as :func:`evaluate_codecs` takes it (``name``, ``compress``, ``decompress``)."""

    name: str
    label: str
    model: object
    _compress: Callable
    _decompress: Callable

    def compress(self, x: torch.Tensor) -> bytes:
        return self._compress(self.model, x)

    def decompress(self, data: bytes) -> torch.Tensor:
        return self._decompress(data, self.model)["image"]
