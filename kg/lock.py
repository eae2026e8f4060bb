"""One writer at a time per store folder, and generations that become live only when complete.

Every command that changes a store (``rebuild``, ``update``, ``fit`` with its write-back, ``write_back``,
``align`` with writing, ``classify-scenes``) holds :class:`StoreLock`: an exclusive ``fcntl.flock`` on
``STORE/.lock``. The kernel releases a ``flock`` when its process ends, however it ends (``kill -9`` included), so a
lock left by a dead process is never in the way: the next writer takes it at once and overwrites the holder record.
A second writer either fails at once with one line naming the holder (pid, command, since when) or, with
``wait`` seconds, waits for it.

Writers never change the live generation in place. :class:`StagedGeneration` copies it (or starts empty, for a
rebuild) into ``STORE/.building-<time>-<pid>/``; the writer changes the copy (graph, model, write-back, refresh),
and only when all of it succeeded is the copy renamed to ``gen-<time>-<pid>`` and ``CURRENT`` switched to it in one
atomic rename. Readers keep the generation they opened; a killed writer leaves the previous generation live, whole.

``flock`` works on local file systems; on a network file system whose ``flock`` is not shared between machines,
run the writers of one store on one machine.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from scenerec.errors import StoreError, StoreLockedError, StoreNotFoundError

#: The lock file inside a store folder (it holds the current holder's record).
LOCK_FILE = ".lock"
CURRENT = "CURRENT"

# Locks this process holds, by resolved store folder: (lock file descriptor, nesting depth). A writer that calls
# another writer of the same store (``Engine.update`` runs the graph update) re-enters its own lock.
_HELD: dict[str, list[int]] = {}


def _key(store: Path) -> str:
    return str(store.resolve())


def holds_lock(store: str | Path) -> bool:
    """Whether this process holds the writer lock of ``store``."""
    return _key(Path(store)) in _HELD


def read_holder(store: str | Path) -> dict[str, Any]:
    """The record of the last writer that took the lock of ``store`` (empty when none or unreadable)."""
    try:
        text = (Path(store) / LOCK_FILE).read_text(encoding="utf-8")
        data = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 123 on host (fit), since 2026-12-03T10:00:00Z`` (the host only when it is another machine), or
    ``an unknown process``."""
    if not holder:
        return "an unknown process"
    where = f"pid {holder.get('pid', '?')}"
    if holder.get("host") and holder.get("host") != socket.gethostname():
        where += f" on {holder['host']}"
    return f"{where} ({holder.get('command') or '?'}), since {holder.get('since', '?')}"


class StoreLock:
    """The writer lock of a store folder (created when missing).

    >>> with StoreLock("stores/shop", "rebuild", wait=60):      # doctest: +SKIP
    ...     ...  # change the store

    ``wait``: seconds to wait for another writer (0: fail at once). Raises :class:`StoreLockedError` naming the
    holder when the lock cannot be had in time. Re-entrant within one process. ``create``: make the store folder
    when it does not exist (a first rebuild); otherwise a missing folder is :class:`StoreNotFoundError`.
    """

    def __init__(self, store: str | Path, command: str, *, wait: float = 0.0, create: bool = False) -> None:
        if not isinstance(wait, (int, float)) or wait != wait or wait < 0:
            raise StoreError(f"wait must be a non-negative number of seconds, not {wait!r}")
        self.store = Path(store)
        self.command = command
        self.wait = float(wait)
        self.create = create
        self._key = ""

    def acquire(self) -> None:
        if self.store.exists() and not self.store.is_dir():
            hint = "(created if missing)" if self.create else "of a built store"
            raise StoreNotFoundError(f"{self.store} is a file, not a store folder; give --store the folder {hint}")
        if not self.store.is_dir():
            if not self.create:
                raise StoreNotFoundError(
                    f"{self.store}: no graph has been built here (run `scenerec rebuild DATASET --store {self.store}`)"
                )
            try:
                self.store.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{self.store}: cannot create the store folder: {exc.strerror}") from None
        self._key = _key(self.store)
        held = _HELD.get(self._key)
        if held is not None:
            held[1] += 1
            return
        path = self.store / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"{path}: cannot open the store's lock file: {exc.strerror}") from None
        deadline = time.monotonic() + self.wait
        delay = 0.05
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise StoreError(f"{path}: cannot lock the store: {exc.strerror}") from None
            if time.monotonic() >= deadline:
                os.close(fd)
                holder = describe_holder(read_holder(self.store))
                waited = f" after waiting {self.wait:g} s" if self.wait else ""
                raise StoreLockedError(
                    f"{self.store}: another writer holds the store{waited}: {holder}; "
                    "let it finish or wait for it with --wait SECONDS"
                )
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "argv": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300] if sys.argv else "",
            "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
        _HELD[self._key] = [fd, 1]

    def release(self) -> None:
        held = _HELD.get(self._key)
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _HELD[self._key]
        fd = held[0]
        try:
            os.ftruncate(fd, 0)  # no holder record is left behind for a lock nobody holds
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_builds(store: Path) -> None:
    """Remove build folders left by writers that were killed (their process no longer exists)."""
    for d in store.glob(".building-*"):
        try:
            pid = int(d.name.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)


def _require_lock(store: Path, what: str) -> None:
    if not holds_lock(store):
        raise StoreError(f"{store}: {what} needs the store's writer lock (scenerec.kg.lock.StoreLock)")


def switch_generation(store: Path, name: str, keep: int = 2) -> None:
    """Make the complete generation ``name`` live (``CURRENT`` replaced by an atomic rename), then keep only the
    ``keep`` newest generations. The caller holds the store's :class:`StoreLock`."""
    _require_lock(store, "switching generations")
    if not (store / name).is_dir():
        raise StoreError(f"{store}: no generation {name!r} to switch to")
    tmp = store / f".{CURRENT}.{os.getpid()}"
    tmp.write_text(name + "\n", encoding="utf-8")
    os.replace(tmp, store / CURRENT)
    _prune(store, keep)


def _prune(store: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest generations (never the live one)."""
    live = (store / CURRENT).read_text(encoding="utf-8").strip()
    gens = sorted((d for d in store.glob("gen-*") if d.is_dir()), key=lambda d: d.name, reverse=True)
    for d in gens[max(keep, 1) :]:
        if d.name != live:
            shutil.rmtree(d, ignore_errors=True)


class StagedGeneration:
    """A new generation of ``store`` being written: a copy of the generation folder ``base`` (or an empty folder)
    at ``STORE/.building-<time>-<pid>/``, live only when the ``with`` block succeeds.

    >>> with StoreLock(store, "fit"), StagedGeneration(store, base=live) as staged:   # doctest: +SKIP
    ...     save_model(staged.path / "model")
    >>> staged.name                                                                 # doctest: +SKIP
    'gen-20261203T100000000000Z-1234'

    On success the folder is renamed to :attr:`name` and ``CURRENT`` switched to it (the ``keep`` newest
    generations are kept); on an exception it is removed and the live generation is untouched. The caller holds
    the store's :class:`StoreLock`.
    """

    def __init__(self, store: str | Path, *, base: Path | None = None, keep: int = 2) -> None:
        self.store = Path(store)
        self.base = base
        self.keep = keep
        self.path = self.store / f".building-{_now()}-{os.getpid()}"
        self.name = ""

    def __enter__(self) -> StagedGeneration:
        _require_lock(self.store, "writing a generation")
        clean_stale_builds(self.store)
        if self.base is not None:
            try:
                shutil.copytree(self.base, self.path)
            except OSError as exc:
                shutil.rmtree(self.path, ignore_errors=True)
                raise StoreError(f"{self.store}: cannot copy generation {self.base.name}: {exc}") from None
        else:
            self.path.mkdir()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        name = f"gen-{_now()}-{os.getpid()}"
        try:
            os.rename(self.path, self.store / name)
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        switch_generation(self.store, name, self.keep)
        self.name = name
