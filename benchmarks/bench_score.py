"""Throughput of ``perceptlab score`` (:func:`perceptlab.score.score_pairs`) on a folder of image pairs, per metric.

Run ``python benchmarks/bench_score.py [--quick] [--threads N] [--ref-dir D --dist-dir D]``;
writes ``benchmarks/results/score.json``. The default data are the five TID2013
pairs (512x384) in ``/work/shared/data/tid2013_examples``; without them the
script says so and exits 0.

One call scores every pair with one metric (or all default metrics at once),
reading the files as ``perceptlab score`` does, so the time includes decoding;
``read only`` is that decoding alone. Each call is timed right after a fp32
matmul call, and the cost of a megapixel is also given in "matmul GFLOP": the
work the same machine, at that moment, does in fp32 matmul in the same time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import harness
import torch

from perceptlab.io import pair_by_stem, read_image
from perceptlab.score import DEFAULT_METRICS, score_pairs

DATA = Path("/work/shared/data/tid2013_examples")
MATMUL_N = 2048


def read_only(pairs) -> None:
    for ref, dist in pairs:
        read_image(ref)
        read_image(dist)


def main(argv=None) -> int:
    parser = harness.build_parser(__doc__.splitlines()[0])
    parser.add_argument("--ref-dir", type=Path, default=DATA / "ref_dir")
    parser.add_argument("--dist-dir", type=Path, default=DATA / "dist_dir")
    args = harness.parse_args(parser, argv)
    if not (args.ref_dir.is_dir() and args.dist_dir.is_dir()):
        print(f"skipped: no image folders at {args.ref_dir} and {args.dist_dir}")
        return 0
    pairs, _, _ = pair_by_stem(args.ref_dir, args.dist_dir)
    if not pairs:
        print(f"skipped: no pairs of images with the same name in {args.ref_dir} and {args.dist_dir}")
        return 0
    if args.quick:
        pairs = pairs[:1]
    env = harness.environment()
    megapixels = sum(read_image(ref).shape[-2:].numel() for ref, _ in pairs) / 1e6
    metrics = list(DEFAULT_METRICS)
    skipped = {}
    if importlib.util.find_spec("vmaf_torch") is not None:
        metrics.append("vmaf")
    else:
        skipped["vmaf"] = "vmaf_torch is not installed (pip install perceptlab[vmaf])"
    warmup, repeat = (1, 1) if args.quick else (1, 3)
    print(f"CPU: {env['cpu']['model']}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{len(pairs)} pairs, {megapixels:.3f} megapixels (reference sizes) from {args.ref_dir}")

    cases = {"read only": lambda: read_only(pairs)}
    case_metrics = {"read only": [], "all default metrics": list(DEFAULT_METRICS)}
    cases.update({name: (lambda name=name: score_pairs(pairs, [name])) for name in metrics})
    cases["all default metrics"] = lambda: score_pairs(pairs, list(DEFAULT_METRICS))
    mm, mm_flops = harness.matmul_call(MATMUL_N)
    rows = []
    for name, fn in cases.items():
        # One group per case: heavy metrics do not hold light ones up, and each keeps its own reference.
        monitor = harness.LoadMonitor()
        timing = harness.interleaved({"matmul": mm, name: fn}, warmup=warmup, repeat=repeat)
        load = monitor.stop()
        t, ref = timing[name], timing["matmul"]
        per_round_cost = [w * mm_flops / r / 1e9 / megapixels for w, r in zip(t["times_s"], ref["times_s"])]
        rows.append({
            "case": name,
            "metrics": case_metrics.get(name, [name]),
            "pairs": len(pairs),
            "megapixels": megapixels,
            "timing": t,
            "pairs_per_s": len(pairs) / t["median_s"],
            "megapixels_per_s": megapixels / t["median_s"],
            "matmul": {"n": MATMUL_N, "dtype": "float32", "gflops": mm_flops / ref["median_s"] / 1e9, "timing": ref},
            "matmul_gflop_per_megapixel": harness.spread(per_round_cost),
            "load": load,
        })  # fmt: skip
        row, other = rows[-1], load.get("other_cores", float("nan"))
        print(
            f"  {name:20s} {row['pairs_per_s']:7.2f} pairs/s  {row['megapixels_per_s']:7.2f} MP/s  "
            f"cost {row['matmul_gflop_per_megapixel']['median']:8.1f} matmul-GFLOP/MP  "
            f"(median of {t['n']}, IQR {t['iqr_s']:.3f} s; other load {other:.2f} cores)",
            flush=True,
        )

    print()
    harness.print_table(
        ["case", "pairs/s", "MP/s", "matmul-GFLOP per MP", "q1-q3", "median s", "IQR s"],
        [
            (r["case"], r["pairs_per_s"], r["megapixels_per_s"], r["matmul_gflop_per_megapixel"]["median"],
             f"{r['matmul_gflop_per_megapixel']['q1']:.1f}-{r['matmul_gflop_per_megapixel']['q3']:.1f}",
             r["timing"]["median_s"], r["timing"]["iqr_s"])
            for r in rows
        ],
    )  # fmt: skip
    payload = {
        "quick": args.quick,
        "data": {
            "ref_dir": str(args.ref_dir),
            "dist_dir": str(args.dist_dir),
            "pairs": [[str(a), str(b)] for a, b in pairs],
        },
        "method": {
            "timing": f"{warmup} untimed call(s) (loads the networks' weights), then {repeat} timed calls of "
            "score_pairs(pairs, metrics) over all pairs, each right after one fp32 matmul call",
            "includes": "decoding both files of every pair (see 'read only'), the metric, no writing of results",
            "megapixels": "of the reference images",
            "matmul_gflop_per_megapixel": "time per megapixel x the fp32 matmul rate of the call just before it: "
            "the cost in the machine's own unit, comparable across runs on a loaded machine; median over rounds",
            "weights": "the pretrained weights (from the local cache), as perceptlab score uses them",
        },
        "skipped": skipped,
        "results": rows,
    }
    path = harness.write_result("score", payload, env)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
