"""No orphans: SIGINT, SIGTERM or SIGKILL of an ``arena`` parent leaves no child of it alive 3 s later
(policy worker, learner, agent host); no temporary folder is left once it has exited
(SIGINT, SIGTERM) or once the next ``arena`` command has started (SIGKILL).

Each case starts a real ``arena`` command with its own ``TMPDIR``, waits until its children are up (and,
for ``arena run``, the isolated agent is busy computing inside ``act``), collects every descendant's pid
from /proc, sends the signal, and checks /proc again.
"""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = Path(__file__).resolve().parent / "hostile"
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
GONE_WITHIN_S = 3.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")


def _stat(pid: int) -> tuple[int, str, float] | None:
    """``(ppid, state, cpu seconds)`` of ``pid``, or None when it no longer exists."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()
    except OSError:
        return None
    return int(fields[1]), fields[0].decode(), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid``: ``{pid: command line}``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[1] != "Z":
                children.setdefault(st[0], []).append(int(entry))
    out, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                out[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            todo.append(child)
    return out


def alive(pids) -> list[int]:
    return [p for p in pids if (st := _stat(p)) is not None and st[1] != "Z"]


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def arena_env(tmp: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp))


@pytest.fixture
def start():
    """``start(args, tmp)``: an ``arena`` command with ``TMPDIR=tmp``; it and anything it started are
    killed after the test, whatever happened (a test that fails must not leave processes behind)."""
    started = []

    def _start(args: list[str], tmp: Path) -> subprocess.Popen:
        with open(tmp.parent / f"{tmp.name}.out", "wb") as out:
            p = subprocess.Popen([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=arena_env(tmp),
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        started.append(p)
        return p

    yield _start
    for p in started:
        kids = descendants(p.pid)
        if p.poll() is None:
            p.kill()
            p.wait()
        for k in alive(kids):
            os.kill(k, signal.SIGKILL)


def run_folders(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("arena-"))


def shm_folders(pid: int) -> list[str]:
    """A game server's shared-memory folder (``server.net.shm``) lives in /dev/shm, whatever TMPDIR says."""
    import glob
    return sorted(glob.glob(f"/dev/shm/arena-shm-{pid}-*"))


def check_nothing_left(parent: subprocess.Popen, kids: dict[int, str], sig: int, tmp: Path) -> None:
    """Send ``sig`` to ``parent``; within 3 s none of ``kids`` is alive; once the parent has exited no
    run folder is left (SIGINT, SIGTERM), or the next arena command removes them and says so (SIGKILL)."""
    t0 = time.monotonic()
    parent.send_signal(sig)
    try:
        while alive(kids) and time.monotonic() - t0 < GONE_WITHIN_S:
            time.sleep(0.05)
        left = {p: kids[p] for p in alive(kids)}
        assert not left, f"{signal.Signals(sig).name}: still alive {time.monotonic() - t0:.1f} s later: {left}"
        parent.wait(timeout=60)   # (arena train still saves checkpoints and draws its curves)
        stale = run_folders(tmp) + shm_folders(parent.pid)
        if sig != signal.SIGKILL:
            assert stale == [], f"{signal.Signals(sig).name}: the parent exited and left {stale}"
        if stale:   # SIGKILL: nobody removed them; the next command does
            nxt = subprocess.run([sys.executable, "-m", "server.cli", "list"], cwd=ROOT, env=arena_env(tmp),
                                 capture_output=True, text=True, timeout=60)
            assert nxt.returncode == 0, nxt.stderr
            # (/dev/shm is shared: folders of other dead arena processes may go in the same sweep)
            head = nxt.stderr.splitlines()[0] if nxt.stderr else ""
            m = re.match(r"arena: removed (\d+) temporary folder\(s\) left by arena processes that died \(pid ", head)
            assert m and int(m[1]) >= len(stale) and str(parent.pid) in head, nxt.stderr
            assert run_folders(tmp) == [] and shm_folders(parent.pid) == []
    finally:
        for p in alive(kids):   # never leave a failing test's processes behind
            os.kill(p, signal.SIGKILL)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_arena_run_with_an_agent_busy_in_act(sig, tmp_path, start):
    """The isolated agent computes for ever inside act(); its host dies with the run."""
    p = start(["run", "connect4", "--matches", "8", "--steps", "1000000", "--no-progress", "--agent-timeout", "600",
               "--agents", f"{HOSTILE / 'busy.py'}:Evil,random"], tmp_path)

    def busy_host():
        hosts = [k for k, cmd in descendants(p.pid).items() if "server.play.agent_host" in cmd]
        if not hosts:
            return None
        before = _stat(hosts[0])
        time.sleep(0.3)
        after = _stat(hosts[0])
        return hosts[0] if before and after and after[2] - before[2] > 0.15 else None

    host = wait_for(busy_host, 60, "the agent host to be busy in act")
    kids = descendants(p.pid)
    assert host in kids and len(run_folders(tmp_path)) == 1
    check_nothing_left(p, kids, sig, tmp_path)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_arena_launch_with_workers(sig, tmp_path, start):
    p = start(["launch", "connect4", "--workers", "2", "--matches", "64", "--steps", "100000000", "--no-progress"],
              tmp_path)
    wait_for(lambda: sum(" worker " in cmd for cmd in descendants(p.pid).values()) == 2, 60, "two workers")
    time.sleep(1.0)   # the server playing with them
    kids = descendants(p.pid)
    check_nothing_left(p, kids, sig, tmp_path)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_arena_train_with_learners_and_workers(sig, tmp_path, start):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    p = start(["train", "connect4", "--learners", "2", "--minutes", "10", "--out", str(tmp_path / "run"),
               "--set", "num_matches=16", "--set", "batch_segments=16", "--set", "horizon=4", "--set", "hidden=16",
               "--eval-games", "0", "--every", "1"], tmp)
    learners = lambda: [c for c in descendants(p.pid).values() if " server.cli learner " in c]  # noqa: E731
    workers = lambda: [c for c in descendants(p.pid).values() if " server.cli worker " in c]   # noqa: E731
    wait_for(lambda: len(learners()) == 2 and workers(), 90, "two learners and a worker")
    log = tmp_path / "tmp.out"
    wait_for(lambda: " L1 " in log.read_text(errors="replace"), 90, "a table row: the learners at work")
    kids = descendants(p.pid)
    check_nothing_left(p, kids, sig, tmp)


def test_the_reaper_removes_only_folders_of_dead_processes(tmp_path):
    from server.net.proc import make_run_dir, reap_stale_dirs

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tmp_path / f"arena-agent-{dead.pid}-abc123"
    (gone / "scratch").mkdir(parents=True)
    (gone / "owner").write_text(f"{dead.pid} 1\n")
    live_other = tmp_path / f"arena-launch-{os.getppid()}-def456"        # pytest's parent: alive
    live_other.mkdir()
    reused = tmp_path / f"arena-train-{os.getppid()}-ghi789"              # its pid, another start time
    reused.mkdir()
    (reused / "owner").write_text(f"{os.getppid()} 1\n")
    unrelated = tmp_path / "arena-notes"
    unrelated.mkdir()
    os.environ["TMPDIR"], before = str(tmp_path), os.environ.get("TMPDIR")
    try:
        import tempfile
        tempfile.tempdir = None
        mine = Path(make_run_dir("agent"))
        assert mine.parent == tmp_path and mine.name.startswith(f"arena-agent-{os.getpid()}-")
        assert sorted(reap_stale_dirs([str(tmp_path)])) == sorted([str(gone), str(reused)])
        assert live_other.is_dir() and unrelated.is_dir() and mine.is_dir()
    finally:
        if before is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = before
        tempfile.tempdir = None
