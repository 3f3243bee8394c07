"""CLI flags generated from a trainer's configuration dataclass, so that no field can be missing from the CLI.

Every field of the dataclass becomes ``--field-name`` (underscores as dashes, a trailing one dropped),
typed from its annotation; list fields are repeatable flags or comma-separated
(:class:`ListFlag`), lists of step counts comma-separated. The help text of each field comes from a
table beside the command (the fields every trainer shares: :data:`SHARED_HELPS`); a field without one
is an error when the parser is built, which the test suite sees (tests/test_cli_config.py).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_TYPES = {"int": int, "float": float, "str": str, "str | None": str, "int | None": int, "float | None": float}


@dataclass(frozen=True)
class ListFlag:
    """How a ``list[str]`` field is given: a repeatable ``flag`` (``--loss A --loss B``) or comma-separated."""

    flag: str | None = None  # default: --field-name
    metavar: str = "VALUE"
    repeat: bool = True


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _split_steps(text: str) -> list[int]:
    return [int(part) for part in _split(text)]


_split_steps.__name__ = "comma-separated step counts"  # argparse names the type in its error

# Fields every trainer's configuration has (perceptlab.training's learning-rate schedule): one help text here.
SHARED_HELPS = {
    "lr_milestones": "steps at which every learning rate is multiplied by --lr-gamma (none: constant rates)",
    "lr_gamma": "factor of the learning rates at each --lr-milestones step",
}


def add_config_flags(parser: argparse.ArgumentParser, config_class, helps: Mapping[str, str],
                     choices: Mapping[str, tuple] | None = None,
                     lists: Mapping[str, ListFlag] | None = None) -> tuple[str, ...]:  # fmt: skip
    """Add one flag per field of ``config_class``; return the field names (for :func:`overrides`).

    Args:
        helps: what each field means; the default (and the choices) are appended.
        choices: allowed values of some fields.
        lists: how the list fields are given.

    Raises:
        KeyError: a field has no help text, or a list field no :class:`ListFlag`.
    """
    choices, lists, helps = dict(choices or {}), dict(lists or {}), {**SHARED_HELPS, **helps}
    defaults = dataclasses.asdict(config_class())
    names = []
    for f in dataclasses.fields(config_class):
        if f.name not in helps:
            raise KeyError(f"{config_class.__name__}.{f.name} has no help text in the CLI: add it")
        default = defaults[f.name]
        flag = f"--{f.name.rstrip('_').replace('_', '-')}"  # lambda_ (a Python keyword's spelling) is --lambda
        if str(f.type) == "list[int]":  # step counts: comma-separated
            shown = ",".join(map(str, default)) or "none"
            parser.add_argument(flag, type=_split_steps, dest=f.name, metavar="STEP,...",
                                help=f"{helps[f.name]} (default: {shown}); comma-separated")  # fmt: skip
        elif str(f.type).startswith("list"):
            how = lists[f.name]
            shown = (" " if how.repeat else ",").join(default) or "none"
            text = f"{helps[f.name]} (default: {shown})"
            if how.repeat:
                parser.add_argument(how.flag or flag, action="append", dest=f.name, metavar=how.metavar,
                                    help=text + "; repeatable")  # fmt: skip
            else:
                parser.add_argument(how.flag or flag, type=_split, dest=f.name, metavar=how.metavar,
                                    help=text + "; comma-separated")  # fmt: skip
        elif str(f.type) == "bool":  # --flag / --no-flag; unset leaves the TOML's value
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, dest=f.name, default=None,
                                help=f"{helps[f.name]} (default: {'on' if default else 'off'})")  # fmt: skip
        else:
            given = f"choices: {', '.join(choices[f.name])}; " if f.name in choices else ""
            shown = "none" if default is None else default
            parser.add_argument(flag, type=_TYPES[str(f.type)], dest=f.name, choices=choices.get(f.name),
                                metavar=f.name.upper() if f.name in choices else None,
                                help=f"{helps[f.name]} ({given}default: {shown})")  # fmt: skip
        names.append(f.name)
    return tuple(names)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every trainer has besides its configuration: --config, --out, --no-progress."""
    parser.add_argument("--config", type=Path, help="TOML file with the run's settings (flags override it)")
    parser.add_argument("--out", type=Path, required=True,
                        help="run folder (checkpoints, metrics.csv, samples), checked before training")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_config(config_class, args: argparse.Namespace, names: tuple[str, ...]):
    """The configuration from ``--config`` and the flags given (a flag left out keeps the file's or the default)."""
    return config_class.load(args.config, {name: getattr(args, name) for name in names})


def print_summary(config, summary: Mapping) -> None:
    """A trainer's result as JSON on stdout: the configuration and the summary, once (by process 0 under torchrun)."""
    import json

    from perceptlab.distributed import world

    if world().main:
        print(json.dumps({"config": dataclasses.asdict(config), **summary}, indent=2))
