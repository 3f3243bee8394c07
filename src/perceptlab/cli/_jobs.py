"""What the commands over many files share: inputs to outputs, output checks, and the loop with --keep-going.

``upscale`` and ``stylize`` write one image per input (:func:`image_jobs`);
``score`` reads pairs. All of them run their items through :func:`run_each`,
which stops at the first bad item (saying how many were done) or, with
``--keep-going``, reports each failure on one line and lists them at the end.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from perceptlab._files import check_output_dir, check_output_file
from perceptlab.io import IMAGE_SUFFIXES, ImageError, list_images

Item = TypeVar("Item")
# A bad file, a full disk, a loss gone NaN: a problem of one item. Missing weights are not (WeightsError).
ITEM_ERRORS = (ValueError, OSError, FloatingPointError)


class BatchError(ValueError):
    """Items failed: the one that stopped a run, or every failure of a ``--keep-going`` run."""


def add_keep_going(parser: argparse.ArgumentParser, what: str = "image") -> None:
    parser.add_argument(
        "--keep-going", action="store_true",
        help=f"on a {what} that fails, report it on one line and go on; the failures are listed at the end "
             f"and the exit status is 2 (without it, the first failure stops the run)",
    )  # fmt: skip


def image_jobs(inputs: Sequence[Path], output: Path) -> list[tuple[Path, Path]]:
    """``(input file, output file)`` for every input image, every output checked before any work.

    One input file and an ``output`` with an image suffix: that file. Otherwise
    ``output`` is a folder (an existing one, or a name without an image suffix)
    and each result is ``output/<stem>.png``. A single input with an unknown
    suffix (``out.xyz``) is refused rather than taken for a folder name.

    Raises:
        ImageError: a missing input, a folder without images, an output name that
            does not fit the inputs, or two inputs that would write the same file.
        OutputError: an output that cannot be written.
    """
    return file_jobs(inputs, output, list_images, ".png", IMAGE_SUFFIXES, "image files", kind="image ")


def file_jobs(inputs: Sequence[Path], output: Path, listing: Callable[[Path], list[Path]], suffix: str,
              single_suffixes: Sequence[str], what: str, kind: str = "") -> list[tuple[Path, Path]]:  # fmt: skip
    """:func:`image_jobs` for any kind of file: ``listing(folder)`` finds the inputs of a folder,
    results are ``output/<stem><suffix>``, and a single output file must end in one of ``single_suffixes``
    (``what``: what a folder lacks in the error; ``kind``: what the suffix is said to be).
    """
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = listing(path)
            if not found:
                raise ImageError(path, f"folder holds no {what}")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise ImageError(path, "no such file or folder")
    out_suffix = output.suffix.lower()
    if len(files) == 1 and not inputs[0].is_dir() and not output.is_dir() and out_suffix:
        if out_suffix not in single_suffixes:
            allowed = single_suffixes[0] if len(single_suffixes) == 1 else f"one of {', '.join(single_suffixes)}"
            raise ImageError(output, f"unknown {kind}suffix {output.suffix!r}: name the output file with {allowed}, "
                                     "or give a folder name without a suffix")  # fmt: skip
        jobs = [(files[0], output)]
    else:
        if out_suffix in single_suffixes and not output.is_dir():
            raise ImageError(output, "several inputs need an output folder, not a file name")
        jobs = [(f, output / f"{f.stem}{suffix}") for f in files]
    seen: dict[Path, Path] = {}
    for source, target in jobs:
        if target in seen and seen[target].resolve() != source.resolve():
            raise ImageError(target, f"{seen[target]} and {source} would both be written here: rename one")
        seen[target] = source
    for folder in {target.parent for target in seen}:
        check_output_dir(folder)
    for target in seen:
        check_output_file(target)
    return jobs


def run_each(items: Sequence[Item], work: Callable[[Item], None], keep_going: bool, name: Callable[[Item], str] = str,
             what: str = "images", progress: str | None = None) -> list[str]:  # fmt: skip
    """``work(item)`` for every item, stopping at the first failure unless ``keep_going``.

    Args:
        progress: the label of a progress bar over the items (shown for more than one).

    Returns:
        The names of the items that failed, each reported on stderr as it
        failed (only with ``keep_going``; see :func:`raise_if_failed`).

    Raises:
        BatchError: without ``keep_going``, the failure that stopped the run
            and how many items were done before it.
        Interrupted: Ctrl-C or SIGTERM, saying how many items were done
            (each output is written atomically: none is left half-written).
    """
    from tqdm.auto import tqdm

    from perceptlab.training import Interrupted

    failed: list[str] = []
    done = 0
    total = len(items)
    bar = tqdm(total=total, desc=progress, unit=what.rstrip("s")) if progress and total > 1 else None
    try:
        for item in items:
            try:
                work(item)
            except ITEM_ERRORS as exc:
                if not keep_going:
                    if total == 1:
                        raise
                    raise BatchError(f"{error_message(exc)}; stopped after {done} of {total} {what} "
                                     "(--keep-going goes on past failures)") from exc  # fmt: skip
                failed.append(name(item))
                tqdm.write(f"perceptlab: failed: {error_message(exc)}", file=sys.stderr)
            else:
                done += 1
            if bar is not None:
                bar.update()
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        raise Interrupted(signum, f"interrupted after {done} of {total} {what}") from exc
    finally:
        if bar is not None:
            bar.close()
    return failed


def raise_if_failed(failed: Sequence[str], total: int, what: str = "images") -> None:
    """Raise :class:`BatchError` listing ``failed`` (names from :func:`run_each`), if any."""
    if failed:
        raise BatchError(f"{len(failed)} of {total} {what} failed: {', '.join(failed)}")


def error_message(exc: BaseException) -> str:
    """One line for the user: ``path: problem`` for an ``OSError``, else the message."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc).strip() or type(exc).__name__
