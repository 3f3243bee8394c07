"""A small timing harness shared by the benchmark scripts.

Method, in short (``benchmarks/README.md`` has the long form):

* every callable is run ``warmup`` times untimed (allocator, oneDNN primitive
  caches, lazy weight loading), then timed call by call with
  ``time.perf_counter`` until it has run ``repeat`` times *and* for ``min_time``
  seconds;
* we report the median and the spread (min, max, quartiles, IQR), never a mean
  alone;
* speeds are reported as ratios to the fp32 matmul rate measured in the same
  run, each call right after a matmul call, so that load from other jobs that
  drifts between rounds hits both sides of a ratio alike (with one thread; see
  the README on threads).

Each script is run as ``python benchmarks/bench_X.py [--quick] [--threads N]``,
prints a table and writes ``benchmarks/results/X.json`` with :func:`environment` inside.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


def spread(values: Sequence[float]) -> dict:
    """Median, extremes, quartiles and IQR of ``values``."""
    vs = sorted(values)
    q1, _, q3 = statistics.quantiles(vs, n=4, method="inclusive") if len(vs) >= 2 else (vs[0],) * 3
    return {
        "median": statistics.median(vs), "min": vs[0], "max": vs[-1], "q1": q1, "q3": q3, "iqr": q3 - q1, "n": len(vs),
    }  # fmt: skip


def summarize(times: Sequence[float], cpu_times: Sequence[float] | None = None) -> dict:
    """:func:`spread` of per-call wall times in seconds (keys with ``_s``), with the times in call order.

    ``cpu_times`` (process CPU time per call, all threads) are kept alongside with their median.
    """
    stats = {(k if k == "n" else f"{k}_s"): v for k, v in spread(times).items()}
    stats["times_s"] = list(times)
    if cpu_times is not None:
        stats["cpu_median_s"] = statistics.median(cpu_times)
        stats["cpu_times_s"] = list(cpu_times)
    return stats


def measure(fn: Callable[[], object], warmup: int = 2, repeat: int = 5, min_time: float = 0.0) -> dict:
    """Time ``fn()``: ``warmup`` untimed calls, then at least ``repeat`` timed calls and ``min_time`` seconds.

    Returns:
        ``{"median_s", "min_s", "max_s", "q1_s", "q3_s", "iqr_s", "n", "times_s", "cpu_median_s", "cpu_times_s"}``.
    """
    return interleaved({"fn": fn}, warmup=warmup, repeat=repeat, min_time=min_time)["fn"]


def interleaved(
    fns: dict[str, Callable[[], object]], warmup: int = 2, repeat: int = 5, min_time: float = 0.0
) -> dict[str, dict]:
    """Time several callables round-robin (one call of each per round), each as in :func:`measure`.

    Interleaving is what makes a ratio between two of them meaningful on a
    machine whose background load drifts: every round sees the same load.
    ``min_time`` is per callable.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    cpu_times: dict[str, list[float]] = {name: [] for name in fns}
    while True:
        for name, fn in fns.items():
            cpu, start = time.process_time(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(time.process_time() - cpu)
        done = min(len(t) for t in times.values()) >= repeat
        if done and all(sum(t) >= min_time for t in times.values()):
            return {name: summarize(times[name], cpu_times[name]) for name in fns}


def paired_ratio(work: dict, reference: dict, work_flops: float, reference_flops: float, clock: str = "wall") -> dict:
    """Rate of ``work`` over rate of ``reference``, round by round, from two :func:`interleaved` results.

    Pairing each call with the reference call just before it cancels load that
    changes between rounds; the median and quartiles are over rounds.
    ``clock="cpu"`` uses process CPU time instead of wall time: with one
    thread, that is the time we actually had a core, so it does not count the
    time other jobs took it (cache pollution by them still counts).
    """
    key = {"wall": "times_s", "cpu": "cpu_times_s"}[clock]
    ratios = [(work_flops / w) / (reference_flops / r) for w, r in zip(work[key], reference[key], strict=True)]
    w_med, r_med = statistics.median(work[key]), statistics.median(reference[key])
    return {
        **spread(ratios),
        "clock": clock,
        "of_medians": (work_flops / w_med) / (reference_flops / r_med),
        "of_best": (work_flops / min(work[key])) / (reference_flops / min(reference[key])),
    }


def matmul_call(n: int = 2048, dtype: torch.dtype = torch.float32) -> tuple[Callable[[], object], float]:
    """A square ``n x n`` matmul as a callable, and its FLOP count (``2 n^3``)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen, dtype=dtype)
    b = torch.randn(n, n, generator=gen, dtype=dtype)
    out = torch.empty(n, n, dtype=dtype)
    return (lambda: torch.mm(a, b, out=out)), 2.0 * n**3


def matmul_gflops(n: int = 2048, dtype: torch.dtype = torch.float32, warmup: int = 3, repeat: int = 10) -> dict:
    """The matmul rate of this process now, in GFLOP/s (median call; ``best`` from the fastest call)."""
    fn, flops = matmul_call(n, dtype)
    stats = measure(fn, warmup=warmup, repeat=repeat)
    return {
        "n": n,
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "gflops": flops / stats["median_s"] / 1e9,
        "gflops_best": flops / stats["min_s"] / 1e9,
        "timing": stats,
    }


def after_matmul(
    calls: dict[str, Callable[[], object]], warmup: int, repeat: int, matmul_n: int = 2048
) -> dict[str, dict]:
    """Time each callable round-robin, every call right after one fp32 ``matmul_n`` matmul call.

    Returns ``{name: {"timing": ..., "matmul_timing": ..., "matmul": {n, dtype, gflops,
    gflops_cpu_time, timing}, "load": LoadMonitor result}}``; pass ``timing`` and
    ``matmul_timing`` to :func:`paired_ratio` (with :func:`matmul_call`'s FLOPs, ``2 n^3``)
    for a fraction of the matmul rate.
    """
    mm, mm_flops = matmul_call(matmul_n)
    fns: dict[str, Callable[[], object]] = {}
    for name, call in calls.items():
        fns[f"matmul|{name}"] = mm
        fns[name] = call
    monitor = LoadMonitor()
    timings = interleaved(fns, warmup=warmup, repeat=repeat)
    load = monitor.stop()
    out = {}
    for name in calls:
        t, ref = timings[name], timings[f"matmul|{name}"]
        out[name] = {
            "timing": t, "matmul_timing": ref, "load": load,
            "matmul": {"n": matmul_n, "dtype": "float32", "gflops": mm_flops / ref["median_s"] / 1e9,
                       "gflops_cpu_time": mm_flops / ref["cpu_median_s"] / 1e9, "timing": ref},
        }  # fmt: skip
    return out


class LoadMonitor:
    """How busy the machine was while we measured, from ``/proc/stat`` and our own CPU time.

    ``other_cores`` (machine busy time minus ours, per wall second) is the
    load of other jobs: on a shared machine it says how much a timing can be trusted.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, list[int] | None]:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            fields = None
        return time.perf_counter(), time.process_time(), fields

    def stop(self) -> dict:
        (w0, p0, f0), (w1, p1, f1) = self.start, self._sample()
        wall, own = w1 - w0, p1 - p0
        result = {"wall_s": wall, "own_cores": own / wall}
        if f0 and f1:
            tick = os.sysconf("SC_CLK_TCK")
            delta = [(b - a) / tick for a, b in zip(f0, f1)]
            idle = delta[3] + delta[4]  # idle + iowait
            busy = sum(delta[:8]) - idle  # user .. steal; guest time is already inside user
            result["machine_busy_cores"] = busy / wall
            result["other_cores"] = max(busy - own, 0.0) / wall
            result["steal_cores"] = delta[7] / wall
        return result


@contextlib.contextmanager
def unfused(module: torch.nn.Module):
    """Feature networks inside ``module`` run layer by layer, so that forward hooks on their
    convolutions see every call (fused conv + ReLU calls bypass the modules); for counting FLOPs."""
    from perceptlab.features import FeatureNet

    nets = [m for m in module.modules() if isinstance(m, FeatureNet)]
    saved = [net.fuse for net in nets]
    for net in nets:
        net.fuse = False
    try:
        yield module
    finally:
        for net, fuse in zip(nets, saved):
            net.fuse = fuse


def keep_freed_memory() -> bool:
    """Ask glibc malloc to keep freed memory for reuse instead of returning it to the kernel.

    By default every block over the mmap threshold (at most 32 MiB) is a fresh
    mapping whose pages fault in, zeroed by the kernel, on first touch; with
    activations of tens of MiB that is a large share of a training step. Equivalent
    to starting Python with ``MALLOC_MMAP_THRESHOLD_=2147483647
    MALLOC_TRIM_THRESHOLD_=2147483647 MALLOC_TOP_PAD_=268435456``. Returns False
    where the C library has no ``mallopt`` (not glibc); it cannot be undone.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    # M_TRIM_THRESHOLD = -1, M_TOP_PAD = -2, M_MMAP_THRESHOLD = -3; values are C ints.
    return all(mallopt(param, value) == 1 for param, value in ((-1, 2**31 - 1), (-2, 2**28), (-3, 2**31 - 1)))


def _cpu_info() -> dict:
    info: dict = {"model": platform.processor() or "unknown"}
    flags: set[str] = set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    keys = {"model name": "model", "cpu family": "family", "model": "model_number", "stepping": "stepping"}
    for line in text.split("\n\n")[0].splitlines():  # the first processor is enough
        key, _, value = line.partition(":")
        key = key.strip()
        if key in keys:
            info[keys[key]] = value.strip()
        elif key == "flags":
            flags = set(value.split())
    info["flags"] = {f: f in flags for f in _CPU_FLAGS} if flags else None
    return info


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def environment() -> dict:
    """What a reader needs to interpret a timing: software, threads, backends, CPU, commit, date."""
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_info(),
        "os_cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "mkl_available": torch.backends.mkl.is_available(),
        "openmp_available": torch.backends.openmp.is_available(),
        "loadavg_at_start": load,
        "git_commit": _git_commit(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv,
    }


RESULT_TAG: str | None = None  # set by --tag (parse_args): results/NAME-TAG.json instead of NAME.json


def write_result(name: str, payload: dict, env: dict | None = None) -> Path:
    """Write ``results/NAME.json`` (``NAME-TAG.json`` after ``--tag TAG``) atomically (temp file in the
    same folder, then ``os.replace``).

    ``env`` is the :func:`environment` taken at the start of the run; it is
    taken now if not given. The load average at the end is added either way.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(env or environment())
    try:
        env["loadavg_at_end"] = os.getloadavg()
    except OSError:
        pass
    document = {"benchmark": name, "environment": env, **payload}
    if RESULT_TAG:
        name = f"{name}-{RESULT_TAG}"
    path = RESULTS_DIR / f"{name}.json"
    fd, tmp = tempfile.mkstemp(dir=RESULTS_DIR, prefix=f".{name}.", suffix=".json.tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a result is meant to be read
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def build_parser(description: str) -> argparse.ArgumentParser:
    """The command line every benchmark shares: ``[--quick] [--threads N]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats, to check the script runs")
    parser.add_argument(
        "--threads", type=int, help="torch.set_num_threads for the whole run (default: torch's choice)"
    )
    parser.add_argument("--tag", type=_tag, help="write results/NAME-TAG.json: another machine's results beside "
                        "the main ones")  # fmt: skip
    return parser


def _tag(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        raise argparse.ArgumentTypeError(f"a tag is letters, digits, '_', '.' and '-', got {value!r}")
    return value


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse, and apply ``--threads`` before anything is measured (and ``--tag`` to :func:`write_result`)."""
    global RESULT_TAG
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    RESULT_TAG = args.tag
    return args


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows as an aligned plain-text table (floats with 3 significant digits)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
