"""One run at a time: an exclusive lock on the warehouse, with its owner written inside.

The lock is a kernel `flock` on `<versions_dir>/.lock`, so it is released the moment its process
dies, however it dies (SIGKILL included): a stale lock cannot block the next night. The file also
records the owner's pid, host and start time, which is what a refused second run prints.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
from pathlib import Path


class WarehouseLocked(RuntimeError):
    """Another run holds the warehouse."""


class WarehouseLock:
    """Context manager holding the warehouse lock for the duration of a run."""

    def __init__(self, path: Path, run_id: str):
        self.path = path
        self.run_id = run_id
        self._fd: int | None = None

    def __enter__(self) -> WarehouseLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise WarehouseLocked(
                f"another ccv run holds the warehouse lock {self.path}: "
                f"run {owner.get('run_id', '?')}, pid {owner.get('pid', '?')} on "
                f"{owner.get('host', '?')}, started {owner.get('started_at', '?')}. "
                "Wait for it to finish (a dead run's lock is released automatically)."
            ) from None
        owner = {
            "run_id": self.run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": dt.datetime.now().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_owner(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
