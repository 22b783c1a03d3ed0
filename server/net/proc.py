"""Child processes: how they start, what they start with, and what they leave behind.

- ``child_cmd([python, "-m", MODULE, ...])`` is the command line of every child we start (workers,
  learners, rollout workers): ``python -m server.net.child PARENT_PID MODULE ...``, which ties the child
  to its parent (``die_with_parent``) before it runs ``MODULE`` as ``python -m MODULE`` would. ``child_env()`` is
  its environment.
- ``make_run_dir(kind)`` is every temporary folder a run makes: ``arena-KIND-PID-XXXXXXXX`` (0700) with
  an ``owner`` file naming the process (pid and start time). It is removed when that process exits;
  after a SIGKILL, ``reap_stale_dirs()`` (called by every ``arena`` command as it starts, through
  ``command_start()``) removes the folders whose owner is gone, and says so.
- ``stop_flag()`` is the flag SIGTERM and SIGINT set for loops that check it between steps.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import re
import shutil
import signal
import sys
import tempfile

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: ``prctl`` option: the signal a process gets when the thread that started it exits (Linux)
PR_SET_PDEATHSIG = 1
_RUN_DIR = re.compile(r"^arena-(?P<kind>[A-Za-z0-9_.]+)-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def child_env() -> dict:
    """The environment for a child ``python -m server...`` process: ours, with this checkout on
    ``PYTHONPATH`` so the child imports the same code even when the project is not installed."""
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (_ROOT, path) if p))


def child_cmd(cmd: list[str]) -> list[str]:
    """``[python, "-m", MODULE, ARGS...]`` made a child that dies with this process: the same command run
    through ``server.net.child``.

    Start it from the thread that lives as long as the child should: Linux sends the signal when the
    *thread* that forked the child exits (our children are all started from the main thread)."""
    if len(cmd) < 3 or cmd[1] != "-m":
        raise ValueError(f"child_cmd wants [python, '-m', module, ...], not {cmd[:3]}")
    return [cmd[0], "-m", "server.net.child", str(os.getpid()), *map(str, cmd[2:])]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``sig`` (default SIGKILL) to this process when its parent dies; leave at
    once if the parent ``parent`` is already gone. Returns False where the OS has no such mechanism
    (anything but Linux): such a child notices its parent's death only by polling."""
    if not sys.platform.startswith("linux"):
        return False
    if _libc().prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:   # the parent died before the line above: nobody will signal us
        os._exit(128 + int(sig))
    return True


# -- temporary folders ------------------------------------------------------------------------------
def _start_time(pid: int) -> str | None:
    """A live process's start time (clock ticks since boot, from /proc), to tell it from a later process
    that got the same pid; None where /proc has no such process (or only its zombie) or does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rpartition(b")")[2].split()
    except OSError:
        return None
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()


def make_run_dir(kind: str, place: str | None = None) -> str:
    """A new private temporary folder ``arena-KIND-PID-XXXXXXXX`` for this process (in ``place``, default
    the temporary folder); removed when this process exits normally (or by SIGTERM/SIGINT through
    ``command_start``), and by the next ``arena`` command after a SIGKILL."""
    kind = re.sub(r"[^A-Za-z0-9_.]", "_", kind) or "run"
    path = tempfile.mkdtemp(prefix=f"arena-{kind}-{os.getpid()}-", dir=place)
    with open(os.path.join(path, "owner"), "w") as fh:
        fh.write(f"{os.getpid()} {_start_time(os.getpid()) or ''}\n")
    pid = os.getpid()
    atexit.register(lambda: os.getpid() == pid and shutil.rmtree(path, ignore_errors=True))
    return path


def _owner_alive(path: str, pid: int) -> bool:
    try:
        with open(os.path.join(path, "owner")) as fh:
            fields = fh.read().split()
    except OSError:
        fields = []
    if pid == os.getpid():
        return True
    started = _start_time(pid)
    if started is not None:   # Linux: the pid is alive; is it the same process?
        return len(fields) < 2 or fields[1] == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not os.path.isdir("/proc")   # /proc exists but has no such pid: dead


def reap_stale_dirs(places: list[str] | None = None) -> list[str]:
    """Remove the folders named ``arena-KIND-PID-XXXX`` in ``places`` (default: the temporary folder and
    /dev/shm, where shared arrays live) whose owning process is gone; returns them."""
    gone: list[str] = []
    entries = []
    for place in places or dict.fromkeys([tempfile.gettempdir(), "/dev/shm"]):
        try:
            entries += list(os.scandir(place))
        except OSError:
            pass
    for entry in entries:
        m = _RUN_DIR.match(entry.name)
        if not m:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        if not _owner_alive(entry.path, int(m["pid"])):
            shutil.rmtree(entry.path, ignore_errors=True)
            if not os.path.exists(entry.path):
                gone.append(entry.path)
    return gone


def command_start() -> None:
    """What every ``arena`` command does first: remove the temporary folders of arena processes that
    died (one line on stderr when there were any), and turn SIGTERM into ``SystemExit`` so that the
    ``finally`` blocks that stop children and remove folders run."""
    gone = reap_stale_dirs()
    if gone:
        pids = sorted({int(_RUN_DIR.match(os.path.basename(p))["pid"]) for p in gone})
        print(f"arena: removed {len(gone)} temporary folder(s) left by arena processes that died "
              f"(pid {', '.join(map(str, pids))})", file=sys.stderr)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)   # a second SIGTERM ends us at once
    raise SystemExit(128 + signum)


def stop_flag() -> list[bool]:
    """A flag SIGTERM and SIGINT set (the loop checks it between steps)."""
    flag = [False]

    def handler(signum, frame):
        flag[0] = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return flag


#: the soft limit on open files a server asks for (each idle connection holds one)
OPEN_FILES = 65536


def more_open_files(want: int = OPEN_FILES) -> int:
    """Raise this process's soft limit on open files towards ``want`` (never above the hard limit)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
