"""The ``perceptlab`` command: a thin layer over the library.

``build_parser()`` makes the argument parser and ``main(argv)`` runs it;
every subcommand module has ``add_parser(subparsers)`` and ``run(args) -> int``.
Expected failures (bad files, missing weights, bad options) print one line
``perceptlab: error: ...`` and exit with status 2; set ``PERCEPTLAB_DEBUG=1``
for the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from perceptlab import __version__
from perceptlab._alloc import keep_freed_memory
from perceptlab.cli import evaluate, score, stylize, train, upscale, weights
from perceptlab.io import ImageError
from perceptlab.weights import WeightsError

COMMANDS = (score, upscale, stylize, train, evaluate, weights)
EXPECTED_ERRORS = (ImageError, WeightsError, ValueError, ImportError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perceptlab",
        description="Perceptual losses and metrics, and the image networks trained with them.",
    )
    parser.add_argument("--version", action="version", version=f"perceptlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"perceptlab: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # long CPU jobs run markedly faster (see perceptlab._alloc)
    # Warnings read as one line, like the errors below, not as a source location.
    formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        return args.run(args)
    except EXPECTED_ERRORS as exc:
        if os.environ.get("PERCEPTLAB_DEBUG"):
            raise
        message = str(exc).strip() or type(exc).__name__
        print(f"perceptlab: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("perceptlab: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning
