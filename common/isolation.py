"""Work that may kill its process runs in a child process, so that only the child dies.

`Isolated` keeps one child process (a `concurrent.futures.ProcessPoolExecutor` of one
worker, 'spawn' start method, `max_tasks_per_child`), set up once by an initializer (e.g.
loading a model), and runs one call at a time in it with a time budget. When the child
dies — a native library's abort() (GDCM's uncaught C++ exceptions), a segfault, the kernel's
OOM killer — or outlives the budget (it is killed), the call raises `WorkerCrashError`
naming the signal; the pool is rebuilt for the next call and the caller carries on.
Exceptions the function raises arrive as raised (the typed errors pickle whole).

An initializer that fails does not break the pool: its exception is raised by every call,
so a missing model is reported as the `ModelError` it is, not as a dead child. A new child is
asked to answer once before it is given work: one that dies while starting (it cannot import
its code, it is killed while loading a model) raises `WorkerCrashError` with reason
"start_failed", which blames the set-up, not the work.

A child exits on its own when its parent is gone (it looks once a second), so a parent
killed with SIGKILL leaves no orphan holding a model in memory.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from common.errors import WorkerCrashError

_PARENT_POLL_SECONDS = 1.0
_init_error: BaseException | None = None  # in the child: what its initializer raised


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(_PARENT_POLL_SECONDS)
        if os.getppid() != parent_pid:
            os._exit(1)


def _child_setup(parent_pid: int, initializer: Callable | None, initargs: tuple) -> None:
    global _init_error
    # Ctrl-C reaches the whole process group: the parent decides what stops, and kills us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch",
                     daemon=True).start()
    if initializer is None:
        return
    try:
        initializer(*initargs)
    except BaseException as exc:  # noqa: BLE001 - every call raises it (see the module doc)
        _init_error = exc


def _ready() -> bool:
    return True


def _call(fn: Callable, args: tuple, kwargs: dict) -> Any:
    if _init_error is not None:
        raise _init_error
    return fn(*args, **kwargs)


def describe_exit(code: int | None) -> str:
    """"SIGABRT", "SIGKILL (out of memory?)", "exit 3" for a process's exit code."""
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"{name} (killed: out of memory?)" if -code == signal.SIGKILL else name
    return f"exit {code}"


def _exit_code(procs: list, wait: float = 5.0) -> int | None:
    """The exit code of the child that died. The pool's own thread reaps it too, and the
    loser of that race reads None (waitpid: ECHILD) until the winner stored the code."""
    deadline = time.monotonic() + wait
    while True:
        codes = []
        for p in procs:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
            codes.append(p.exitcode)
        died = next((c for c in codes if c not in (None, 0)), None)
        if died is not None or time.monotonic() >= deadline:
            return died
        time.sleep(0.02)


class Isolated:
    """One child process that runs calls one at a time; its death fails only that call.

    `name` words the errors ("the analysis process died"). `seconds` is the default time
    budget of a call (None or 0: none). Thread-safe: calls are serialised.
    """

    def __init__(
        self,
        name: str,
        *,
        initializer: Callable | None = None,
        initargs: tuple = (),
        max_tasks_per_child: int | None = None,
        seconds: float | None = None,
        start_seconds: float = 900.0,
    ) -> None:
        self.name = name
        self.start_seconds = start_seconds  # for a new child's initializer (a model load)
        self.initializer = initializer
        self.initargs = initargs
        self.max_tasks_per_child = max_tasks_per_child
        self.seconds = seconds
        self.deaths = 0  # children lost to a crash or a time-out, since this object was made
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.RLock()
        self._busy_since = 0.0

    # -- state, for a health check ------------------------------------------------------------

    def pids(self) -> list[int]:
        pool = self._pool
        procs = getattr(pool, "_processes", None) or {}
        return [p.pid for p in list(procs.values()) if p.is_alive()]

    @property
    def busy_since(self) -> float:
        """When the call in progress began (time.time()), 0.0 when idle."""
        return self._busy_since

    # -- calls ----------------------------------------------------------------------------------

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=get_context("spawn"),
            initializer=_child_setup,
            initargs=(os.getpid(), self.initializer, self.initargs),
            max_tasks_per_child=self.max_tasks_per_child,
        )

    def call(self, fn: Callable, *args: Any, source: str | None = None,
             seconds: float | None = None, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` in the child; `fn` and its arguments must pickle (a module-
        level function). Raises what `fn` raised, or `WorkerCrashError` (reason "crashed":
        the child died; "time_budget": it ran out of time and was killed; "start_failed": a
        new child died before it could take the call)."""
        budget = self.seconds if seconds is None else seconds
        with self._lock:
            if self._pool is None:
                self._start()
            pool = self._pool
            assert pool is not None
            self._busy_since = time.time()
            try:
                try:
                    future = pool.submit(_call, fn, args, kwargs)
                except BrokenProcessPool:  # the idle child died since the last call
                    self._discard(kill=True)
                    self._start()
                    pool = self._pool
                    future = pool.submit(_call, fn, args, kwargs)
                procs = list(pool._processes.values())  # the child that takes this call
                try:
                    return future.result(timeout=budget or None)
                except BrokenProcessPool:
                    died = _exit_code(procs)
                    self.deaths += 1
                    self._discard(kill=True)
                    raise WorkerCrashError(
                        source, f"the {self.name} process died ({describe_exit(died)}); "
                        "a new one is started for the next call") from None
                except TimeoutError:
                    if future.done():
                        raise  # fn itself raised TimeoutError
                    self.deaths += 1
                    self._discard(kill=True, procs=procs)
                    raise WorkerCrashError(
                        source, f"the {self.name} process did not finish within {budget:g} s "
                        "and was killed", reason="time_budget") from None
            finally:
                self._busy_since = 0.0

    def _start(self) -> None:
        """A new pool whose child has started (run its initializer) and answered."""
        pool = self._pool = self._new_pool()
        future = pool.submit(_ready)
        procs = list(pool._processes.values())
        try:
            future.result(timeout=self.start_seconds)
        except BrokenProcessPool:
            died = _exit_code(procs)
            self._discard(kill=True)
            raise WorkerCrashError(None, f"the {self.name} process could not start "
                                   f"({describe_exit(died)})", reason="start_failed") from None
        except TimeoutError:
            self._discard(kill=True, procs=procs)
            raise WorkerCrashError(None, f"the {self.name} process did not start within "
                                   f"{self.start_seconds:g} s", reason="start_failed") from None

    def _discard(self, *, kill: bool, procs: list | None = None) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        victims = list(procs or []) + list(getattr(pool, "_processes", {}).values())
        if kill:
            for p in victims:
                if p.is_alive():
                    p.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        for p in victims:
            p.join(timeout=5)

    def terminate(self) -> None:
        """Kill the child now (a call in progress raises `WorkerCrashError`)."""
        pool = self._pool
        if pool is None:
            return
        for p in list(getattr(pool, "_processes", {}).values()):
            if p.is_alive():
                p.kill()

    def close(self) -> None:
        """Stop the child once its call (if any) is done."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def crashing_items(screen: Callable, *args: Any, limit: int = 20,
                   name: str = "screening") -> tuple[dict[str, str], WorkerCrashError | None]:
    """{item: why} of the items whose processing kills its process, found one at a time.

    `screen(*args, exclude, marker)` runs in a child: it processes every item not in
    `exclude`, writing the item's name to the file `marker` before starting on it and
    emptying it at the end. When the child dies, `marker` names the culprit; the next child
    skips it. Returns the culprits and, when a death named no item (out of memory during
    set-up, a child that could not start), that death.
    """
    found: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="radassist-screen-") as tmp:
        marker = Path(tmp) / "processing"
        child = Isolated(name)
        try:
            while len(found) < limit:
                marker.write_text("")
                try:
                    child.call(screen, *args, frozenset(found), str(marker))
                    return found, None
                except WorkerCrashError as exc:
                    culprit = marker.read_text()
                    if not culprit or exc.reason == "start_failed":
                        return found, exc
                    found[culprit] = exc.message.split(";")[0]
        finally:
            child.close()
    return found, None
