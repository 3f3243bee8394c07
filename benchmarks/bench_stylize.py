"""Style transfer on CPU: feed-forward stylisation and Gatys optimisation, against the same run's fp32 matmul.

Run ``python benchmarks/bench_stylize.py [--quick] [--threads N] [--phase P]``; writes
``benchmarks/results/stylize.json`` (about 3 minutes with one thread on our machine). Two phases,
both by default; ``--phase`` (repeatable) runs some and keeps the other's last result in the JSON,
each phase with the environment it ran in:

1. ``feedforward``: :class:`perceptlab.nets.style.JohnsonStyleNet` on one 512x512 and one 1024x1024
   image (batch 1, under ``torch.no_grad()``), the instance-norm network (what we ship) and the
   batch-norm one, each loaded by :func:`perceptlab.style.load_style_model` itself from a temporary
   safetensors file of random weights (eval mode, no gradients; the batch-norm one folded and
   channels-last). The network's ``forward`` then takes its inference path. For comparison, the same
   networks with that path switched off, so that the modules run in order (the autograd path, and
   what every call computed before the inference path existed). Megapixels/s and convolution GFLOP/s
   as a fraction of the matmul rate; then the inference path again in a child process with malloc
   keeping freed memory (``keep_freed_memory()``, as the command-line tool runs).
2. ``optimize``: :func:`perceptlab.style.stylize_optimize` with L-BFGS and with Adam on 256x256 and
   512x512 contents, a real :class:`perceptlab.style.StyleTransferLoss` (VGG-16 with the
   ``vgg16`` weights, a 256x256 style image), 2 warm-up and 6 timed iterations. stylize_optimize's
   callback runs one fp32 matmul after every evaluation, so each iteration is timed right after a matmul
   call; time per iteration (median, spread), the same in "matmul calls", and the VGG convolutions'
   GFLOP/s as a fraction of the matmul rate.

Each timed call (each iteration) comes right after one fp32 matmul call; ratios are per round
(``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import torch
import torch.nn.functional as F
from torch import nn

from perceptlab._alloc import keep_freed_memory
from perceptlab.nets.style import JohnsonStyleNet, _OutputConv
from perceptlab.style import StyleTransferLoss, load_style_model, stylize_optimize
from perceptlab.training import save_model_file

MATMUL_N = 2048
PHASES = ("feedforward", "optimize")
NORMS = ("instance", "batch")
# Image sides of the feed-forward phase; (warm-up calls, timed calls) for each.
FULL_FF = {512: (2, 5), 1024: (1, 3)}
QUICK_FF = {128: (1, 2), 256: (1, 2)}
# Content sides of the optimisation phase, the style image's side, warm-up and timed iterations.
FULL_OPT = {"sides": (256, 512), "style": 256, "warmup": 2, "timed": 6}
QUICK_OPT = {"sides": (64, 96), "style": 64, "warmup": 1, "timed": 2}

FLOPS_COUNTED = (
    "Convolutions only. Conv2d: 2*Cin/groups*Cout*kh*kw*Hout*Wout; ConvTranspose2d like the equivalent "
    "convolution on its input, 2*Cin*Cout*kh*kw*Hin*Win; the 9x9 output convolution (a SplitKernelConv2d "
    "behind the reflection padding, in the inference path a stride-4 convolution to 48 channels) as the "
    "9x9 convolution 32 -> 3 it equals, over the H'xW' output. Counted with forward hooks on the modules "
    "run in order, on the input padded to a multiple of 4 (H'xW'; 512 and 1024 need no padding): "
    "252,288 FLOPs per pixel, of which the 10 residual convolutions 184,320, the 9x9 input and output "
    "convolutions 15,552 each, the two stride-2 convolutions and the two transposed ones 9,216 each. "
    "Normalisation, ReLU, the residual sums, padding, tanh and pixel shuffle are not counted. The "
    "inference path's output convolution multiplies 1.78 times as much (27,648 per pixel: the zeros of "
    "the 16 kernel copies in their 12x12 windows); those extra FLOPs are not counted as useful."
)
OPT_FLOPS_COUNTED = (
    "VGG-16 convolutions only, up to relu4_3 (the deepest layer of the loss), on the 1x3xHxW image: "
    "the forward pass (counted with forward hooks) plus the backward pass, whose convolutions compute "
    "input gradients only (the VGG weights are frozen) and do as many FLOPs as the forward ones, the "
    "first convolution's included (the loss needs d loss / d image). Per iteration: 2 x forward. The "
    "Gram matrices (4*C^2*H*W per style layer and iteration, forward and backward; gram_flops_per_iteration), "
    "the content and TV terms, the sigmoid and the optimiser step are not counted."
)


# ---------------------------------------------------------------- networks, images, FLOPs


def test_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A smooth RGB image on the 8-bit grid, (1, 3, height, width) in [0, 1]: coarse noise enlarged bilinearly."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, height // 16), max(2, width // 16), generator=gen)
    image = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return image.mul_(255).round_().div_(255)


def loaded_net(norm: str, folder: Path) -> nn.Module:
    """A JohnsonStyleNet with random weights, saved as a style model and loaded by ``load_style_model``.

    The batch norms get running statistics that are not 0 and 1 (a few training-mode batches), so that
    folding them changes the weights as it does for a trained model.
    """
    torch.manual_seed(0)
    net = JohnsonStyleNet(norm=norm)
    if norm == "batch":
        with torch.no_grad():
            for seed in range(3):
                net.train()(test_image(64, 64, seed=seed))
    path = folder / f"style_{norm}.safetensors"
    save_model_file(path, net, {"task": "style", "net": net.name, "norm": norm, "padding": net.padding})
    return load_style_model(str(path))


def modules_in_order(net: nn.Module) -> nn.Module:
    """``net`` (a copy) with its inference path switched off: the modules run in order under no_grad."""
    clone = type(net)(norm=net.norm, padding=net.padding)
    clone.body = net.body  # the same (prepared) layers and weights
    clone._inference_path_applies = lambda x: False  # instance attribute: JohnsonStyleNet.forward asks it
    return clone.eval()


def conv_flops(net: JohnsonStyleNet, height: int, width: int) -> tuple[float, list[dict]]:
    """Convolution FLOPs of one (1, 3, height, width) input (see FLOPS_COUNTED), and the layers."""
    rows, hooks = [], []

    def record(name):
        def hook(module, inputs, output):
            x = inputs[0]
            if isinstance(module, _OutputConv):
                conv, positions, (kh, kw) = module.conv, output.shape[2] * output.shape[3], module.conv.kernel_size
                cin, cout, groups = conv.in_channels, conv.out_channels, conv.groups
            else:
                (kh, kw), cin, cout, groups = module.kernel_size, x.shape[1], output.shape[1], module.groups
                transposed = isinstance(module, nn.ConvTranspose2d)
                positions = x.shape[2] * x.shape[3] if transposed else output.shape[2] * output.shape[3]
            flops = 2 * cin * cout // groups * kh * kw * positions
            rows.append({"layer": name, "type": type(module).__name__, "cin": cin, "cout": cout, "k": kh,
                         "in": list(x.shape[2:]), "out": list(output.shape[2:]), "flops": flops})  # fmt: skip

        return hook

    for name, module in net.body.named_modules():
        if isinstance(module, _OutputConv) or (
            isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and not name.endswith(".conv")
        ):
            hooks.append(module.register_forward_hook(record(f"body.{name}")))
    try:
        with torch.no_grad():
            x = torch.rand(1, 3, height, width)
            pad_h, pad_w = -height % 4, -width % 4
            net.body(F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x)
    finally:
        for h in hooks:
            h.remove()
    return float(sum(r["flops"] for r in rows)), rows


def flops_per_pixel() -> tuple[float, list[dict]]:
    """Convolution FLOPs per pixel of JohnsonStyleNet (either norm: the same convolutions), checked at two sizes."""
    net = JohnsonStyleNet().eval()
    per_pixel = [conv_flops(net, h, w)[0] / (h * w) for h, w in ((32, 32), (48, 40))]
    if abs(per_pixel[0] - per_pixel[1]) > 1e-9 * per_pixel[0]:
        raise RuntimeError(f"convolution FLOPs are not proportional to the area: {per_pixel}")
    return per_pixel[0], conv_flops(net, 32, 32)[1]


# ---------------------------------------------------------------- timing


def run_group(variants: dict[str, dict], warmup: int, repeat: int) -> list[dict]:
    """Time ``{name: {"call", "megapixels", "flops", ...}}`` round-robin, each call right after one fp32 matmul."""
    with torch.no_grad():
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
            "megapixels_per_s": v["megapixels"] / t["median_s"],
            "megapixels_per_cpu_s": v["megapixels"] / t["cpu_median_s"],
            "gflops": v["flops"] / t["median_s"] / 1e9,
            "gflops_cpu_time": v["flops"] / t["cpu_median_s"] / 1e9,
            "fraction_of_matmul": harness.paired_ratio(t, ref, v["flops"], mm_flops),
            "fraction_of_matmul_cpu_time": harness.paired_ratio(t, ref, v["flops"], mm_flops, clock="cpu"),
            "matmul": timed[name]["matmul"],
            "load": timed[name]["load"],
        }
        rows.append(row)
    return rows


def _frac(f: dict | None) -> str:
    return f"{f['median']:.3f} [{f['q1']:.2f}-{f['q3']:.2f}]" if f else "-"


def print_ff_rows(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    harness.print_table(
        ["variant", "median s", "IQR s", "MP/s", "MP/CPU-s", "GFLOP/s (CPU)", "x matmul (wall)", "x matmul (CPU)",
         "other load"],
        [(r["variant"], r["timing"]["median_s"], r["timing"]["iqr_s"], r["megapixels_per_s"],
          r["megapixels_per_cpu_s"], r["gflops_cpu_time"], _frac(r["fraction_of_matmul"]),
          _frac(r["fraction_of_matmul_cpu_time"]), f"{r['load'].get('other_cores', float('nan')):.2f} cores")
         for r in rows],
    )  # fmt: skip
    sys.stdout.flush()


def ff_variants(side: int, per_pixel: float, nets: dict[str, nn.Module], image: torch.Tensor) -> dict[str, dict]:
    return {
        label: {"network": label.split(",")[0], "input": [side, side], "megapixels": side * side / 1e6,
                "flops": per_pixel * side * side, "call": (lambda net=net: net(image))}
        for label, net in nets.items()
    }  # fmt: skip


def feedforward_nets(folder: Path, with_modules_in_order: bool) -> dict[str, nn.Module]:
    nets = {}
    for norm in NORMS:
        net = loaded_net(norm, folder)
        nets[f"{norm} norm, inference path (load_style_model)"] = net
        if with_modules_in_order:
            nets[f"{norm} norm, modules in order (before)"] = modules_in_order(net)
    return nets


def feedforward_phase(quick: bool, per_pixel: float) -> dict:
    sizes = QUICK_FF if quick else FULL_FF
    rows = []
    with tempfile.TemporaryDirectory(prefix="perceptlab_bench_stylize_") as tmp:
        nets = feedforward_nets(Path(tmp), with_modules_in_order=True)
        for side, (warmup, repeat) in sizes.items():
            image = test_image(side, side)
            group = run_group(ff_variants(side, per_pixel, nets, image), warmup, repeat)
            print_ff_rows(group, f"[feedforward] {side}x{side}, batch 1, glibc default allocator")
            rows += [r | {"allocator": "glibc default"} for r in group]
    # The CLI keeps freed memory (perceptlab._alloc); mallopt cannot be undone, so in a child process.
    command = [sys.executable, __file__, "--ff-child", "--threads", str(torch.get_num_threads())]
    proc = subprocess.run(command + (["--quick"] if quick else []), capture_output=True, text=True, timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"feedforward child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    child_rows = json.loads(lines[-1].removeprefix("RESULT "))
    for side in sizes:
        print_ff_rows([r for r in child_rows if r["input"][0] == side],
                      f"[feedforward] {side}x{side}, malloc keeping freed memory (keep_freed_memory, as the CLI)")
    return {"rows": rows + child_rows}


def feedforward_child(quick: bool) -> list[dict]:
    """The inference path at every size with ``keep_freed_memory()`` (own process)."""
    kept = keep_freed_memory()
    per_pixel = flops_per_pixel()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="perceptlab_bench_stylize_") as tmp:
        nets = feedforward_nets(Path(tmp), with_modules_in_order=False)
        for side, (warmup, repeat) in (QUICK_FF if quick else FULL_FF).items():
            image = test_image(side, side)
            rows += run_group(ff_variants(side, per_pixel, nets, image), warmup, repeat)
    return [r | {"allocator": "keep_freed_memory" if kept else "glibc default (mallopt failed)"} for r in rows]


# ---------------------------------------------------------------- optimisation


def vgg_flops(loss: StyleTransferLoss, height: int, width: int) -> tuple[float, float]:
    """FLOPs of one VGG forward pass of ``loss`` on a (1, 3, height, width) image, and of its Gram matrices."""
    total, hooks = [0.0], []

    def hook(module, inputs, output):
        total[0] += 2 * inputs[0].shape[1] * output.shape[1] // module.groups * module.kernel_size[0] * \
            module.kernel_size[1] * output.shape[2] * output.shape[3]  # fmt: skip

    for module in loss.net.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad(), harness.unfused(loss.net):
            features = loss.net(torch.rand(1, 3, height, width))
    finally:
        for h in hooks:
            h.remove()
    # gram = F F^T (2*C^2*HW); its backward, (dG + dG^T) F, as many again.
    gram = sum(4 * f.shape[1] ** 2 * f.shape[2] * f.shape[3] for name, f in features.items()
               if name in loss.style_layers)  # fmt: skip
    return total[0], float(gram)


def optimize_run(content: torch.Tensor, loss: StyleTransferLoss, optimizer: str, warmup: int, timed: int) -> dict:
    """One ``stylize_optimize`` run of warmup + timed iterations (+ its final evaluation), each after a matmul."""
    mm, mm_flops = harness.matmul_call(MATMUL_N)
    marks = []

    def callback(row: dict) -> None:
        # Called right after each evaluation: one matmul, with the clocks on both sides of it.
        before = (time.perf_counter(), time.process_time())
        mm()
        marks.append({"row": row, "before": before, "after": (time.perf_counter(), time.process_time())})

    iterations = warmup + timed + 1  # the last iteration ends with an evaluation without backward
    monitor = harness.LoadMonitor()
    _, rows = stylize_optimize(content, loss=loss, iterations=iterations, optimizer=optimizer, callback=callback)
    load = monitor.stop()
    if len(marks) != len(rows) or len(rows) < iterations + 1:
        raise RuntimeError(f"expected one callback per evaluation, got {len(marks)} for {len(rows)} rows")
    # Rows are evaluations: Adam makes one per iteration, L-BFGS's line search a few more in its first
    # iterations. Evaluation k (the optimiser's step or line-search move, then the loss and its backward)
    # runs from the end of the matmul after row k-1 to the start of the matmul after row k; the last row
    # (no backward) is left out.
    span = range(warmup + 1, warmup + 1 + timed)
    wall = [marks[k]["before"][0] - marks[k - 1]["after"][0] for k in span]
    cpu = [marks[k]["before"][1] - marks[k - 1]["after"][1] for k in span]
    mm_wall = [marks[k - 1]["after"][0] - marks[k - 1]["before"][0] for k in span]
    mm_cpu = [marks[k - 1]["after"][1] - marks[k - 1]["before"][1] for k in span]
    return {
        "iteration": harness.summarize(wall, cpu),
        "matmul_before": harness.summarize(mm_wall, mm_cpu),
        "matmul_flops": mm_flops,
        # The rows' own iter_seconds include the matmul the callback ran after the row before.
        "rows_iter_seconds_timed": [rows[k]["iter_seconds"] for k in span],
        "rows_iter_seconds_warmup": [rows[k]["iter_seconds"] for k in range(warmup + 1)],
        "final_loss": rows[-1]["loss"],
        "evaluations_per_iteration": (len(rows) - 1) / iterations,
        "load": load,
    }


def optimize_phase(quick: bool) -> dict:
    spec = QUICK_OPT if quick else FULL_OPT
    style = test_image(spec["style"], spec["style"], seed=7)
    started = time.perf_counter()
    loss = StyleTransferLoss(style, vgg_weights="vgg16")  # VGG-16 and the style's Grams, once for all runs
    setup_s = time.perf_counter() - started
    rows = []
    for side in spec["sides"]:
        content = test_image(side, side, seed=1)
        forward, gram = vgg_flops(loss, side, side)
        flops = 2 * forward
        for optimizer in ("lbfgs", "adam"):
            run = optimize_run(content, loss, optimizer, spec["warmup"], spec["timed"])
            it, ref = run["iteration"], run["matmul_before"]
            calls = {clock: harness.spread([w / r for w, r in zip(it[key], ref[key], strict=True)])
                     for clock, key in (("wall", "times_s"), ("cpu", "cpu_times_s"))}  # fmt: skip
            rows.append({
                "optimizer": optimizer, "content": [side, side], "style": [spec["style"]] * 2,
                "warmup_iterations": spec["warmup"], "timed_iterations": spec["timed"],
                "vgg_forward_flops": forward, "flops_per_iteration": flops, "gram_flops_per_iteration": gram,
                **run,
                "gflops": flops / it["median_s"] / 1e9,
                "gflops_cpu_time": flops / it["cpu_median_s"] / 1e9,
                "fraction_of_matmul": harness.paired_ratio(it, ref, flops, run["matmul_flops"]),
                "fraction_of_matmul_cpu_time": harness.paired_ratio(it, ref, flops, run["matmul_flops"], clock="cpu"),
                "matmul_calls_per_iteration": calls,
            })  # fmt: skip
            r = rows[-1]
            print(f"  {optimizer:5s} {side}x{side}: {it['median_s']:.3f} s/iteration "
                  f"[{it['q1_s']:.3f}-{it['q3_s']:.3f}], "
                  f"CPU {it['cpu_median_s']:.3f} s; {calls['cpu']['median']:.1f} matmul calls; "
                  f"x matmul (CPU) {_frac(r['fraction_of_matmul_cpu_time'])}; "
                  f"other load {r['load'].get('other_cores', float('nan')):.2f} cores")  # fmt: skip
            sys.stdout.flush()
    return {"loss_setup_s": setup_s, "rows": rows}


# ---------------------------------------------------------------- main


def headline(phases: dict) -> dict:
    """The numbers the README quotes, from whatever phases the JSON holds."""
    out: dict = {}
    for r in phases.get("feedforward", {}).get("rows", []):
        out[f"{r['variant']} @ {r['input'][0]}, {r['allocator']}"] = {
            "megapixels_per_s": r["megapixels_per_s"],
            "megapixels_per_cpu_s": r["megapixels_per_cpu_s"],
            "fraction_of_matmul_cpu": r["fraction_of_matmul_cpu_time"]["median"],
            "fraction_of_matmul_wall": r["fraction_of_matmul"]["median"],
            "other_cores": r["load"].get("other_cores"),
        }
    for r in phases.get("optimize", {}).get("rows", []):
        out[f"optimize {r['optimizer']} @ {r['content'][0]}"] = {
            "seconds_per_iteration": r["iteration"]["median_s"],
            "cpu_seconds_per_iteration": r["iteration"]["cpu_median_s"],
            "matmul_calls_per_iteration_cpu": r["matmul_calls_per_iteration"]["cpu"]["median"],
            "fraction_of_matmul_cpu": r["fraction_of_matmul_cpu_time"]["median"],
            "other_cores": r["load"].get("other_cores"),
        }
    return out


def main(argv=None) -> int:
    parser = harness.build_parser(__doc__.splitlines()[0])
    parser.add_argument("--phase", action="append", choices=PHASES, help="run only this phase (repeatable)")
    parser.add_argument("--ff-child", action="store_true", help=argparse.SUPPRESS)
    args = harness.parse_args(parser, argv)
    if args.ff_child:
        print("RESULT " + json.dumps(feedforward_child(args.quick)))
        return 0
    env = harness.environment()
    print(f"CPU: {env['cpu']['model']}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    per_pixel, layers = flops_per_pixel()
    phases: dict = {}
    for phase in args.phase or PHASES:
        started = time.perf_counter()
        if phase == "feedforward":
            phases[phase] = feedforward_phase(args.quick, per_pixel)
        else:
            print("\n[optimize] time per loss evaluation (each right after one matmul call)")
            phases[phase] = optimize_phase(args.quick)
        phases[phase] |= {"quick": args.quick, "wall_s": time.perf_counter() - started, "environment": env}
    path = harness.RESULTS_DIR / "stylize.json"
    kept = {}
    if args.phase and path.exists():  # keep the phases not run now, each with its own environment
        with contextlib.suppress(OSError, ValueError):
            kept = {k: v for k, v in json.loads(path.read_text()).get("phases", {}).items() if k not in phases}
    phases = {p: (phases | kept)[p] for p in PHASES if p in phases | kept}
    ff, opt = (QUICK_FF, QUICK_OPT) if args.quick else (FULL_FF, FULL_OPT)
    payload = {
        "method": {
            "timing": "round-robin over the variants of a group, each call right after one fp32 matmul call; "
            f"feedforward (warm-up calls, timed calls) per side: {ff}; optimize: {opt['warmup']} warm-up and "
            f"{opt['timed']} timed iterations per run, one run per optimizer and size, each iteration right "
            "after one matmul call made in stylize_optimize's callback",
            "ratio": "fraction_of_matmul*.median: median over rounds (iterations) of (GFLOP/s / GFLOP/s of the "
            "matmul call just before); _cpu_time: the same from process CPU time (use it with --threads 1 on a "
            "shared machine); matmul_calls_per_iteration: iteration time / time of that matmul call",
            "matmul": f"torch.mm of two {MATMUL_N}x{MATMUL_N} float32 matrices, 2*n^3 FLOPs, same thread count",
            "feedforward": "net(image) under torch.no_grad(), image (1, 3, side, side) smooth synthetic on the "
            "8-bit grid; nets: JohnsonStyleNet(norm) with random weights (batch norms with running statistics "
            "from 3 training-mode batches) written with save_model_file and loaded by load_style_model "
            "(requires_grad_(False), eval; batch norm: fold_batchnorm + channels_last). 'modules in order': "
            "the same loaded net with its inference path switched off (JohnsonStyleNet.forward's standard "
            "branch, as before the inference path existed). The glibc default allocator in this process; "
            "keep_freed_memory in a child process, as the CLI runs",
            "optimize": "stylize_optimize(content, loss=StyleTransferLoss(style, vgg_weights='vgg16'), "
            "iterations=warmup+timed+1, optimizer=...), default step sizes, init from the content; the "
            "iteration time runs from the end of the callback's matmul after evaluation k-1 to the start of "
            "the one after evaluation k (the optimiser step and one loss evaluation with backward); the rows' "
            "own iter_seconds are kept too (rows_iter_seconds_*; they include the callback's matmul)",
            "flops_counted": FLOPS_COUNTED,
            "optimize_flops_counted": OPT_FLOPS_COUNTED,
        },
        "flops_per_pixel": per_pixel,
        "conv_layers_32x32": layers,
        "phases": phases,
        "headline": headline(phases),
    }
    print(f"\nwrote {harness.write_result('stylize', payload, env)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
