"""Durable renames: the one helper every writer of the lake and the spool uses after `os.replace`."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(folder: str | os.PathLike[str] | Path) -> None:
    """Make a rename or a new file in `folder` durable (POSIX); a no-op where folders cannot be opened
    (Windows) or the filesystem refuses to sync them."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse
        pass
    finally:
        os.close(fd)
