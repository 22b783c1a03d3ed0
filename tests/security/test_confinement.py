"""Confined agents: an isolated file agent that attacks the machine gets an error, and the run goes on.

Each hostile agent under ``hostile/`` tries one thing on its first ``act`` and says what happened by
raising ``outcome=...``, which ``arena run --json`` reports as its forfeit reason; the tests assert
the outcome, and where it can be seen from outside (a file, a listener, the terminal) that as well.
A protection this kernel cannot give skips its test with the line ``arena run`` prints for it.
"""
import json
import os
import socket
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = Path(__file__).resolve().parent / "hostile"


@lru_cache(maxsize=None)
def missing() -> tuple[str, ...]:
    """The protections this machine cannot give (``python -m server.play.sandbox``)."""
    from server.play.sandbox import report
    return tuple(report())


def needs(word: str) -> None:
    """Skip unless the protection whose missing-line mentions ``word`` is given here (no confinement at
    all, on another OS or CPU, says ``confinement ...``)."""
    for line in missing():
        if word in line or line.startswith("confinement"):
            pytest.skip(f"this machine cannot give it: arena says 'isolated agents run without {line}'")


def arena(*args, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    full = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=timeout)


def play(agent: str, *extra: str, env: dict | None = None, games: int = 4) -> tuple[dict, subprocess.CompletedProcess]:
    """``arena run connect4`` of the hostile ``agent`` against random; the JSON summary and the process."""
    p = arena("run", "connect4", "--matches", "4", "--games", str(games), "--agents", f"{HOSTILE / agent}:Evil,random",
              "--json", "--no-progress", *extra, env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1]), p


def outcome(summary: dict) -> str:
    """What the hostile agent reported (``outcome=...`` in its forfeit reason)."""
    [f] = summary["forfeits"]
    assert "outcome=" in f["reason"], f["reason"]
    return f["reason"].split("outcome=", 1)[1].split(" (at ", 1)[0]


def test_each_missing_protection_is_named_on_stderr():
    _, p = play("read_file.py", "--agent-arg", f"Evil.path={HOSTILE / 'read_file.py'}")
    named = [line for line in p.stderr.splitlines() if line.startswith("arena: isolated agents run without ")]
    assert named == [f"arena: isolated agents run without {m}" for m in missing()]


def test_a_missing_protection_is_named_once(capsys):
    from server.net.protocol import Message
    from server.play.isolated import IsolatedAgent

    agent = IsolatedAgent.__new__(IsolatedAgent)   # only its message handling, no process
    ready = Message("hello", meta={"stage": "ready", "missing": ["seccomp (test)", "a \x1b[31mred\x1b[0m line"],
                                   "cpu": 1.0, "tids": [1], "tid_cpu": [1.0]})
    for _ in range(2):
        agent._ready(ready)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["arena: isolated agents run without seccomp (test)",
                     "arena: isolated agents run without a  [31mred [0m line"]


def test_python_m_server_play_sandbox_says_what_this_machine_gives():
    p = subprocess.run([sys.executable, "-m", "server.play.sandbox"], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert p.returncode == 0
    if missing():
        assert p.stdout.splitlines() == ["isolated agents run without:"] + [f"  - {m}" for m in missing()]
    else:
        assert p.stdout.strip() == "isolated agents are confined with every protection"


def test_the_seccomp_program_is_well_formed():
    from server.play import sandbox

    for arch in ("x86_64", "aarch64"):
        prog = sandbox.seccomp_filter(arch, pid=1234)
        assert len(prog) < 4096 and prog[-1] == (sandbox._RET, 0, 0, sandbox.SECCOMP_RET_ALLOW)
        for i, (code, jt, jf, k) in enumerate(prog):
            if code in (sandbox._JEQ, sandbox._JGE, sandbox._JSET):
                assert i + 1 + max(jt, jf) < len(prog), f"{arch}: instruction {i} jumps out of the program"
            if code == sandbox._RET:
                assert jt == jf == 0


def test_it_reads_its_own_folder():
    s, _ = play("read_file.py", "--agent-arg", f"Evil.path={HOSTILE / 'read_file.py'}")
    assert outcome(s).startswith('read:"""Tries to read the file')


@pytest.mark.parametrize("where", ["root-only file", "home", "/etc/shadow"])
def test_it_cannot_read_secrets(where, tmp_path):
    needs("landlock")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    if where == "/etc/shadow":
        if not os.path.exists("/etc/shadow"):
            pytest.skip("no /etc/shadow here")
        target = Path("/etc/shadow")
    elif where == "home":
        target = home / ".ssh" / "id_ed25519"
        target.write_text("PRIVATE KEY 1234")
    else:
        target = tmp_path / "private" / "secret.txt"
        target.parent.mkdir(mode=0o700)
        target.write_text("PRIVATE 5678")
        target.chmod(0o600)
    s, p = play("read_file.py", "--agent-arg", f"Evil.path={target}", env={"HOME": str(home)})
    assert outcome(s) == "PermissionError"
    assert "PRIVATE" not in p.stdout + p.stderr and "root:" not in p.stdout + p.stderr


def test_it_writes_only_its_scratch_folder(tmp_path):
    needs("landlock")
    target = tmp_path / "pwned.txt"
    s, _ = play("write_outside.py", "--agent-arg", f"Evil.path={target}")
    assert outcome(s) == "PermissionError/wrote"     # outside: refused; its HOME (scratch): fine
    assert not target.exists()


def test_it_has_no_network():
    needs("seccomp")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        s, _ = play("connect.py", "--agent-arg", f"Evil.port={listener.getsockname()[1]}")
        assert outcome(s) == "PermissionError"      # socket.socket() itself raises
        with pytest.raises(socket.timeout):
            listener.accept()


def test_it_cannot_hold_3_gb():
    s, _ = play("big_alloc.py")
    [f] = s["forfeits"]
    assert "raised MemoryError" in f["reason"] and "3.00 GiB" in f["reason"], f["reason"]


def test_agent_memory_sets_the_limit():
    p = arena("run", "connect4", "--agent-memory", "lots", "--agents", "random,random")
    assert p.returncode == 2 and "'lots' is not a size" in p.stderr


def test_it_cannot_start_processes():
    needs("seccomp")
    s, _ = play("fork_child.py")
    assert outcome(s) == "PermissionError/PermissionError"   # os.fork() and subprocess.Popen


def test_it_cannot_kill_its_parent():
    needs("seccomp")
    s, _ = play("kill_parent.py")       # the run finished (play() checked rc 0): the parent lived
    assert outcome(s) == "PermissionError"


def test_it_gets_a_minimal_environment(tmp_path):
    s, _ = play("env_leak.py", env={"AWS_SECRET_ACCESS_KEY": "hunter2", "GITHUB_TOKEN": "ghp_x", "HOME": str(tmp_path)})
    env, home = outcome(s).split(";")
    assert env == "env:none"
    assert home.startswith("home:") and str(tmp_path) not in home and "/arena-agent-" in home   # its scratch


def test_a_background_thread_burning_cpu_is_disqualified():
    s, _ = play("burn_cpu.py", "--matches", "64", games=20000)
    [f] = s["forfeits"]
    assert "threads it started used" in f["reason"] and "disqualified" in f["reason"], f["reason"]
    assert s["seconds"] < 15


def test_its_output_never_reaches_the_terminal():
    s, p = play("spew.py")               # 100 MiB on stdout, escape codes on stderr
    assert s["forfeits"] == []           # printing is allowed; it just goes to its log
    assert len(p.stdout) < 20_000 and len(p.stderr) < 20_000
    assert "spam" not in p.stdout + p.stderr and "\x1b" not in p.stdout + p.stderr


def test_its_log_is_capped():
    from server.play.isolated import LOG_CAP, IsolatedAgent

    agent = IsolatedAgent(f"{HOSTILE / 'spew.py'}:Evil", "connect4", {})
    try:
        mask = np.ones((2, 7), dtype=np.int8)
        agent.act(np.zeros((2, 6, 7, 2), dtype=np.float32), mask)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and b"dropped" not in Path(agent.log_path).read_bytes()[-200:]:
            time.sleep(0.1)
        log = Path(agent.log_path).read_bytes()
        assert log.startswith(b"spam spam") and log.rstrip().endswith(b"bytes dropped]")
        assert LOG_CAP <= len(log) < LOG_CAP + 200
    finally:
        agent.close()
    assert not os.path.exists(agent.log_path)   # the run folder goes with the agent


def test_the_json_last_line_is_ours():
    s, p = play("fake_json.py")
    assert "forged" not in p.stdout and "forged" not in s
    assert set(s["results"]) == {f"{HOSTILE / 'fake_json.py'}:Evil", "random"} and s["matches"] == 4


def test_an_agent_that_answers_garbage_is_disqualified():
    s, _ = play("garbage.py", games=8)
    [f] = s["forfeits"]
    assert "sent a malformed reply" in f["reason"] and "disqualified" in f["reason"], f["reason"]
