"""Agents that misbehave forfeit their matches; the run and everyone else's matches go on.

Each case is a real agent file under ``bad/``, run through ``arena run`` in a subprocess; file agents
run isolated in a process of their own unless ``--trust`` is given.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BAD = Path(__file__).resolve().parent / "bad"


def arena(*args, timeout=180):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_json(*args):
    p = arena(*args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


CASES = [
    ("raises.py", ["--trust"], "raised RuntimeError: lost my marbles (at raises.py:"),
    ("raises.py", [], "raised RuntimeError: lost my marbles (at raises.py:"),
    ("wrong_shape.py", [], "returned shape"),
    ("wrong_dtype.py", ["--trust"], "dtype <U4; actions must be integers"),
    ("wrong_dtype.py", [], "actions must be integers"),
    ("nan.py", [], "returned NaN"),
    ("out_of_range.py", [], "out of range 0..6"),
    ("masked.py", ["--trust"], "chose a masked (illegal) action"),
    ("hangs.py", ["--agent-timeout", "1"], "did not answer within 1 s"),
    ("segfault.py", [], "its process died (killed by SIGSEGV)"),
    ("exits.py", [], "its process died (exit status 3)"),
]


@pytest.mark.parametrize("file, flags, reason", CASES, ids=[f"{c[0]}{' '.join(c[1])}" for c in CASES])
def test_a_misbehaving_agent_forfeits_and_the_run_goes_on(file, flags, reason):
    bad = f"{BAD / file}:Bot"
    s, stderr = run_json("run", "connect4", "--matches", "48", "--agents", f"{bad},greedy,greedy",
                         "--json", "--no-progress", *flags)
    mine = s["results"][bad]
    assert mine["forfeits"] > 0 and mine["losses"] >= mine["forfeits"]
    [f] = [f for f in s["forfeits"] if f["agent"] == bad]
    assert f["arena"] == "connect4" and reason in f["reason"], f["reason"]
    assert bad in stderr and reason in stderr  # the message names the agent, the arena and the fault
    # every slot still produced exactly one result, and the greedy agents' own matches were played out
    assert s["matches"] == 48
    clean, _ = run_json("run", "connect4", "--matches", "48", "--agents", "random,greedy,greedy",
                        "--json", "--no-progress")
    for key in ("greedy vs greedy#2", "greedy#2 vs greedy"):
        assert s["pairings"][key] == clean["pairings"][key], "matches between other agents must be unaffected"


def test_an_unloadable_agent_fails_fast_with_one_line():
    p = arena("run", "connect4", "--agents", f"{BAD / 'broken_import.py'}:Bot,random")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "No module named 'this_module_does_not_exist'" in lines[0], p.stderr


def test_a_missing_attribute_fails_fast():
    p = arena("run", "connect4", "--agents", f"{BAD / 'raises.py'}:Nobody,random", "--trust")
    assert p.returncode == 2 and "has no attribute 'Nobody'" in p.stderr and "Traceback" not in p.stderr
