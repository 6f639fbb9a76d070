"""Writing files and folders so that an interruption never leaves one that looks complete.

Both helpers write next to the target and rename into place: a rename within
one folder is atomic, so a reader sees either the old target, or nothing, or
the whole new one.
"""

from __future__ import annotations

import os
import shutil
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
