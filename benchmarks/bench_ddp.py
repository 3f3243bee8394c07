"""Steps per second of `perceptlab train sr` on 1 and 2 processes (torchrun, Gloo on the CPU), and the scaling.

Two small configurations (pixel MSE, x4, global batch 8 of 64x64 HR crops, synthetic images): Johnson's net,
whose BatchNorm layers are synchronised (GlobalBatchNorm: an all-reduce per layer forward and backward), and
SRCNN, which has none (DDP's gradient all-reduce alone). Each is trained by
``torchrun --standalone --nproc-per-node N -m perceptlab train sr`` for N = 1 and 2, one torch thread per
process, in alternating rounds. A run's speed comes from its own ``metrics.csv`` (one row per
step; ``seconds`` is process 0's cumulative time in the training steps, excluding start-up, data loading
and the final model file): steps/s = steps after the warm-up / seconds they took. The global batch is the
same for both, so with perfect scaling 2 processes run twice the steps per second; scaling efficiency =
steps/s(2) / (2 * steps/s(1)).
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

CONFIG = {"scale": 4, "loss": "pixel:mse", "batch-size": 8, "hr-crop": 64, "val-every": 10**6, "ckpt-every": 10**6,
          "log-every": 1}
NETS = ("johnson", "srcnn")
FULL = {"steps": 60, "warmup": 10, "rounds": 2}
QUICK = {"steps": 12, "warmup": 4, "rounds": 1}


def make_images(folder: Path, count: int = 8, side: int = 128) -> None:
    """Smooth random photos-to-be (coarse noise enlarged): the speed does not depend on the content."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = (rng.random((side // 8, side // 8, 3)) * 255).astype(np.uint8)
        Image.fromarray(coarse).resize((side, side), Image.BICUBIC).save(folder / f"img{i}.png")


def run(net: str, processes: int, data: Path, out: Path, steps: int, threads: int) -> dict:
    """One training of ``steps`` steps on ``processes`` processes; its step times from metrics.csv."""
    flags = [x for k, v in (CONFIG | {"net": net}).items() for x in (f"--{k}", str(v))]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
               "-m", "perceptlab", "train", "sr", *flags, "--data", str(data), "--steps", str(steps),
               "--threads", str(threads), "--out", str(out), "--no-progress"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = str(threads)
    monitor, before = harness.LoadMonitor(), os.times()
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    load, after = monitor.stop(), os.times()
    # LoadMonitor counts this script's own CPU time only: the run's (torchrun and its processes, waited for)
    # is the children's, which must not count as other jobs' load.
    run_cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    load["run_cores"] = run_cpu / wall
    if "machine_busy_cores" in load:
        load["other_cores"] = max(load["machine_busy_cores"] - load["own_cores"] - load["run_cores"], 0.0)
    if proc.returncode != 0:
        raise RuntimeError(f"{processes} processes failed ({proc.returncode}): {proc.stderr[-3000:]}")
    with open(out / "metrics.csv", newline="") as handle:
        seconds = [float(row["seconds"]) for row in csv.DictReader(handle)]
    return {"net": net, "processes": processes, "cumulative_step_seconds": seconds, "command_wall_s": wall,
            "load": load}


def speed(result: dict, warmup: int) -> dict:
    seconds = result["cumulative_step_seconds"]
    steps = len(seconds) - warmup
    timed = seconds[-1] - seconds[warmup - 1]
    # metrics.csv rounds the cumulative time to 10 ms: single steps are that coarse, the sum is not.
    per_step = [b - a for a, b in zip(seconds[warmup - 1 : -1], seconds[warmup:])]
    return {"steps_timed": steps, "seconds_timed": timed, "steps_per_s": steps / timed,
            "step_s": harness.spread(per_step)}  # fmt: skip


def main(argv=None) -> int:
    parser = harness.build_parser(__doc__.splitlines()[0])
    parser.add_argument("--note", action="append", default=[], help="a note for the JSON (what else ran, say)")
    args = harness.parse_args(parser, argv)
    threads = args.threads or 1
    cfg = QUICK if args.quick else FULL
    env = harness.environment()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench_ddp.") as tmp:
        data = Path(tmp) / "images"
        make_images(data)
        for r in range(cfg["rounds"]):
            for net in NETS:
                for processes in (1, 2):  # alternating, so that drifting load hits both alike
                    result = run(net, processes, data, Path(tmp) / f"run{r}_{net}_{processes}", cfg["steps"], threads)
                    result |= speed(result, cfg["warmup"])
                    rounds.append(result)
                    print(f"round {r}: {net}, {processes} process(es): {result['steps_per_s']:.2f} steps/s, median "
                          f"step {result['step_s']['median']:.3f} s, this run {result['load']['run_cores']:.2f} "
                          f"cores, other jobs {result['load'].get('other_cores', float('nan')):.2f}",
                          flush=True)  # fmt: skip
    summary = {}
    for net in NETS:
        by = {n: [r["steps_per_s"] for r in rounds if r["processes"] == n and r["net"] == net] for n in (1, 2)}
        median = {n: statistics.median(v) for n, v in by.items()}
        summary[net] = {
            "steps_per_s": {f"{n}_processes": median[n] for n in (1, 2)},
            "samples_per_s": {f"{n}_processes": median[n] * CONFIG["batch-size"] for n in (1, 2)},
            "speedup": median[2] / median[1],
            "scaling_efficiency": median[2] / (2 * median[1]),
            "scaling_efficiency_per_round": [two / (2 * one) for one, two in zip(by[1], by[2])],
            "other_cores_median": statistics.median(r["load"].get("other_cores", float("nan")) for r in rounds
                                                    if r["net"] == net),
        }  # fmt: skip
    harness.print_table(["net", "steps/s, 1 process", "steps/s, 2 processes", "speedup", "efficiency"],
                        [(net, v["steps_per_s"]["1_processes"], v["steps_per_s"]["2_processes"], v["speedup"],
                          v["scaling_efficiency"]) for net, v in summary.items()])  # fmt: skip
    payload = {
        "quick": args.quick,
        "notes": args.note,
        "method": {
            "command": "torchrun --standalone --nproc-per-node N -m perceptlab train sr --net NET " +
                       " ".join(f"--{k} {v}" for k, v in CONFIG.items()) + f" --threads {threads} --steps S",
            "timing": f"{cfg['steps']} steps per run, the first {cfg['warmup']} untimed; steps/s from process 0's "
                      "cumulative step time in metrics.csv (10 ms resolution); runs alternate 1 and 2 processes, "
                      f"{cfg['rounds']} round(s); medians over rounds",
            "processes": "Gloo on the CPU, one torch thread each (OMP_NUM_THREADS too); the global batch (8) is split "
                         "across the processes, gradients averaged by DDP; Johnson's 11 BatchNorm layers "
                         "synchronised (GlobalBatchNorm: one all-reduce per layer forward, one backward); SRCNN "
                         "has no BatchNorm",
            "efficiency": "steps/s with 2 processes / (2 x steps/s with 1): 1 is perfect scaling",
            "load": "per run: run_cores = CPU time of torchrun and its processes per wall second; other_cores = "
                    "the machine's busy cores (/proc/stat) minus this script's and the run's: other jobs",
        },
        "config": CONFIG | cfg | {"nets": NETS, "threads": threads},
        "summary": summary,
        "rounds": rounds,
    }  # fmt: skip
    print(f"wrote {harness.write_result('ddp', payload, env)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
