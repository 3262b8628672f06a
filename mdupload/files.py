"""Files written only where mdupload means to (docs/security.md): every file it writes is created new
(O_EXCL | O_NOFOLLOW, so never through a link someone planted, never over a file already there) under
a unique name beside its target, then renamed into place (a rename replaces a link, never follows it).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows, where the exclusive creation still holds
_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def unique_name(target: Path, suffix: str = ".tmp") -> Path:
    """A name no one can have guessed, hidden beside `target`: `.NAME.<random>SUFFIX`."""
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}{suffix}")


def create_new(path: Path, mode: int = 0o644) -> BinaryIO:
    """Open `path` for writing only if nothing (not even a dangling link) is there yet."""
    return os.fdopen(os.open(path, _CREATE_NEW, mode), "wb")


def write_replacing(target: Path, data: bytes, *, mode: int = 0o644, durable: bool = False) -> None:
    """Write `data` to a new file of a unique name, then rename it over `target` (atomically). `durable`:
    on disk before the rename (fsync). OSError as the system raised it."""
    temporary = unique_name(target)
    try:
        with create_new(temporary, mode) as file:
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
