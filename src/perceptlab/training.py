"""What every trainer shares: seeds, atomic resumable checkpoints, a metrics CSV, a progress bar.

A run folder holds::

    RUN_DIR/config.toml        the full configuration (checked on resume; a raised step budget is recorded)
    RUN_DIR/checkpoint.pt      latest state: config, step, model(s), optimizer(s), RNG state
    RUN_DIR/metrics.csv        one row per logged step
    RUN_DIR/samples/           sample images along the way
    RUN_DIR/model.safetensors  final weights with their metadata
    RUN_DIR/.lock              the training process (pid, machine) while it trains: a second trainer is refused

Checkpoints are written to a temporary file and renamed, so an interrupted
run never leaves a broken one; a resumed run continues from the saved step
with the same random stream and gives the same result as an uninterrupted one.
Ctrl-C or SIGTERM during training saves a checkpoint at the end of the step in
progress (:class:`Checkpoints`).

Under ``torchrun`` the processes train one model together (:mod:`perceptlab.distributed`): process 0
alone writes the run folder, and every process resumes from the checkpoint it reads.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
import signal
import sys
import threading
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from perceptlab._files import atomic_write, atomic_write_text, check_output_dir
from perceptlab.distributed import World, world


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return a torch generator seeded with ``seed`` for data sampling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def save_checkpoint(path: str | os.PathLike, state: Mapping) -> None:
    """Write ``state`` (tensors, state dicts, numbers, strings) atomically with ``torch.save``."""
    atomic_write(path, lambda tmp: torch.save(dict(state), tmp))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only``: no code is run)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def to_toml(config: Mapping) -> str:
    """A flat or one-level-nested mapping of str/int/float/bool/list values as TOML."""

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v))  # a JSON string is a valid TOML basic string

    lines = [f"{k} = {value(v)}" for k, v in config.items() if v is not None and not isinstance(v, Mapping)]
    for k, v in config.items():
        if isinstance(v, Mapping):
            lines += ["", f"[{k}]", *(f"{kk} = {value(vv)}" for kk, vv in v.items() if vv is not None)]
    return "\n".join(lines) + "\n"


class MetricsLog:
    """Rows of numbers appended to ``metrics.csv``; on resume, rows after the resumed step are dropped."""

    def __init__(self, path: str | os.PathLike, resume_step: int = 0):
        self.path = Path(path)
        self.fields: list[str] | None = None
        if self.path.is_file():
            with open(self.path, newline="") as handle:
                rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= resume_step]
            if rows:
                self.fields = list(rows[0])
                self._rewrite(rows)
            else:
                self.path.unlink()

    def _rewrite(self, rows: list[dict]) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=self.fields)
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(self.path, write)

    def append(self, row: Mapping[str, float]) -> None:
        """Add a row; a row with new columns (validation scores, say) widens the file's header."""
        row = {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
        new = [k for k in row if k not in (self.fields or [])]
        if new:
            old = list(csv.DictReader(open(self.path, newline=""))) if self.fields else []
            self.fields = [*(self.fields or []), *new]
            self._rewrite([*old, row])
            return
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.fields).writerow(row)


# ------------------------------------------------------------------ learning-rate schedule
# Every trainer's configuration has ``lr_milestones`` (steps) and ``lr_gamma``: the learning rates of all
# the run's optimizers are multiplied by ``lr_gamma`` at each milestone (step decay, as SRResNet, ESRGAN
# and Balle et al. train). train_loop applies it; an empty list keeps the rates constant.

SCHEDULE_KEYS = ("lr_milestones", "lr_gamma")


def check_lr_schedule(milestones, gamma) -> None:
    """Raise ``ValueError`` unless ``milestones`` are increasing positive step counts and ``0 < gamma <= 1``."""
    if not isinstance(milestones, (list, tuple)) or not all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in milestones):  # fmt: skip
        raise ValueError(f"lr_milestones must be a list of positive step counts, got {milestones!r}")
    if any(b <= a for a, b in zip(milestones, milestones[1:], strict=False)):
        raise ValueError(f"lr_milestones must increase, got {list(milestones)}")
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise ValueError(f"lr_gamma must be in (0, 1], got {gamma!r}")


def lr_factor(milestones, gamma: float, step: int) -> float:
    """The learning-rate multiplier of the step that follows ``step`` finished ones: ``gamma`` to the power of
    the number of milestones reached (a milestone of 1000 decays the 1001st step and after)."""
    return float(gamma) ** sum(1 for m in milestones if m <= step)


def _same_past_schedule(before: Mapping, now: Mapping, step: int) -> bool:
    """Whether two configurations' schedules gave the same rate to each of the first ``step`` steps: a run may be
    resumed with a schedule that differs only after its checkpoint (a decay added to a longer budget)."""
    old = (before.get("lr_milestones") or [], before.get("lr_gamma", 0.5))
    new = (now.get("lr_milestones") or [], now.get("lr_gamma", 0.5))
    return all(lr_factor(*old, s) == lr_factor(*new, s) for s in sorted({0, *(m for m in old[0] + new[0] if m < step)}))


class RunStart(NamedTuple):
    """What :func:`start_run` opens: the processes (``torchrun`` or one), this process's part of the global
    batch, the run folder, the checkpoint being resumed (or ``None``) and the seeded random stream."""

    processes: World
    shard: tuple[int, int]
    out: Path
    resumed: dict | None
    generator: torch.Generator


def start_run(config, out: str | os.PathLike) -> RunStart:
    """The opening of every trainer: validate ``config`` (a :class:`TrainConfig` dataclass with ``batch_size``,
    ``threads`` and ``seed``), join the ``torchrun`` processes if there are any, set the CPU threads, open or resume
    the run folder (:func:`prepare_run_dir`) and seed every random stream (:func:`seed_everything`)."""
    config.validate()
    processes = world()
    shard = processes.shard(config.batch_size)
    if config.threads:
        torch.set_num_threads(config.threads)
    out, resumed = prepare_run_dir(out, dataclasses.asdict(config), dataclasses.asdict(type(config)()))
    return RunStart(processes, shard, out, resumed, seed_everything(config.seed))


def prepare_run_dir(
    out: str | os.PathLike, config: Mapping, defaults: Mapping | None = None
) -> tuple[Path, dict | None]:
    """Create ``out``; return it and the checkpoint to resume from (``None`` for a fresh run).

    A run folder belongs to one configuration: resuming with a different one
    is refused, naming the keys that differ, rather than silently mixing two
    experiments. A key that the saved configuration lacks (an option added to
    the trainer since) counts as its value in ``defaults``, the configuration
    class's defaults. Only ``steps`` (upwards from the checkpoint's step),
    the machine settings :data:`MACHINE_KEYS` and a learning-rate schedule that
    differs only after the checkpoint's step may change; ``config.toml`` then
    records the new values.

    Under ``torchrun``, process 0 alone does this and the others receive its answer (the checkpoint
    too: they need no access to the folder), or raise its error.

    Raises:
        OutputError: ``out`` cannot be created or written (checked before any training).
        ValueError: ``out`` holds another configuration, or more steps than ``config`` asks for.
    """
    return world().from_main(lambda: _prepare_run_dir(Path(out), config, defaults))


def _prepare_run_dir(out: Path, config: Mapping, defaults: Mapping | None) -> tuple[Path, dict | None]:
    check_output_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    lock_run_dir(out)
    try:
        return _open_run_dir(out, config, defaults)
    except BaseException:
        release_run_dir(out)  # refused (another configuration): the folder is not this process's to hold
        raise


def _open_run_dir(out: Path, config: Mapping, defaults: Mapping | None) -> tuple[Path, dict | None]:
    saved = out / "config.toml"
    checkpoint = out / "checkpoint.pt"
    state = None
    if checkpoint.is_file():
        state = load_checkpoint(checkpoint)
        before = {**{k: v for k, v in (defaults or {}).items() if k in config}, **state.get("config", {})}
        step = int(state["step"])
        later = _same_past_schedule(before, config, step) and _differences(before, config, ignore=(
            *(k for k in config if k not in SCHEDULE_KEYS),))  # fmt: skip
        differ = _differences(before, config, ignore=("steps", *MACHINE_KEYS, *(SCHEDULE_KEYS if later else ())))
        if differ:
            raise ValueError(
                f"{out} holds a run with another configuration ({differ}; see {saved}); "
                "choose another --out folder or delete this one"
            )
        steps = config.get("steps")
        if steps is not None and steps < step:
            raise ValueError(f"{out} is at step {step}, past the {steps} steps asked for: ask for at least {step}")
        print(f"perceptlab: resuming {out} from step {step}", file=sys.stderr)
        changed = _differences(before, config, ignore=tuple(k for k in config if k not in MACHINE_KEYS))
        if changed:
            print(f"perceptlab: machine settings changed ({changed})", file=sys.stderr)
        if later:
            print(f"perceptlab: learning-rate schedule changed after step {step} ({later})", file=sys.stderr)
    atomic_write_text(saved, to_toml(config))  # a raised step budget is recorded too
    return out, state


LOCK = ".lock"
_held_locks: set[Path] = set()


def lock_run_dir(out: Path) -> None:
    """Claim ``out`` for this process: ``out/.lock`` holds its pid and machine name until :func:`train_loop` ends
    (:func:`release_run_dir`) or, at the latest, the process exits.

    Two trainers writing one run folder would interleave their checkpoints and logs; the second is refused while
    the first is alive on this machine. A lock left by a process that no longer runs (killed, machine restarted)
    is taken over; one written on another machine (a shared disk) is honoured, since its process cannot be seen.

    Raises:
        ValueError: another live process trains in ``out``.
    """
    import atexit
    import socket

    path, me = out / LOCK, {"pid": os.getpid(), "host": socket.gethostname()}
    try:
        holder = json.loads(path.read_text())
        pid, host = int(holder["pid"]), str(holder["host"])
    except (OSError, ValueError, KeyError, TypeError):
        holder = None  # none, or unreadable: a crash while writing it
    if holder is not None and (pid, host) != (me["pid"], me["host"]) and (host != me["host"] or _alive(pid)):
        raise ValueError(f"{out} is being trained by process {pid} on {host}; wait for it to finish or stop it "
                         f"(a stale lock: delete {path})")  # fmt: skip
    atomic_write_text(path, json.dumps(me) + "\n")
    if path not in _held_locks:
        _held_locks.add(path)
        atexit.register(release_run_dir, out)


def release_run_dir(out: str | os.PathLike) -> None:
    """Let go of ``out`` if this process holds it (:func:`lock_run_dir`); a lock of another process stays."""
    import socket

    path = Path(out) / LOCK
    try:
        if json.loads(path.read_text()) == {"pid": os.getpid(), "host": socket.gethostname()}:
            path.unlink()
    except (OSError, ValueError):
        pass
    _held_locks.discard(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


# Keys a resumed run may change: the step budget, and settings of the machine rather than of the
# experiment (CPU threads; the loss network's precision, bf16 being fast only on CPUs with bf16 units and
# shown to train the same model, docs/experiments/bf16_loss.md). config.toml records the new values.
MACHINE_KEYS = ("threads", "vgg_precision")


def _differences(before: Mapping, now: Mapping, ignore: tuple[str, ...] = ("steps", *MACHINE_KEYS)) -> str:
    """``"lr: 0.1 in the run, 0.2 now; ..."`` for every key but those in ``ignore``."""
    before, now = _plain(before), _plain(now)
    keys = [k for k in {**before, **now} if k not in ignore and before.get(k) != now.get(k)]
    return "; ".join(f"{k}: {before.get(k)!r} in the run, {now.get(k)!r} now" for k in keys)


def _plain(config: Mapping) -> dict:
    return json.loads(json.dumps(dict(config)))


def rng_state(generator: torch.Generator) -> dict:
    """Everything needed to continue the random streams exactly."""
    return {"torch": torch.get_rng_state(), "data": generator.get_state()}


def restore_rng(state: Mapping, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])


# ------------------------------------------------------------------ interrupts


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM stopped a command.

    ``exit_code`` is what a shell reports for a process the signal ended,
    128 + its number: 130 for SIGINT, 143 for SIGTERM. ``str()`` says what was
    kept (a checkpoint's step, the images done). A ``KeyboardInterrupt``, so
    code that cleans up after Ctrl-C cleans up after SIGTERM too.
    """

    def __init__(self, signum: int = signal.SIGINT, message: str = "interrupted"):
        super().__init__(message)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


class Checkpoints:
    """A training loop's checkpoints: every ``every`` steps, at step ``last``, and on SIGINT or SIGTERM.

    As a context manager around the loop it holds SIGINT and SIGTERM until the
    step in progress ends; :meth:`step_done` then saves a checkpoint and raises
    :class:`Interrupted`, so no finished step is lost and the command exits with
    130 or 143. A second signal stops at once (the previous checkpoint stays,
    checkpoints being written atomically)::

        with Checkpoints(out / "checkpoint.pt", state, config.ckpt_every, config.steps) as checkpoints:
            while step < config.steps:
                ...  # one step
                step += 1
                checkpoints.step_done(step)

    ``state()`` returns what to save (see :func:`save_checkpoint`).

    With several processes (``world``), a signal held by any of them stops all of them after the same
    step: process 0 saves, and every process waits for that checkpoint before it raises (torchrun
    ends the other processes as soon as one exits with an error).
    """

    def __init__(self, path: str | os.PathLike, state: Callable[[], Mapping], every: int, last: int,
                 world: World | None = None):  # fmt: skip
        self.path, self.state, self.every, self.last = Path(path), state, every, last
        self.world = world or World()
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> Checkpoints:
        if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._hold)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _hold(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise Interrupted(signum, f"stopped at once; {self.path} holds the last periodic checkpoint")
        self.signum = signum
        print(f"\nperceptlab: {signal.Signals(signum).name}: stopping after this step with a checkpoint "
              "(send it again to stop at once)", file=sys.stderr)  # fmt: skip

    def step_done(self, step: int) -> None:
        """Save if ``step`` is due or a signal is held; then, for a held signal, raise :class:`Interrupted`.

        A signal held at the last step does not stop the run: it is complete.
        """
        signum = self.world.max(self.signum or 0)  # several processes: the same decision on every one
        stop = signum > 0 and step < self.last
        if (stop or step % self.every == 0 or step == self.last) and self.world.main:
            save_checkpoint(self.path, self.state())
        if stop:
            self.world.barrier()
            raise Interrupted(signum, f"stopped at step {step}, saved in {self.path}; "
                                      "run the same command again to resume")  # fmt: skip


class TrainConfig:
    """Mixin for run configurations (dataclasses): build from a dict or a TOML file, refusing unknown keys, and
    the checks every trainer's ``validate`` shares (:meth:`check_run`)."""

    def check_run(self, what: str = "images") -> None:
        """Raise ``ValueError`` unless training folders are given (``data``) and every interval
        (``sample_every`` or ``val_every``, ``ckpt_every``, ``log_every``) is positive."""
        if not self.data:
            raise ValueError(f"no training data: give at least one folder of {what} (--data)")
        intervals = [name for name in ("sample_every", "val_every", "ckpt_every", "log_every") if hasattr(self, name)]
        if min(getattr(self, name) for name in intervals) < 1:
            raise ValueError(f"{', '.join(intervals[:-1])} and {intervals[-1]} must be positive")
        if hasattr(self, "lr_milestones"):
            check_lr_schedule(self.lr_milestones, self.lr_gamma)

    @classmethod
    def from_dict(cls, values: Mapping):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown configuration key(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, overrides: Mapping | None = None):
        """Values from the TOML file at ``path`` (if any), then ``overrides`` that are not ``None``."""
        values: dict = {}
        if path is not None:
            try:
                values = tomllib.loads(Path(path).read_text())
            except FileNotFoundError:
                raise ValueError(f"{path}: no such file") from None
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"{path}: not valid TOML ({exc})") from None
        values |= {k: v for k, v in (overrides or {}).items() if v is not None}
        return cls.from_dict(values)


# ------------------------------------------------------------------ model files
# Our own trained models: safetensors with what rebuilds the network in the metadata.

MODELS_DIR = Path(__file__).resolve().parent / "models"


def save_model_file(path: str | os.PathLike, net: torch.nn.Module, metadata: Mapping[str, str]) -> None:
    """Write ``net``'s weights as safetensors with string ``metadata``, atomically.

    A file that already holds the same weights and metadata is left untouched, its time included: resuming
    a finished run writes nothing, so a queue that compares times (a fine-tuned point against its base) sees
    no change. (The bytes cannot be compared: safetensors orders the metadata differently from run to run.)
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}  # from a GPU too
    path = Path(path)
    if path.is_file() and _holds(path, tensors, metadata):
        return
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=dict(metadata)))


def _holds(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bool:
    """Whether the safetensors file ``path`` holds exactly ``tensors`` and ``metadata``."""
    try:
        saved, saved_metadata = load_model_file(path)
    except ValueError:
        return False
    return (saved_metadata == dict(metadata) and saved.keys() == tensors.keys()
            and all(saved[k].dtype == v.dtype and torch.equal(saved[k], v) for k, v in tensors.items()))  # fmt: skip


def load_model_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict and metadata of a file written by :func:`save_model_file`."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            return {k: handle.get_tensor(k) for k in handle.keys()}, metadata
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a safetensors weights file ({exc})") from None


def shipped_models(names: tuple[str, ...]) -> dict[str, Path]:
    """Those of ``names`` whose weights are installed in ``perceptlab/models/``, ``{name: file}``."""
    files = {name: MODELS_DIR / f"{name}.safetensors" for name in names}
    return {name: path for name, path in files.items() if path.is_file()}


def resolve_model_file(spec: str, shipped: Mapping[str, Path], what: str) -> Path:
    """The weights file named by ``spec``: a shipped name, a file, or a run folder
    (its ``model.safetensors``, else its ``checkpoint.pt``)."""
    if spec in shipped:
        return shipped[spec]
    path = Path(spec)
    if path.is_dir():
        for candidate in (path / "model.safetensors", path / "checkpoint.pt"):
            if candidate.is_file():
                return candidate
        raise ValueError(f"{path}: a run folder without model.safetensors or checkpoint.pt")
    if path.is_file():
        return path
    known = ", ".join(shipped) or "none installed"
    raise ValueError(f"unknown {what} model {spec!r}: not a shipped model ({known}), nor a file or run folder")


def train_loop(
    out: str | os.PathLike,
    config: Mapping,
    step_fn: Callable[[], Mapping[str, torch.Tensor | float]],
    state: Mapping[str, object],
    generator: torch.Generator,
    resumed: Mapping | None,
    *,
    steps: int,
    log_every: int,
    ckpt_every: int,
    sample_every: int | None = None,
    sample: Callable[[Path], Mapping[str, float]] | None = None,
    extra: Mapping | None = None,
    desc: str = "train",
    progress: bool = True,
) -> dict:
    """The loop every trainer runs: resume, step, log, sample, checkpoint, stop cleanly.

    Args:
        out: the run folder, made by :func:`prepare_run_dir` (which also gave ``resumed``).
        config: the run's configuration as a plain dict, saved in each checkpoint; its ``lr_milestones`` and
            ``lr_gamma`` (if any) schedule the learning rate of every optimizer in ``state``
            (:func:`lr_factor`, from each parameter group's rate at the start of the run).
        step_fn: one optimisation step; returns the loss parts (tensors or floats)
            for the log and the progress bar. It draws its batches from
            ``generator``, so that a resumed run continues the same random stream.
        state: what to checkpoint by name, each with ``state_dict()`` and
            ``load_state_dict()``: networks and optimizers (``{"net": net,
            "optimizer": opt}``; keys as the trainers used before this loop, so
            runs in progress keep resuming). Networks are put in train mode for
            the steps and eval mode for samples.
        generator: the random stream of the run, saved and restored.
        resumed: the checkpoint to resume from, or ``None``.
        steps, log_every, ckpt_every: budget and intervals, in steps.
        sample_every, sample: ``sample(path)`` is called every ``sample_every``
            steps and at the last one, in eval mode without gradients, with
            ``out/samples/step_NNNNNN.png``; it writes a picture and returns
            scores for the step's row (validation), or ``{}``.
        extra: more entries for every checkpoint (a style image's hash, say).
        desc: the progress bar's label.

    Under ``torchrun`` (:mod:`perceptlab.distributed`) every process runs this loop on its slice of each
    batch: the loss parts are averaged over the processes (the log shows the global batch's, and a
    non-finite one stops every process), process 0 alone writes the metrics, samples and checkpoints
    and shows progress, and a signal stops all processes after the same step.

    Returns:
        ``{"steps": int, "seconds": float, "final": {loss parts at the last step}}``;
        networks are left in eval mode, ready for the trainer's model file.

    Raises:
        FloatingPointError: a loss part became non-finite.
        Interrupted: SIGINT or SIGTERM, after a checkpoint of the finished step (:class:`Checkpoints`).
    """
    import math
    import time

    out = Path(out)
    processes = world()
    seed = int(config.get("seed", 0))
    step, seconds = 0, 0.0
    if resumed:
        for key, obj in state.items():
            obj.load_state_dict(resumed[key])
        restore_rng(resumed["rng"], generator)
        step, seconds = int(resumed["step"]), float(resumed["seconds"])
    log = MetricsLog(out / "metrics.csv", resume_step=step) if processes.main else None
    nets = [obj for obj in state.values() if isinstance(obj, torch.nn.Module)]
    milestones, gamma = list(config.get("lr_milestones") or []), float(config.get("lr_gamma", 0.5))
    groups = [g for obj in state.values() if isinstance(obj, torch.optim.Optimizer) for g in obj.param_groups]
    for group in groups:  # a resumed optimizer brings its saved initial_lr (old checkpoints: their constant rate)
        group.setdefault("initial_lr", group["lr"])

    def schedule() -> None:
        if milestones:
            factor = lr_factor(milestones, gamma, step)
            for group in groups:
                group["lr"] = group["initial_lr"] * factor

    def checkpoint() -> dict:
        saved = {"config": dict(config), **(extra or {}), "step": step, "seconds": seconds}
        return saved | {key: obj.state_dict() for key, obj in state.items()} | {"rng": rng_state(generator)}

    def mode(train: bool) -> None:
        for net in nets:
            net.train(train)

    bar = None
    if progress and processes.main:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=step, desc=desc, unit="step")
    parts: dict[str, float] = {}
    mode(True)
    try:
        with Checkpoints(out / "checkpoint.pt", checkpoint, ckpt_every, steps, processes) as checkpoints:
            while step < steps:
                started = time.perf_counter()
                processes.seed_step(seed, step)
                schedule()
                parts = {k: float(v.detach() if isinstance(v, torch.Tensor) else v) for k, v in step_fn().items()}
                parts = processes.mean(parts)
                step += 1
                seconds += time.perf_counter() - started
                if not all(math.isfinite(v) for v in parts.values()):
                    raise FloatingPointError(f"loss became non-finite at step {step}: {parts} "
                                             "(lower the learning rate)")  # fmt: skip
                row = dict(parts) if log is not None and (step % log_every == 0 or step == steps) else {}
                if (sample is not None and processes.main and sample_every
                        and (step % sample_every == 0 or step == steps)):  # fmt: skip
                    mode(False)
                    with torch.no_grad():
                        row |= sample(out / "samples" / f"step_{step:06d}.png")
                    mode(True)
                if row:  # one row per step, validation scores beside the losses
                    log.append({"step": step, "seconds": round(seconds, 2), **row})
                checkpoints.step_done(step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in parts.items()}, refresh=False)
    finally:
        if bar is not None:
            bar.close()
        if processes.main:
            release_run_dir(out)  # the run folder is free again: finished, stopped or failed
    mode(False)
    return {"steps": step, "seconds": seconds, "final": parts}


def model_info(path: str | os.PathLike) -> dict:
    """What a shipped model is, without loading its weights: ``{"name", "task", "net", "scale", "style" or "kind",
    "steps", "summary", "size_bytes", "file"}``; the summary is the first paragraph of its card (``NAME.md``)
    up to its first semicolon, and the card's losses line where it has one."""
    from safetensors import safe_open

    path = Path(path)
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    card = path.with_suffix(".md")
    summary = ""
    if card.is_file():
        text = card.read_text(encoding="utf-8")
        paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
        first = " ".join(next((p for p in paragraphs if not p.startswith(("#", "-", "|"))), "").split())
        summary = first.split("; ")[0].rstrip(".")
        losses = next((line[len("- losses:"):].strip() for line in text.splitlines() if line.startswith("- losses:")), "")
        if losses:
            summary += f"; losses {losses}"
    info = {"name": path.stem, "task": meta.get("task", "?"), "net": meta.get("net", "?")}
    if "scale" in meta:
        info["scale"] = int(meta["scale"])
    if "style" in meta:
        info["style"] = meta["style"]
    if meta.get("task") == "codec":  # which architecture, trained for what, at which rate
        info["kind"] = f"{meta.get('arch', '?')} {meta.get('distortion', '?')} λ={meta.get('lambda', '?')}"
    if meta.get("task") == "deepsim":  # which generator, and for an inverter the features it reads
        info["kind"] = meta["kind"] + (f" {meta['network']} {meta['layer']}" if meta["kind"] == "invert" else "")
    return info | {"steps": int(meta.get("steps", 0)), "summary": summary, "size_bytes": path.stat().st_size,
                   "file": str(path)}  # fmt: skip


def load_trained(spec: str, shipped: Mapping[str, Path], task: str, build: Callable[[Mapping], torch.nn.Module],
                 checkpoint_of_task: Callable[[Mapping], bool] = lambda config: True,
                 what: str | None = None) -> torch.nn.Module:  # fmt: skip
    """A network a trainer of ``task`` wrote, ready for inference (eval mode, no gradients).

    Args:
        spec: a shipped name (``shipped``), a ``model.safetensors``, a ``checkpoint.pt`` or a run folder.
        build: makes the empty network from its settings: a model file's metadata (strings) or a
            checkpoint's configuration.
        checkpoint_of_task: tells from a checkpoint's configuration that ``task``'s trainer wrote it.
        what: the kind of model in messages (default ``task``).

    Raises:
        ValueError: an unknown spec, or a file another task (or no perceptlab trainer) wrote.
    """
    path = resolve_model_file(spec, shipped, what or task)
    if path.suffix == ".pt":
        state = load_checkpoint(path)
        if not checkpoint_of_task(state.get("config", {})):
            raise ValueError(f"{path}: not a {what or task} training checkpoint")
        net, tensors = build(state["config"]), state["net"]
    else:
        tensors, metadata = load_model_file(path)
        if metadata.get("task") != task:
            raise ValueError(f"{path}: not a {what or task} model written by perceptlab (no 'task: {task}' metadata)")
        net = build(metadata)
    net.load_state_dict(tensors)
    net.requires_grad_(False)
    return net.eval()
