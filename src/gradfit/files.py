"""Writing files so that a kill at any moment leaves the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .errors import GradfitError


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write(file)``: into a temporary file beside it, flushed to disk,
    then renamed over ``path`` (an atomic step on POSIX and Windows), and the folder synced."""
    path = Path(path)
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise GradfitError(f"cannot write {path}: {folder} is a file, not a folder")
    if not folder.is_dir():
        raise GradfitError(f"cannot write {path}: the folder {folder} does not exist; create it first")
    if path.is_dir():
        raise GradfitError(f"cannot write {path}: it is a folder; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise GradfitError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it a new file's usual mode
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise GradfitError(f"cannot write {path}: {exc.strerror}") from None
        raise
    _sync_folder(folder)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the platform lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
