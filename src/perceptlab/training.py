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
import dataclasses
import json
import os
import random
import tomllib
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


def prepare_run_dir(
    out: str | os.PathLike, config: Mapping, defaults: Mapping | None = None
) -> tuple[Path, dict | None]:
    """Create ``out``; return it and the checkpoint to resume from (``None`` for a fresh run).

    A run folder belongs to one configuration: resuming with a different one
    is refused rather than silently mixing two experiments. A key that the
    saved configuration lacks (an option added to the trainer since) counts
    as its value in ``defaults``, the configuration class's defaults.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.toml"
    text = to_toml(config)
    checkpoint = out / "checkpoint.pt"
    if checkpoint.is_file():
        state = load_checkpoint(checkpoint)
        before = {**{k: v for k, v in (defaults or {}).items() if k in config}, **state.get("config", {})}
        if _comparable(before) != _comparable(config):
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


class TrainConfig:
    """Mixin for run configurations (dataclasses): build from a dict or a TOML file, refusing unknown keys."""

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
    """Write ``net``'s weights as safetensors with string ``metadata``, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=dict(metadata)))


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
