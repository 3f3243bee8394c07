"""The trainers' CLI flags are made from their configuration dataclasses: no field can be missing."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from perceptlab.cli import build_parser
from perceptlab.cli._config import ListFlag, add_config_flags
from perceptlab.sr.train import SRTrainConfig
from perceptlab.style.train import StyleTrainConfig


def _subparser(*path: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("task,config_class", [("sr", SRTrainConfig), ("style", StyleTrainConfig)])
def test_every_config_field_has_a_flag_and_flags_override_the_defaults(task, config_class, tmp_path):
    parser = _subparser("train", task)
    dests = {a.dest for a in parser._actions}
    assert {f.name for f in dataclasses.fields(config_class)} <= dests
    args = parser.parse_args(["--out", str(tmp_path), "--steps", "7", "--seed", "3", "--data", "a", "--data", "b"])
    assert args.config_flags and set(args.config_flags) == {f.name for f in dataclasses.fields(config_class)}
    from perceptlab.cli._config import load_config

    config = load_config(config_class, args, args.config_flags)
    assert (config.steps, config.seed, config.data) == (7, 3, ["a", "b"])
    assert config.lr == config_class().lr  # not given: the default


def test_a_field_without_help_or_list_rule_is_refused():
    @dataclasses.dataclass
    class Config:
        steps: int = 1
        layers: list[str] = dataclasses.field(default_factory=lambda: ["relu2_2"])

    with pytest.raises(KeyError, match="Config.steps has no help"):
        add_config_flags(argparse.ArgumentParser(), Config, {})
    with pytest.raises(KeyError):
        add_config_flags(argparse.ArgumentParser(), Config, {"steps": "s", "layers": "l"})
    parser = argparse.ArgumentParser()
    add_config_flags(parser, Config, {"steps": "s", "layers": "l"}, lists={"layers": ListFlag(repeat=False)})
    assert parser.parse_args(["--layers", "relu1_2, relu3_3", "--steps", "2"]).layers == ["relu1_2", "relu3_3"]



@pytest.mark.parametrize("task", ["sr", "style", "codec", "proxy", "autoencoder", "vae", "invert"])
def test_every_trainer_takes_a_learning_rate_schedule_from_its_flags(task, tmp_path, capsys):
    parser = _subparser("train", task)
    args = parser.parse_args(["--out", str(tmp_path), "--lr-milestones", "100, 300", "--lr-gamma", "0.1"])
    assert {"lr_milestones", "lr_gamma"} <= set(args.config_flags)
    assert (args.lr_milestones, args.lr_gamma) == ([100, 300], 0.1)
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", str(tmp_path), "--lr-milestones", "100,later"])
    assert "invalid comma-separated step counts value: '100,later'" in capsys.readouterr().err
