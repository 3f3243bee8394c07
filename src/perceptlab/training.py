"""What every trainer shares: seeds, atomic resumable checkpoints, a metrics CSV, a progress bar.

A run folder holds::

    RUN_DIR/config.toml        the full configuration (written once, checked on resume)
    RUN_DIR/checkpoint.pt      latest state: config, step, model(s), optimizer(s), RNG state
    RUN_DIR/metrics.csv        one row per logged step
    RUN_DIR/samples/           validation images
    RUN_DIR/model.safetensors  final weights with their metadata

Checkpoints are written to a temporary file and renamed, so an interrupted
run never leaves a broken one; a resumed run continues from the saved step
with the same random stream and gives the same result as an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from perceptlab._files import atomic_write, atomic_write_text


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


def prepare_run_dir(out: str | os.PathLike, config: Mapping) -> tuple[Path, dict | None]:
    """Create ``out``; return it and the checkpoint to resume from (``None`` for a fresh run).

    A run folder belongs to one configuration: resuming with a different one
    is refused rather than silently mixing two experiments.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.toml"
    text = to_toml(config)
    checkpoint = out / "checkpoint.pt"
    if checkpoint.is_file():
        state = load_checkpoint(checkpoint)
        if _comparable(state.get("config", {})) != _comparable(config):
            raise ValueError(
                f"{out} holds a run with another configuration (see {saved}); "
                "choose another --out folder or delete this one"
            )
        return out, state
    atomic_write_text(saved, text)
    return out, None


def _comparable(config: Mapping) -> dict:
    # The step budget may grow between sessions: a resumed run may be asked to go further.
    return {k: v for k, v in json.loads(json.dumps(dict(config))).items() if k != "steps"}


def rng_state(generator: torch.Generator) -> dict:
    """Everything needed to continue the random streams exactly."""
    return {"torch": torch.get_rng_state(), "data": generator.get_state()}


def restore_rng(state: Mapping, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])
