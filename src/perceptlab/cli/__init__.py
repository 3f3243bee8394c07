"""The ``perceptlab`` command: a thin layer over the library.

``build_parser()`` makes the argument parser and ``main(argv)`` runs it;
every subcommand module has ``add_parser(subparsers)`` and ``run(args) -> int``.
Expected failures (bad files, missing weights, bad options, an output that
cannot be written, a full disk) print one line ``perceptlab: error: ...`` and
exit with status 2; set ``PERCEPTLAB_DEBUG=1`` for the traceback. Ctrl-C and
SIGTERM end a command with one line saying what was kept and status 130 or
143, as a shell reports a process the signal ended; no half-written file
stays behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings

from perceptlab import __version__
from perceptlab._alloc import keep_freed_memory
from perceptlab.cli import codec, deepsim, evaluate, export, models, score, stylize, train, upscale, weights
from perceptlab.cli._jobs import error_message
from perceptlab.io import ImageError
from perceptlab.training import Interrupted
from perceptlab.weights import WeightsError

COMMANDS = (score, upscale, stylize, codec, deepsim, train, evaluate, models, weights, export)
# OSError: a full disk or a file that vanished is the user's to fix, not a bug to trace.
EXPECTED_ERRORS = (ImageError, WeightsError, ValueError, ImportError, OSError, FloatingPointError)


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


def _terminated(signum, frame) -> None:
    raise Interrupted(signum, "terminated")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # long CPU jobs run markedly faster (see perceptlab._alloc)
    # Warnings read as one line, like the errors below, not as a source location.
    formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    # SIGTERM unwinds like Ctrl-C, so temporary files are removed and the exit says what was kept.
    sigterm = None
    if threading.current_thread() is threading.main_thread():
        sigterm = signal.signal(signal.SIGTERM, _terminated)
    try:
        return args.run(args)
    except EXPECTED_ERRORS as exc:
        if os.environ.get("PERCEPTLAB_DEBUG"):
            raise
        print(f"perceptlab: error: {error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"perceptlab: {exc if isinstance(exc, Interrupted) else 'interrupted'}", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    finally:
        warnings.formatwarning = formatwarning
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
