"""Writing files and folders so that an interruption never leaves one that looks complete.

Both helpers write next to the target and rename into place: a rename within
one folder is atomic, so a reader sees either the old target, or nothing, or
the whole new one.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_file(target: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a hidden sibling of ``target``, then rename it to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def staged_folder(target: Path, *, mode: int = 0o755) -> Iterator[Path]:
    """Yield a hidden ``.NAME.*.partial`` sibling folder to fill; when the block
    ends without an error it replaces ``target`` (removed first if it exists),
    otherwise it is deleted. The caller decides whether replacing is allowed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        staging.chmod(mode)  # mkdtemp makes it private; results and reports are meant to be shared
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


#: The largest scenario or sweep file sagasim reads (bytes): a real one is a
#: few kilobytes; the cap keeps a mistaken path (a log, a disk image) from
#: being read into memory.
MAX_INPUT_BYTES = 1_000_000


class InputFileError(Exception):
    """An input file that cannot be read as text; ``problem`` says why, without the path."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def read_input_text(path: Path, what: str, limit: int = MAX_INPUT_BYTES) -> str:
    """The text of a small regular file (a scenario or sweep file, ``what``).

    Refuses, with :class:`InputFileError`, a missing file, a folder, anything
    that is not a regular file (``/dev/zero``, a pipe: they may never end),
    a file over ``limit`` bytes, and text that is not UTF-8.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputFileError("no such file") from None
    except OSError as exc:
        raise InputFileError(f"cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputFileError(f"is a directory, not a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(f"is not a regular file (a device, pipe or socket); a {what} must be a regular file")
    too_big = f"is larger than {limit:,} bytes; a {what} is a small text file (at most {limit:,} bytes)"
    if info.st_size > limit:
        raise InputFileError(too_big)
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise InputFileError(f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise InputFileError(too_big)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"cannot be read: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def folder_problem(target: Path) -> str | None:
    """Why no folder can be written at ``target`` (checked before hours of
    simulation are spent on it), or ``None`` when one can.

    Makes the missing parent folders and a probe folder beside ``target``
    (removed at once): only trying tells a read-only or special file system
    (``/proc``) from a writable one.
    """
    existing = target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".probe", dir=target.parent)).rmdir()
    except OSError as exc:
        return f"cannot make a folder there ({exc.strerror or exc})"
    return None
