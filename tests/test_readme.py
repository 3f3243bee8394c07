"""The README's code is executed: every ```python block, and the `perceptlab ...` command of the set-up block."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from perceptlab.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README.read_text(), flags=re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]


def test_readme_has_the_two_setup_commands_and_ci_runs_the_test_one():
    bash = [code.strip() for lang, code in BLOCKS if lang == "bash"]
    setup = [c for c in bash if c.startswith("python3 -m venv .venv")]
    assert len(setup) == 2
    ci = (README.parent / ".ci" / "run").read_text()
    assert setup[1] in ci


@pytest.mark.parametrize("code", PYTHON, ids=[f"block{i}" for i in range(len(PYTHON))])
def test_python_blocks_run(code):
    exec(compile(code, str(README), "exec"), {})


def test_main_job_command_runs(capsys, monkeypatch):
    setup = next(code for lang, code in BLOCKS if lang == "bash" and "perceptlab score" in code)
    command = setup.split("&&")[-1].strip()
    argv = shlex.split(command)
    assert argv[0].endswith("perceptlab")
    # The README is written for the repository root with ../shared beside it.
    monkeypatch.chdir(README.parent)
    if not all(Path(a).exists() for a in argv[2:4]):
        pytest.skip("the README's example images (../shared/data) are not here")
    assert main(argv[1:]) == 0
    assert "lpips" in capsys.readouterr().out


def test_readme_lists_every_loss_term_and_metric():
    # The README's lists are the user's view of the registries: a new entry must show up there too.
    from perceptlab.losses.combined import LOSS_TERMS
    from perceptlab.score import scorable_metrics

    text = README.read_text()
    terms = text[text.index("Loss terms (`TERM[:ARG][*WEIGHT]`)"):]
    terms = terms[: terms.index("\n\n")]
    missing = [t for t in LOSS_TERMS if f"`{t}" not in terms]
    assert not missing, f"README's loss-term list lacks {missing}"
    missing = [m for m in scorable_metrics() if f"| `{m}` |" not in text]
    assert not missing, f"README's metric table lacks {missing}"
