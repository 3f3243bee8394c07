"""Writing files safely: atomic writes, and checking an output path before the work that fills it.

A reader never sees a half-written file, a failure leaves none behind, and a
command can refuse an output path it cannot write before it spends an hour on
the result (:func:`check_output_file`, :func:`check_output_dir`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


class OutputError(ValueError):
    """A path where a file or folder cannot be written.

    ``str(error)`` is ``"{path}: {problem}"``, one line meant for the user
    (like :class:`perceptlab.io.ImageError`).
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(path, problem)
        self.path = Path(path)
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def check_output_dir(folder: str | os.PathLike) -> None:
    """Raise :class:`OutputError` unless files can be written in ``folder`` (created if missing).

    Nothing is left behind: the nearest existing folder on the way is probed
    with a temporary file, which is removed at once, and no folder is created.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(folder, "exists and is not a folder")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(folder, f"cannot create it: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".perceptlab-probe-")
    except OSError as err:
        where = "" if existing == folder else f" (in {existing})"
        raise OutputError(folder, f"cannot write there{where}: {_reason(err)}") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str | os.PathLike) -> None:
    """Raise :class:`OutputError` unless a file can be written (or replaced) at ``path``."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(path, "is a folder, not a file")
    check_output_dir(path.parent)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    The temporary file lives in the same folder because ``os.replace`` is
    atomic only within one file system. Parent folders are created. On any
    error (an interrupt included) the temporary file is removed and ``path``
    is left as it was.

    Raises:
        OutputError: the folder cannot be created or written, or ``path`` is a folder.
        Whatever ``write`` raises (an ``OSError`` for a full disk, say).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except FileExistsError:
        raise OutputError(path, f"cannot create the folder {path.parent}: a file is in the way") from None
    except OSError as err:
        raise OutputError(path, f"cannot write there ({_reason(err)})") from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from other users
        try:
            os.replace(tmp, path)
        except IsADirectoryError:
            raise OutputError(path, "is a folder, not a file") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
