"""One training step of the Johnson x4 SR net on CPU: pixel loss against VGG feature losses, phase by phase.

Run ``python benchmarks/bench_sr_train.py [--quick] [--threads N]``; writes
``benchmarks/results/sr_train.json`` (about 3 minutes with one thread on our machine).

The step is the one of :func:`perceptlab.sr.train.train_sr`: ``sr = net(lr)``, ``terms = loss(sr, hr)``,
``optimizer.zero_grad(set_to_none=True)``, ``terms["loss"].backward()``, ``optimizer.step()``, for
``build_sr_net("johnson", 4)`` in training mode, Adam (lr 1e-3), batch 16 of 96x96 HR crops
(24x24 LR). Variants of the loss:

* ``pixel``: ``CombinedLoss.from_specs(["pixel:mse"])``.
* ``vgg``: ``CombinedLoss.from_specs(["feature:relu2_2"])`` as the library ships it (channels-last
  VGG-16 stopping at relu2_2, target features without a graph, layout-aware MSE), random VGG weights.
* ``naive``: VGG-16 to relu2_2 in the default (NCHW) layout, pred and target as one batch, both with
  graph (``VGG16Features(..., channels_last=False)`` on ``torch.cat([sr, hr])``, plain MSE).
* ``vgg_bf16``: ``vgg`` with the library's bfloat16 loss network
  (``CombinedLoss.from_specs(["feature:relu2_2"], vgg_precision="bf16")``: VGG weights and
  activations in bfloat16, the distance in float32; ``train sr --vgg-precision bf16``). Other
  numerics than float32: ``tests/test_bf16_loss.py`` bounds the change of the loss and its
  gradient, ``experiments/bf16_loss`` compares trained models.

Each allocator setting runs in its own child process (glibc's ``mallopt`` is process-wide and cannot
be undone): as shipped, and with :func:`perceptlab._alloc.keep_freed_memory` (what the CLI calls).
In a child the variants are timed round-robin, each step right after one fp32 matmul call; every
step also records the time of its phases (SR net forward, VGG target forward, VGG pred forward,
the rest of the loss, backward through the loss down to d loss / d sr, backward through the SR
net, optimizer). One more step per variant runs under ``torch.profiler`` for the operator table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable

import harness
import torch
import torch.nn.functional as F
from torch import nn

from perceptlab.features import VGG16Features
from perceptlab.features.base import native_bf16
from perceptlab.losses import CombinedLoss
from perceptlab.nets.sr import build_sr_net
from perceptlab.ops.resize import imresize

SCALE, MATMUL_N, LR_RATE = 4, 2048, 1e-3
FULL = {"batch": 16, "hr": 96, "warmup": 2, "repeat": 6}
QUICK = {"batch": 4, "hr": 48, "warmup": 1, "repeat": 2}
ALLOCATORS = ("glibc default", "keep_freed_memory")
VARIANTS = {
    "pixel": "pixel MSE: CombinedLoss.from_specs(['pixel:mse'])",
    "vgg": "VGG relu2_2 as shipped: CombinedLoss.from_specs(['feature:relu2_2']) (channels-last VGG, "
    "target without graph, loss net stops at relu2_2, layout-aware MSE)",
    "naive": "VGG relu2_2 naive: VGG16Features(('relu2_2',), channels_last=False) on cat([sr, hr]), "
    "both halves with graph, (f_sr - f_hr).pow(2).mean()",
    "vgg_bf16": "as 'vgg' with vgg_precision='bf16' (VGG in bfloat16, distance in float32; the library's "
    "opt-in, train sr --vgg-precision bf16): NOT fp32 numerics",
}
PHASES = (
    "net forward", "VGG target forward", "VGG pred forward", "VGG forward, pred+target batch", "loss, rest",
    "backward through the loss (to d loss / d sr)", "backward through the SR net", "optimizer (zero_grad + Adam)",
)  # fmt: skip

FLOPS_COUNTED = (
    "Convolutions only: Conv2d 2*Cin*Cout*kh*kw*Hout*Wout, ConvTranspose2d 2*Cin*Cout*kh*kw*Hin*Win "
    "(the equivalent convolution on its input), SplitKernelConv2d as the 9x9 convolution it equals. "
    "SR net: forward F; backward = input gradients of every convolution but the first (the LR input "
    "needs no gradient) + weight gradients of every convolution = 2F - F(first conv). VGG pass V = "
    "conv1_1..conv2_2 on the HR batch. As shipped: target forward V + pred forward V + input-gradient "
    "pass V (weights frozen; conv1_1's input gradient is needed, it is d loss / d sr) = 3V. Naive: "
    "forward of the 2N batch 2V + input gradients of the 2N batch 2V = 4V (autograd computes the "
    "target half too, it is in the same tensor). BatchNorm, activations, MSE, Adam are not counted."
)


class NaiveFeatureLoss(nn.Module):
    """Pred and target through an NCHW VGG-16 as one batch, both with graph, plain MSE (the issue's pattern)."""

    def __init__(self):
        super().__init__()
        self.net = VGG16Features(("relu2_2",), weights=None, channels_last=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        n = pred.shape[0]
        features = self.net(torch.cat([pred, target]))["relu2_2"]
        value = (features[:n] - features[n:]).pow(2).mean()
        return {"loss": value, "feature:relu2_2": value}


class Clock:
    """Adds the wall and CPU time since the previous mark to a named phase of the current step."""

    def __init__(self):
        self.steps: list[dict[str, list[float]]] = []
        self.recording = False

    def start(self) -> None:
        self.current: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self.last = (time.perf_counter(), time.process_time())

    def mark(self, phase: str) -> None:
        now = (time.perf_counter(), time.process_time())
        spent = self.current[phase]
        spent[0] += now[0] - self.last[0]
        spent[1] += now[1] - self.last[1]
        self.last = now

    def stop(self) -> None:
        if self.recording:
            self.steps.append(dict(self.current))


def make_step(variant: str, lr: torch.Tensor, hr: torch.Tensor) -> tuple[Callable[[], None], Clock]:
    """One training step of ``variant`` on fixed data as a no-argument callable, and its phase clock."""
    torch.manual_seed(0)
    net = build_sr_net("johnson", SCALE).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=LR_RATE)
    if variant == "pixel":
        loss = CombinedLoss.from_specs(["pixel:mse"])
    elif variant == "naive":
        loss = NaiveFeatureLoss()
    else:
        precision = "bf16" if variant == "vgg_bf16" else "fp32"
        loss = CombinedLoss.from_specs(["feature:relu2_2"], vgg_weights=None, vgg_precision=precision)
    clock = Clock()
    vgg = next((m for m in loss.modules() if isinstance(m, VGG16Features)), None)
    if vgg is not None:
        calls = []

        def before(module, inputs):
            clock.mark("loss, rest")

        def after(module, inputs, output):
            calls.append(None)
            if variant == "naive":
                clock.mark("VGG forward, pred+target batch")
            else:  # FeatureLoss runs the target (no graph) first, then the prediction
                clock.mark("VGG target forward" if len(calls) % 2 else "VGG pred forward")

        vgg.register_forward_pre_hook(before)
        vgg.register_forward_hook(after)

    def step():
        clock.start()
        sr = net(lr)
        clock.mark("net forward")
        sr.register_hook(lambda grad: clock.mark("backward through the loss (to d loss / d sr)"))
        terms = loss(sr, hr)
        clock.mark("loss, rest")
        optimizer.zero_grad(set_to_none=True)
        clock.mark("optimizer (zero_grad + Adam)")
        terms["loss"].backward()
        clock.mark("backward through the SR net")
        optimizer.step()
        float(terms["loss"].detach())  # train_sr logs the parts
        clock.mark("optimizer (zero_grad + Adam)")
        clock.stop()

    return step, clock


def conv_flops(net: nn.Module, x: torch.Tensor) -> list[dict]:
    """Every convolution of ``net`` on ``x`` with its FLOPs (see FLOPS_COUNTED), in call order."""
    rows, hooks = [], []

    def record(name):
        def hook(module, inputs, output):
            inp, (kh, kw) = inputs[0], module.kernel_size
            transposed = isinstance(module, nn.ConvTranspose2d)
            grid = inp.shape[2:] if transposed else output.shape[2:]
            positions = inp.shape[0] * grid[0] * grid[1]
            cin, cout = inp.shape[1], output.shape[1]
            flops = 2 * cin * cout // module.groups * kh * kw * positions
            rows.append({"layer": name, "cin": cin, "cout": cout, "k": kh, "flops": flops})

        return hook

    for name, module in net.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            hooks.append(module.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return rows


def flop_model(batch: int, hr: int) -> dict:
    """Analytic FLOPs of each phase and each step (see FLOPS_COUNTED)."""
    net_layers = conv_flops(build_sr_net("johnson", SCALE).eval(), torch.rand(batch, 3, hr // SCALE, hr // SCALE))
    with harness.unfused(VGG16Features(("relu2_2",), weights=None)) as vgg:
        vgg_layers = conv_flops(vgg, torch.rand(batch, 3, hr, hr))
    f_net, f_first, v = sum(r["flops"] for r in net_layers), net_layers[0]["flops"], sum(r["flops"] for r in vgg_layers)
    net_step = f_net + 2 * f_net - f_first
    phases = {
        "net forward": f_net,
        "backward through the SR net": 2 * f_net - f_first,
        "VGG target forward": v,
        "VGG pred forward": v,
        "VGG forward, pred+target batch": 2 * v,
        "backward through the loss (to d loss / d sr)": {"vgg": v, "vgg_bf16": v, "naive": 2 * v, "pixel": 0},
    }
    steps = {"pixel": net_step, "vgg": net_step + 3 * v, "vgg_bf16": net_step + 3 * v, "naive": net_step + 4 * v}
    return {
        "net_layers": net_layers, "vgg_layers": vgg_layers, "net_forward": f_net, "net_first_conv": f_first,
        "vgg_pass": v, "phases": phases, "steps": steps,
        "implied_ratio": {k: s / steps["pixel"] for k, s in steps.items()},
    }  # fmt: skip


def phase_flops(model: dict, variant: str, phase: str) -> float:
    value = model["phases"].get(phase, 0)
    return value[variant] if isinstance(value, dict) else value


def child(allocator: str, quick: bool) -> dict:
    """Everything measured under one allocator setting (run in its own process)."""
    kept = False
    if allocator == "keep_freed_memory":
        from perceptlab._alloc import keep_freed_memory

        kept = keep_freed_memory()
    cfg = QUICK if quick else FULL
    gen = torch.Generator().manual_seed(0)
    coarse = torch.rand(cfg["batch"], 3, cfg["hr"] // 8, cfg["hr"] // 8, generator=gen)
    hr = F.interpolate(coarse, size=(cfg["hr"], cfg["hr"]), mode="bilinear", align_corners=False)
    hr = (hr + 0.05 * torch.randn(hr.shape, generator=gen)).clamp(0, 1)  # some texture, as in crops of photos
    lr = imresize(hr, scale=1 / SCALE).clamp(0, 1)  # bicubic, as SRTrainingSet makes LR
    steps, clocks = {}, {}
    for variant in VARIANTS:
        steps[variant], clocks[variant] = make_step(variant, lr, hr)
    for _ in range(cfg["warmup"]):
        for fn in steps.values():
            fn()
    mm, mm_flops = harness.matmul_call(MATMUL_N)
    fns = {}
    for variant, fn in steps.items():
        fns[f"matmul|{variant}"] = mm
        fns[variant] = fn
        clocks[variant].recording = True
    monitor = harness.LoadMonitor()
    timings = harness.interleaved(fns, warmup=0, repeat=cfg["repeat"])
    load = monitor.stop()
    model = flop_model(cfg["batch"], cfg["hr"])
    rows = {}
    for variant in VARIANTS:
        t, ref = timings[variant], timings[f"matmul|{variant}"]
        flops = model["steps"][variant]
        mm_rate_cpu = mm_flops / ref["cpu_median_s"]
        phases = {}
        for phase in PHASES:
            spent = [s[phase] for s in clocks[variant].steps if phase in s]
            if not spent:
                continue
            wall, cpu = statistics.median(x[0] for x in spent), statistics.median(x[1] for x in spent)
            pf = phase_flops(model, variant, phase)
            fraction = pf / cpu / mm_rate_cpu if pf and cpu > 0 else None
            phases[phase] = {"wall_s": wall, "cpu_s": cpu, "flops": pf, "fraction_of_matmul_cpu_time": fraction}
        rows[variant] = {
            "description": VARIANTS[variant],
            "timing": t,
            "flops": flops,
            "gflops": flops / t["median_s"] / 1e9,
            "matmul": {"n": MATMUL_N, "gflops": mm_flops / ref["median_s"] / 1e9,
                       "gflops_cpu_time": mm_rate_cpu / 1e9, "timing": ref},
            "fraction_of_matmul": harness.paired_ratio(t, ref, flops, mm_flops),
            "fraction_of_matmul_cpu_time": harness.paired_ratio(t, ref, flops, mm_flops, clock="cpu"),
            "phases": phases,
        }  # fmt: skip
    ratios = {}
    for variant in VARIANTS:
        if variant != "pixel":
            ratios[variant] = {}
            for clock, key in (("wall", "times_s"), ("cpu", "cpu_times_s")):
                pairs = zip(timings[variant][key], timings["pixel"][key], strict=True)
                ratios[variant][clock] = harness.spread([v / p for v, p in pairs])
    profiles = {}
    from torch.profiler import ProfilerActivity, profile

    for variant, fn in steps.items():
        clocks[variant].recording = False
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
        profiles[variant] = [{"op": e.key, "self_cpu_ms": e.self_cpu_time_total / 1e3, "calls": e.count} for e in ops]
    return {"allocator": allocator, "allocator_changed": kept, "config": cfg, "load": load, "rows": rows,
            "ratio_to_pixel_step": ratios, "profile_one_step": profiles}  # fmt: skip


def print_child(result: dict) -> None:
    print(f"\n[{result['allocator']}] other load {result['load'].get('other_cores', float('nan')):.2f} cores")
    rows, ratios = result["rows"], result["ratio_to_pixel_step"]
    harness.print_table(
        ["variant", "median s", "CPU s", "GFLOP", "x matmul (CPU)", "/ pixel step", "q1-q3", "/ pixel (CPU)"],
        [(v, r["timing"]["median_s"], r["timing"]["cpu_median_s"], r["flops"] / 1e9,
          r["fraction_of_matmul_cpu_time"]["median"],
          ratios[v]["wall"]["median"] if v in ratios else 1.0,
          f"{ratios[v]['wall']['q1']:.2f}-{ratios[v]['wall']['q3']:.2f}" if v in ratios else "-",
          ratios[v]["cpu"]["median"] if v in ratios else 1.0) for v, r in rows.items()],
    )  # fmt: skip
    print("\nCPU seconds per phase (median over steps), fraction of the matmul rate where FLOPs are counted")
    harness.print_table(
        ["phase", *rows],
        [(p, *(f"{rows[v]['phases'][p]['cpu_s']:.3f}"
               + (f" ({rows[v]['phases'][p]['fraction_of_matmul_cpu_time']:.2f})"
                  if rows[v]["phases"][p]["fraction_of_matmul_cpu_time"] else "")
               if p in rows[v]["phases"] else "-" for v in rows)) for p in PHASES],
    )  # fmt: skip
    sys.stdout.flush()


def main(argv=None) -> int:
    parser = harness.build_parser(__doc__.splitlines()[0])
    parser.add_argument("--child", choices=ALLOCATORS, help=argparse.SUPPRESS)
    args = harness.parse_args(parser, argv)
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.quick)))
        return 0
    env = harness.environment()
    print(f"CPU: {env['cpu']['model']}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    cfg = QUICK if args.quick else FULL
    model = flop_model(cfg["batch"], cfg["hr"])
    print(f"FLOPs per step: pixel {model['steps']['pixel'] / 1e9:.1f} G, VGG {model['steps']['vgg'] / 1e9:.1f} G, "
          f"naive {model['steps']['naive'] / 1e9:.1f} G: the FLOPs alone imply VGG/pixel = "
          f"{model['implied_ratio']['vgg']:.2f}x, naive/pixel = {model['implied_ratio']['naive']:.2f}x")  # fmt: skip
    children = {}
    for allocator in ALLOCATORS:
        command = [sys.executable, __file__, "--child", allocator, "--threads", str(torch.get_num_threads())]
        proc = subprocess.run(command + (["--quick"] if args.quick else []), capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"child {allocator!r} failed ({proc.returncode}): {proc.stderr[-3000:]}")
        children[allocator] = json.loads(lines[-1].removeprefix("RESULT "))
        print_child(children[allocator])
    summary = {
        allocator: {v: {"wall": r["wall"]["median"], "cpu": r["cpu"]["median"]}
                    for v, r in c["ratio_to_pixel_step"].items()}
        for allocator, c in children.items()
    }  # fmt: skip
    target = 1.3
    payload = {
        "quick": args.quick,
        "method": {
            "step": "sr = net(lr); terms = loss(sr, hr); optimizer.zero_grad(set_to_none=True); "
            "terms['loss'].backward(); optimizer.step() (as train_sr), Johnson x4 in training mode, Adam lr 1e-3, "
            f"batch {cfg['batch']} of {cfg['hr']}x{cfg['hr']} HR crops, LR by MATLAB bicubic; random weights",
            "timing": f"{cfg['warmup']} untimed rounds, then {cfg['repeat']} timed rounds over the variants, each "
            "step right after one fp32 matmul call; each allocator setting in its own process",
            "ratio": "ratio_to_pixel_step: median over rounds of (variant step time / pixel step time of the same "
            "round), wall and CPU time; fraction_of_matmul as in the other benchmarks",
            "phases": "wall and CPU time between marks inside the step: after the net forward, around the VGG "
            "forward (hooks), after the loss, in a gradient hook on sr (the backward has reached the SR net), "
            "after backward, after the optimizer; medians over the timed steps",
            "flops_counted": FLOPS_COUNTED,
        },
        "flops": model,
        "target_ratio": target,
        "summary_ratio_to_pixel_step": summary,
        "target_met": {a: {v: s["cpu"] <= target for v, s in d.items() if v != "pixel"} for a, d in summary.items()},
        "native_bf16": native_bf16(),
        "children": children,
    }
    print(f"\nwrote {harness.write_result('sr_train', payload, env)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
