"""The home-wide writer lock: one writer of the raw store, the manifest,
data/landing/ and the warehouse at a time (ingest, collect, fetch, refresh,
compact, build, train's build, ledger sync, backtest, run-all).

An exclusive fcntl.flock on data/writer.lock, so the kernel releases it when
the holder dies, however it dies; the file keeps the holder's PID and command
for the refusal message. Re-entrant within one process (refresh -> ingest ->
build take it once). A second writer waits up to `wait` seconds, then refuses.
Readers (board, score, show) take no lock. Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from apy_runway.foundation.console import UserError, log

_default_wait = [0.0]  # what `locked` writers wait: a command's --wait (cli/main.py)
_held: dict[Path, int] = {}  # lock file -> nesting depth held by this process
_guard = threading.Lock()
POLL_SECONDS = 0.05


def current_command() -> str:
    """This process's command line, shortened, for the holder record."""
    program = os.path.basename(sys.argv[0]) if sys.argv else "python"
    return " ".join([program, *sys.argv[1:]])[:200]


def holder_of(lock_file: Path) -> str:
    """'PID <pid> (<command>)' as the holder recorded it, or 'an unknown process'."""
    try:
        text = lock_file.read_text().strip()
    except OSError:
        text = ""
    if not text:
        return "an unknown process"
    pid, _, command = text.partition(" ")
    return f"PID {pid} ({command})" if command else f"PID {pid}"


def _try_lock(handle) -> bool:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return False
    return True


@contextlib.contextmanager
def writer_lock(lock_file: Path, what: str, wait: float = 0.0) -> Iterator[None]:
    """Hold the writer lock on `lock_file` for the block. Waits up to `wait`
    seconds for another holder, then raises UserError naming it; `what` names
    this writer in that message."""
    lock_file = Path(lock_file)
    with _guard:
        if _held.get(lock_file):
            _held[lock_file] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[lock_file] -= 1
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_file.open("a+")
    try:
        deadline = time.monotonic() + max(0.0, wait)
        announced = False
        while not _try_lock(handle):
            if time.monotonic() >= deadline:
                waited = f" after waiting {wait:g} s" if wait > 0 else ""
                raise UserError(
                    f"another writer is running: {holder_of(lock_file)} holds {lock_file}; "
                    f"{what} did nothing{waited} (pass --wait SECONDS to wait for it)"
                )
            if not announced:
                log(f"{what}: waiting up to {wait:g} s for {holder_of(lock_file)} to finish")
                announced = True
            time.sleep(POLL_SECONDS)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {current_command()}\n")
        handle.flush()
        with _guard:
            _held[lock_file] = 1
        try:
            yield
        finally:
            with _guard:
                _held.pop(lock_file, None)
    finally:
        handle.close()  # closing the descriptor releases the lock


def holds(lock_file: Path) -> bool:
    """Whether this process holds the writer lock on `lock_file`."""
    with _guard:
        return bool(_held.get(Path(lock_file)))


def set_default_wait(seconds: float) -> None:
    """How long `locked` writers of this process wait (a command's --wait)."""
    _default_wait[0] = max(0.0, float(seconds))


def locked(what: str):
    """Decorate a writer whose arguments include a ProjectPaths: the call runs
    under that home's writer lock, waiting set_default_wait's seconds (a
    command that holds the lock already re-enters it)."""

    def decorate(function):
        @functools.wraps(function)
        def run(*args, **kwargs):
            home = next((a for a in (*args, *kwargs.values()) if hasattr(a, "writer_lock")), None)
            if home is None:
                raise TypeError(f"{function.__name__} needs the project paths")
            with writer_lock(home.writer_lock, what, _default_wait[0]):
                return function(*args, **kwargs)

        return run

    return decorate
