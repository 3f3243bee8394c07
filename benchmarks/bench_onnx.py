"""ONNX export: onnxruntime against perceptlab's PyTorch inference, one thread each, on the same images.

Run ``python benchmarks/bench_onnx.py [--quick] [--threads N] [--tag TAG]``; writes
``benchmarks/results/onnx.json``. For shipped SR models (the default ``johnson_x4_vgg_pixel``,
``perceptsr_x4_psnr``, ``srcnn_x4_mse``) and a style model (``style_udnie``), each exported with
:func:`perceptlab.export.export_onnx` (dynamic height and width, opset 18), three ways are timed
round-robin on the same input:

* ``pytorch``: ``net(x)`` under ``torch.no_grad()`` on the whole image, the network as
  ``load_sr_model`` / ``load_style_model`` prepare it (folded batch norms, channels-last weights
  and input for SR; the style net's fused inference path);
* ``pytorch tiled`` (SR only): ``upscale_tiled(net, lr, 4, tile=64, overlap=net.tile_context)``,
  what ``perceptlab upscale`` runs, 8-bit output included;
* ``onnxruntime``: ``InferenceSession.run`` on the whole image, CPU provider,
  ``intra_op_num_threads = inter_op_num_threads = 1`` (:func:`perceptlab.export.onnx_session`), all
  graph optimisations on (the default).

Inputs are real images where ``../shared/data`` has them (Set5's baby at x4, 128x128 LR; the Chicago
content image of Johnson et al. cut to 512x512), else a smooth synthetic image of the same size.
Speeds are output megapixels per second (median call); ``speed_ratio_onnxruntime_over_pytorch`` is
the median over rounds of (PyTorch call time / onnxruntime call time in the same round), so load that
drifts between rounds cancels. Malloc keeps freed memory (``keep_freed_memory()``, as the CLI runs).
"""

from __future__ import annotations

import importlib.metadata
import sys
import tempfile
import time
from pathlib import Path

import harness
import torch
import torch.nn.functional as F

from perceptlab.export import export_onnx, onnx_session
from perceptlab.sr.models import load_sr_model
from perceptlab.style.models import load_style_model
from perceptlab.tiling import upscale_tiled

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SR_MODELS = ("johnson_x4_vgg_pixel", "perceptsr_x4_psnr", "srcnn_x4_mse")
STYLE_MODELS = ("style_udnie",)
SR_IMAGE = SHARED / "Set5" / "image_SRF_4" / "img_001_SRF_4_LR.png"
STYLE_IMAGE = SHARED / "style" / "johnson" / "content" / "chicago.jpg"
# LR side for SR, side for style; (warm-up calls, timed calls).
FULL = {"sr": 128, "style": 512, "calls": (2, 5)}
QUICK = {"sr": 48, "style": 128, "calls": (1, 2)}


def synthetic(side: int) -> torch.Tensor:
    """A smooth RGB image on the 8-bit grid, (1, 3, side, side): coarse noise enlarged bilinearly."""
    coarse = torch.rand(1, 3, max(2, side // 16), max(2, side // 16), generator=torch.Generator().manual_seed(0))
    return F.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False).mul(255).round().div(255)


def image(path: Path, side: int) -> tuple[torch.Tensor, str]:
    """The centre ``side x side`` of ``path`` (shrunk first if it is larger than twice that), or a synthetic one."""
    from perceptlab.io import read_image
    from perceptlab.ops.resize import resize_longer_side

    if not path.is_file():
        return synthetic(side), f"synthetic {side}x{side} (no {path})"
    x = read_image(path)
    if min(x.shape[-2:]) >= 2 * side:
        x = resize_longer_side(x, round(max(x.shape[-2:]) * side / min(x.shape[-2:])))
    h, w = x.shape[-2:]
    if min(h, w) < side:
        return synthetic(side), f"synthetic {side}x{side} ({path} is smaller)"
    top, left = (h - side) // 2, (w - side) // 2
    return x[..., top : top + side, left : left + side].contiguous(), f"{path}, centre {side}x{side}"


def model_rows(name: str, kind: str, side: int, calls: tuple[int, int], folder: Path, threads: int) -> dict:
    net = load_sr_model(name) if kind == "sr" else load_style_model(name)
    x, source = image(SR_IMAGE if kind == "sr" else STYLE_IMAGE, side)
    started = time.perf_counter()
    export_onnx(net, folder / f"{name}.onnx")
    export_s = time.perf_counter() - started
    session = onnx_session(folder / f"{name}.onnx", threads=threads)
    feed = {session.get_inputs()[0].name: x.numpy()}
    torch_input = x.contiguous(memory_format=torch.channels_last) if kind == "sr" else x

    def pytorch():
        with torch.no_grad():
            return net(torch_input)

    fns = {"pytorch": pytorch, "onnxruntime": lambda: session.run(None, feed)}
    if kind == "sr":
        fns["pytorch tiled"] = lambda: upscale_tiled(net, x, net.scale, tile=64, overlap=net.tile_context)
    with torch.no_grad():
        diff = float((torch.from_numpy(session.run(None, feed)[0]) - pytorch()).abs().max())
    out_mp = x.shape[-2] * x.shape[-1] * (net.scale**2 if kind == "sr" else 1) / 1e6
    monitor = harness.LoadMonitor()
    timings = harness.interleaved(fns, warmup=calls[0], repeat=calls[1])
    load = monitor.stop()
    ours, theirs = timings["pytorch"], timings["onnxruntime"]
    ratio = {clock: harness.spread([p / o for p, o in zip(ours[key], theirs[key], strict=True)])
             for clock, key in (("wall", "times_s"), ("cpu", "cpu_times_s"))}  # fmt: skip
    row = {
        "model": name, "kind": kind, "input": list(x.shape[-2:]), "input_source": source, "output_megapixels": out_mp,
        "export_s": export_s, "max_abs_difference": diff, "load": load,
        "variants": {label: {"timing": t, "output_mp_per_s": out_mp / t["median_s"],
                             "output_mp_per_cpu_s": out_mp / t["cpu_median_s"]} for label, t in timings.items()},
        "speed_ratio_onnxruntime_over_pytorch": ratio,
    }  # fmt: skip
    if kind == "sr":
        tiled = timings["pytorch tiled"]
        row["speed_ratio_onnxruntime_over_pytorch_tiled"] = harness.spread(
            [p / o for p, o in zip(tiled["times_s"], theirs["times_s"], strict=True)])  # fmt: skip
    return row


def print_rows(rows: list[dict]) -> None:
    table = []
    for r in rows:
        for label, v in r["variants"].items():
            table.append((r["model"], f"{r['input'][1]}x{r['input'][0]}", label, v["timing"]["median_s"],
                          v["timing"]["iqr_s"], v["output_mp_per_s"], v["output_mp_per_cpu_s"]))  # fmt: skip
    harness.print_table(["model", "input", "variant", "median s", "IQR s", "MP/s", "MP/CPU-s"], table)
    for r in rows:
        wall, cpu = (r["speed_ratio_onnxruntime_over_pytorch"][c]["median"] for c in ("wall", "cpu"))
        print(f"{r['model']}: onnxruntime / pytorch speed {wall:.2f}x (wall), {cpu:.2f}x (CPU time); "
              f"max |difference| {r['max_abs_difference']:.1e}; export {r['export_s']:.1f} s; "
              f"other load {r['load'].get('other_cores', float('nan')):.2f} cores")  # fmt: skip
    sys.stdout.flush()


def headline(rows: list[dict]) -> dict:
    """The numbers the README quotes: per model, output MP/s of each variant and the median speed ratios."""
    out = {}
    for r in rows:
        entry = {f"{label}_mp_per_s": v["output_mp_per_s"] for label, v in r["variants"].items()}
        entry["onnxruntime_over_pytorch"] = r["speed_ratio_onnxruntime_over_pytorch"]["wall"]["median"]
        entry["onnxruntime_over_pytorch_cpu"] = r["speed_ratio_onnxruntime_over_pytorch"]["cpu"]["median"]
        if "speed_ratio_onnxruntime_over_pytorch_tiled" in r:
            entry["onnxruntime_over_pytorch_tiled"] = r["speed_ratio_onnxruntime_over_pytorch_tiled"]["median"]
        out[r["model"]] = entry
    return out


def main(argv=None) -> int:
    parser = harness.build_parser(__doc__.splitlines()[0])
    args = harness.parse_args(parser, argv)
    threads = args.threads or 1
    torch.set_num_threads(threads)
    kept = harness.keep_freed_memory()
    env = harness.environment()
    env["packages"] = {name: importlib.metadata.version(name) for name in ("onnx", "onnxscript", "onnxruntime")}
    print(f"CPU: {env['cpu']['model']}, {threads} thread(s), torch {torch.__version__}, "
          f"onnxruntime {env['packages']['onnxruntime']}")  # fmt: skip
    spec = QUICK if args.quick else FULL
    rows = []
    with tempfile.TemporaryDirectory(prefix="perceptlab_bench_onnx_") as folder:
        for kind, names in (("sr", SR_MODELS), ("style", STYLE_MODELS)):
            for name in names:
                rows.append(model_rows(name, kind, spec[kind], spec["calls"], Path(folder), threads))
    print_rows(rows)
    payload = {
        "method": {
            "timing": f"harness.interleaved: round-robin over the variants of a model, {spec['calls'][0]} untimed "
            f"and {spec['calls'][1]} timed calls each",
            "threads": f"torch.set_num_threads({threads}); onnxruntime intra_op_num_threads={threads}, "
            "inter_op_num_threads=1, CPUExecutionProvider, default graph optimisations",
            "ratio": "speed_ratio_onnxruntime_over_pytorch: median over rounds of pytorch time / onnxruntime time "
            "(> 1: onnxruntime faster); _tiled: against upscale_tiled, the CLI's path",
            "export": "export_onnx(net, path): dynamo exporter, dynamic height and width, opset 18",
            "allocator": "keep_freed_memory" if kept else "glibc default (mallopt failed)",
        },
        "rows": rows,
        "headline": headline(rows),
        "quick": args.quick,
    }  # fmt: skip
    print(f"\nwrote {harness.write_result('onnx', payload, env)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
