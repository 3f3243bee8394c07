"""VGG-16 feature loss on CPU: achieved GFLOP/s as a fraction of the same run's fp32 matmul rate.

Run ``python benchmarks/bench_feature_loss.py [--quick] [--threads N] [--no-compile]``; writes
``benchmarks/results/feature_loss.json``. Three phases, in this order:

1. ``matrix``: :class:`perceptlab.losses.FeatureLoss` up to relu2_2 and relu4_3, at
   256x256 batch 4 and 96x96 batch 16, forward and forward+backward, as the library
   ships it (channels-last VGG, layout-aware MSE) and with ``channels_last=False`` (NCHW).
2. ``investigation``: one case (relu2_2, 256x256 batch 4, forward+backward) under
   variants: the MSE the library used before (``pow(2).mean``), NCHW weights, a
   channels-last input, the old default (NCHW with that MSE), threads, oneDNN off,
   one batch for pred and target, ``torch.compile``, bf16 autocast.
3. ``allocator``: glibc malloc told to keep freed memory (it cannot be undone, so
   it comes last), for the loss as shipped and the old default.

Each variant is timed round-robin with a square fp32 matmul run just before it;
the ratio reported is per round (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import harness
import torch
from torch import nn

from perceptlab.losses.perceptual import FeatureLoss

FULL_SHAPES = {"256x256 b4": (4, 256, 256), "96x96 b16": (16, 96, 96)}
QUICK_SHAPES = {"64x64 b2": (2, 64, 64), "32x32 b4": (4, 32, 32)}
DEPTHS = ("relu2_2", "relu4_3")
LAYOUTS = ("channels_last", "nchw")  # as shipped first
LAYOUT_NAMES = {"channels_last": "as shipped", "nchw": "NCHW"}
MODES = ("forward", "forward+backward")
MATMUL_N = 2048

FLOPS_COUNTED = (
    "Convolutions only, 2*Cin/groups*Cout*k*k*Hout*Wout each (a multiply-add is 2 FLOPs), "
    "up to the deepest requested layer; ReLU, pooling, normalisation and the MSE are not counted. "
    "forward = pred pass + target pass (2 passes). backward = the input-gradient convolutions of the "
    "pred pass only (1 pass): the weights are frozen, so no weight-gradient convolutions run, and the "
    "target pass has no graph. The first convolution's input gradient IS counted: the loss must "
    "return d loss / d pred (pred requires grad, as the output of a generator would), and autograd "
    "computes it. forward+backward = 3 passes. Variants that do extra work (one batch for pred and "
    "target) are credited with the same useful FLOPs."
)


class PlainMSEFeatureLoss(FeatureLoss):
    """:class:`FeatureLoss` with the MSE the library used before (``pow(2).mean`` on the features as they come).

    On channels-last features its backward takes a slow strided path; the library
    now compares the NHWC views (``perceptlab.losses.perceptual._per_sample_mse``).
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features = self.net(target)
        pred_features = self.net(pred)
        return sum(
            w * (pred_features[k] - target_features[k]).pow(2).mean(dim=(1, 2, 3))
            for k, w in self.layer_weights.items()
        ).mean()


class OneBatchFeatureLoss(FeatureLoss):
    """:class:`FeatureLoss` with pred and target through VGG as one batch (the target half is detached after)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n = pred.shape[0]
        features = self.net(torch.cat([pred, target]))
        return sum(
            w * (features[k][:n] - features[k][n:].detach()).pow(2).mean(dim=(1, 2, 3))
            for k, w in self.layer_weights.items()
        ).mean()


def conv_flops(net: nn.Module, height: int, width: int) -> list[dict]:
    """FLOPs of every convolution of ``net`` for one (3, height, width) image, read from the shapes it runs."""
    rows, hooks = [], []

    def record(name):
        def hook(module, inputs, output):
            cin, cout = inputs[0].shape[1], output.shape[1]
            kh, kw = module.kernel_size
            flops = 2 * cin // module.groups * cout * kh * kw * output.shape[2] * output.shape[3]
            rows.append(
                {"layer": name, "cin": cin, "cout": cout, "k": kh, "out": list(output.shape[2:]), "flops": flops}
            )

        return hook

    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(record(name.split(".")[-1])))
    try:
        with torch.no_grad(), harness.unfused(net):
            net(torch.zeros(1, 3, height, width))
    finally:
        for h in hooks:
            h.remove()
    return rows


@contextlib.contextmanager
def num_threads(n: int | None):
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def make_step(
    depth: str,
    shape: tuple[int, int, int],
    layout: str = "channels_last",
    mode: str = "forward+backward",
    loss_class: type[FeatureLoss] = FeatureLoss,
    weights_channels_last: bool = True,
    input_channels_last: bool = False,
    mkldnn: bool = True,
    compile: bool = False,
    bf16: bool = False,
    threads: int | None = None,
):
    """One call of the loss (and its backward) on fixed random inputs, as a no-argument callable."""
    n, h, w = shape
    channels_last = layout == "channels_last"
    loss = loss_class(depth, weights=None, channels_last=channels_last)  # FeatureNet makes the weights channels-last
    if channels_last and not weights_channels_last:
        loss.to(memory_format=torch.contiguous_format)
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(n, 3, h, w, generator=gen)
    target = torch.rand(n, 3, h, w, generator=gen)
    if input_channels_last:
        pred = pred.contiguous(memory_format=torch.channels_last)
        target = target.contiguous(memory_format=torch.channels_last)
    pred.requires_grad_(True)  # as the output of a network being trained
    fn = torch.compile(loss) if compile else loss
    backward = mode == "forward+backward"

    def step():
        with (
            num_threads(threads),
            torch.backends.mkldnn.flags(enabled=mkldnn),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16),
        ):
            pred.grad = None
            value = fn(pred, target)
            if backward:
                value.backward()

    return step


def matmul_step(threads: int | None = None):
    mm, flops = harness.matmul_call(MATMUL_N)

    def step():
        with num_threads(threads):
            mm()

    return step, flops


def run_group(variants: dict[str, dict], repeat: int) -> list[dict]:
    """Time ``{name: {"step", "flops", ...}}`` round-robin, each right after its own matmul reference call."""
    fns = {}
    for name, v in variants.items():
        fns[f"matmul|{name}"], mm_flops = matmul_step(v.get("threads"))
        fns[name] = v["step"]
    monitor = harness.LoadMonitor()
    timings = harness.interleaved(fns, warmup=0, repeat=repeat)  # the steps are warm: see build()
    load = monitor.stop()
    rows = []
    for name, v in variants.items():
        t, ref = timings[name], timings[f"matmul|{name}"]
        rows.append({
            **{k: v[k] for k in v if k not in ("step",)},
            "variant": name,
            "timing": t,
            "gflops": v["flops"] / t["median_s"] / 1e9,
            "matmul": {"n": MATMUL_N, "dtype": "float32", "gflops": mm_flops / ref["median_s"] / 1e9, "timing": ref},
            "fraction_of_matmul": harness.paired_ratio(t, ref, v["flops"], mm_flops),
            "fraction_of_matmul_cpu_time": harness.paired_ratio(t, ref, v["flops"], mm_flops, clock="cpu"),
            "load": load,
        })  # fmt: skip
    return rows


def case_flops(depth: str, shape: tuple[int, int, int]) -> dict:
    n, h, w = shape
    per_pass = n * sum(r["flops"] for r in conv_flops(FeatureLoss(depth, weights=None).net, h, w))
    return {"forward": 2 * per_pass, "backward": per_pass, "forward+backward": 3 * per_pass}


def print_rows(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    harness.print_table(
        ["variant", "threads", "median s", "IQR s", "GFLOP/s", "matmul GFLOP/s", "x matmul", "q1-q3",
         "x matmul (CPU time)", "other load"],
        [
            (
                r["variant"], r["threads"], r["timing"]["median_s"], r["timing"]["iqr_s"], r["gflops"],
                r["matmul"]["gflops"], r["fraction_of_matmul"]["median"],
                f"{r['fraction_of_matmul']['q1']:.3f}-{r['fraction_of_matmul']['q3']:.3f}",
                r["fraction_of_matmul_cpu_time"]["median"],
                f"{r['load'].get('other_cores', float('nan')):.2f} cores",
            )
            for r in rows
        ],
    )  # fmt: skip
    sys.stdout.flush()


def investigation_variants(compile_ok: bool) -> dict[str, tuple[dict, str]]:
    """The variants of the investigation phase: ``{name: (options for make_step, description)}``."""
    threads = torch.get_num_threads()
    other = (os.cpu_count() or 1) if threads == 1 else threads // 2
    nchw = {"layout": "nchw"}
    specs = {
        "as shipped": ({}, "FeatureLoss(): channels-last VGG, layout-aware MSE"),
        "as shipped, plain MSE (before)": (
            {"loss_class": PlainMSEFeatureLoss}, "channels-last VGG with the previous MSE, pow(2).mean",
        ),
        "as shipped, weights NCHW": (
            {"weights_channels_last": False}, "channels-last input, weights converted back to NCHW",
        ),
        "as shipped, channels-last input": (
            {"input_channels_last": True}, "input already channels-last: no layout copy after the normalisation",
        ),
        "NCHW": (nchw, "FeatureLoss(channels_last=False)"),
        "NCHW, plain MSE (old default)": (
            {**nchw, "loss_class": PlainMSEFeatureLoss}, "the previous default: NCHW VGG, pow(2).mean",
        ),
        f"as shipped, {other} threads": ({"threads": other}, f"torch.set_num_threads({other}) around the call"),
        "as shipped, oneDNN off": ({"mkldnn": False}, "torch.backends.mkldnn.flags(enabled=False)"),
        "as shipped, one batch": (
            {"loss_class": OneBatchFeatureLoss}, "pred and target through VGG as one batch of 2N",
        ),
        "as shipped, bf16 autocast": (
            {"bf16": True}, "torch.autocast('cpu', bfloat16): NOT fp32, other numerics; for information only",
        ),
    }
    if compile_ok:
        specs["as shipped, torch.compile"] = ({"compile": True}, "torch.compile(loss), inductor, default options")
        specs["NCHW, torch.compile"] = ({**nchw, "compile": True}, "as above, NCHW")
    if other == threads:  # one core: no other thread count to try
        specs = {k: v for k, v in specs.items() if "threads" not in k}
    return specs


def allocator_variants(headline: bool) -> dict[str, tuple[dict, str]]:
    """The variants of the allocator phase; the headline case gets two more to separate the two changes."""
    note = "malloc keeps freed memory"
    specs = {
        "as shipped": ({}, f"FeatureLoss(), {note}"),
        "NCHW, plain MSE (old default)": (
            {"layout": "nchw", "loss_class": PlainMSEFeatureLoss}, f"the previous default, {note}",
        ),
    }
    if headline:
        specs["as shipped, plain MSE (before)"] = (
            {"loss_class": PlainMSEFeatureLoss}, f"channels-last, pow(2).mean, {note}",
        )
        specs["NCHW"] = ({"layout": "nchw"}, f"FeatureLoss(channels_last=False), {note}")
    return specs


def matrix_variants() -> dict[str, tuple[dict, str]]:
    return {
        f"{LAYOUT_NAMES[layout]}, {mode}": (
            {"layout": layout, "mode": mode},
            "FeatureLoss as shipped" if layout == "channels_last" else "FeatureLoss(channels_last=False)",
        )
        for layout in LAYOUTS for mode in MODES
    }  # fmt: skip


def build(options: dict, description: str, depth: str, shape: tuple[int, int, int], phase: str) -> dict:
    """A variant ready to time: its step, made warm by two untimed calls, and what describes it."""
    start = time.perf_counter()
    step = make_step(depth, shape, **options)
    step()  # the first call creates oneDNN primitives, and for torch.compile compiles
    first_call_s = time.perf_counter() - start
    step()  # warm-up
    mode = options.get("mode", "forward+backward")
    n, h, w = shape
    return {
        "phase": phase, "depth": depth, "input": {"batch": n, "height": h, "width": w},
        "layout": options.get("layout", "channels_last"), "mode": mode, "description": description,
        "threads": options.get("threads") or torch.get_num_threads(), "flops": case_flops(depth, shape)[mode],
        "first_call_s": first_call_s, "step": step,
    }  # fmt: skip


def run_phase(phase: str, cases, repeat: int) -> tuple[list[dict], dict, dict]:
    """Every ``(depth, label, shape, specs)`` case as one round-robin group; returns rows, load, failed variants."""
    monitor, rows, failed = harness.LoadMonitor(), [], {}
    for depth, label, shape, specs in cases:
        group = {}
        for name, (options, description) in specs.items():
            try:
                group[name] = build(options, description, depth, shape, phase)
            except Exception as error:  # a variant that does not run here is a result too
                failed[f"{depth}, {label}, {name}"] = f"{type(error).__name__}: {error}"[:500]
                print(f"variant {name!r} failed: {failed[f'{depth}, {label}, {name}']}")
        group_rows = run_group(group, repeat)
        print_rows(group_rows, f"[{phase}] {depth}, {label}")
        rows += group_rows
    return rows, monitor.stop(), failed


def main(argv=None) -> int:
    parser = harness.build_parser(__doc__.splitlines()[0])
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variants")
    args = harness.parse_args(parser, argv)
    env = harness.environment()
    env["allocator_env"] = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "LD_PRELOAD"}
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    # build() makes two untimed calls per variant; fewer timed calls in phases 2 and 3 keep the full run
    # near 5 minutes on one core.
    repeat, repeat_variants = (2, 2) if args.quick else (4, 3)
    print(f"CPU: {env['cpu']['model']}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    first_label, first_shape = next(iter(shapes.items()))
    results, load, failed = [], {}, {}

    # 1. The library as it ships.
    cases = [(d, label, shape, matrix_variants()) for d in DEPTHS for label, shape in shapes.items()]
    rows, load["matrix"], failed["matrix"] = run_phase("matrix", cases, repeat)
    results += rows

    # 2. What moves the forward+backward ratio, on one case.
    cases = [("relu2_2", first_label, first_shape, investigation_variants(not args.no_compile))]
    rows, load["investigation"], failed["investigation"] = run_phase("investigation", cases, repeat_variants)
    results += rows

    # 3. With freed memory kept by malloc: it cannot be undone, so it comes last.
    allocator = harness.keep_freed_memory()
    if allocator:
        cases = [(d, first_label, first_shape, allocator_variants(d == "relu2_2")) for d in DEPTHS]
        rows, load["allocator"], failed["allocator"] = run_phase("allocator", cases, repeat_variants)
        results += rows

    payload = {
        "quick": args.quick,
        "method": {
            "timing": f"two untimed calls per variant (first call and warm-up), then {repeat} timed calls "
            f"({repeat_variants} in the investigation and allocator phases), round-robin over the variants of "
            "a group, each right after one fp32 matmul call",
            "ratio": "fraction_of_matmul.median = median over rounds of (variant GFLOP/s / matmul GFLOP/s "
            "of the call just before it); of_medians and of_best are the ratio of medians and of fastest calls. "
            "fraction_of_matmul_cpu_time: the same with process CPU time instead of wall time, the robust one "
            "with --threads 1 on a machine other jobs share (it leaves out the time they held our core); "
            "with more threads it counts spin-waiting and is only indicative",
            "matmul": f"torch.mm of two {MATMUL_N}x{MATMUL_N} float32 matrices into a preallocated output, "
            "2*n^3 FLOPs, same thread count as the variant",
            "flops_counted": FLOPS_COUNTED,
            "weights": "weights=None (random): the speed does not depend on the values",
            "variants": "'as shipped' = FeatureLoss(depth, weights=None): channels-last VGG (weights made "
            "channels-last by FeatureNet) and the layout-aware MSE of losses/perceptual.py; 'NCHW' = the same "
            "with channels_last=False; 'plain MSE (before)' = the previous (pred - target).pow(2).mean(dim=(1,2,3)); "
            "'old default' = NCHW with that MSE",
            "forward_mode": "loss(pred, target) with pred requiring grad, as in training (graph built, not used)",
            "allocator_phase": "glibc mallopt: M_MMAP_THRESHOLD and M_TRIM_THRESHOLD 2**31-1, M_TOP_PAD 256 MiB",
        },
        "conv_layers_per_image": {
            f"{d}, {h}x{w}": conv_flops(FeatureLoss(d, weights=None).net, h, w)
            for d in DEPTHS for _, h, w in shapes.values()
        },
        "allocator_phase_ran": allocator,
        "failed_variants": failed,
        "load": load,
        "results": results,
    }
    path = harness.write_result("feature_loss", payload, env)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
