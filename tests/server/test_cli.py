"""`arena` in a real subprocess: the JSON summary, determinism, and the one-line error path."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def arena(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["connect4", "battle"])
def test_run_prints_a_table_and_a_json_summary(name):
    opts = ["-o", "team_size=2", "-o", "map_size=12", "-o", "max_steps=40"] if name == "battle" else []
    p = arena("run", name, "--matches", "64", "--agents", "greedy,random", "--seed", "3", "--json", *opts)
    assert p.returncode == 0, p.stderr
    s = last_json(p.stdout)
    for key in ("arena", "matches", "agent_steps", "seconds", "agent_steps_per_s", "results"):
        assert key in s, f"missing {key}"
    assert s["arena"] == name and s["matches"] == 64
    assert set(s["results"]) == {"greedy", "random"}
    g, r = s["results"]["greedy"], s["results"]["random"]
    assert g["wins"] + g["losses"] + g["draws"] == 64 == r["wins"] + r["losses"] + r["draws"]
    assert g["wins"] == r["losses"] and g["draws"] == r["draws"], "one outcome per match, seen from both sides"
    assert g["wins"] > r["wins"], "greedy should beat random"
    assert s["agent_steps"] > 0 and s["agent_steps_per_s"] > 0
    assert "greedy" in p.stdout and "wins" in p.stdout  # the human table precedes the JSON line
    if name == "battle":
        assert "kills" in g and "survivors" in g


def test_same_seed_same_results():
    args = ["run", "connect4", "--matches", "128", "--agents", "random,random", "--json", "--seed", "5"]
    a, b = last_json(arena(*args).stdout), last_json(arena(*args, "--threads", "1").stdout)
    assert a["results"] == b["results"] and a["agent_steps"] == b["agent_steps"]
    c = last_json(arena(*args[:-1], "6").stdout)
    assert c["results"] != a["results"] or c["agent_steps"] != a["agent_steps"]


def test_games_and_steps_stop_rules():
    s = last_json(arena("run", "connect4", "--matches", "32", "--games", "100", "--json").stdout)
    assert s["matches"] == 100
    s = last_json(arena("run", "connect4", "--matches", "32", "--steps", "5", "--json").stdout)
    assert s["steps"] == 5 and s["agent_steps"] == 32 * 5 and s["matches"] == 0


@pytest.mark.parametrize("args, needle", [
    (["run", "chess"], "unknown arena 'chess'; choose from: connect4, battle"),
    (["run", "connect4", "--agents", "greedy,sniper"], "unknown agent 'sniper'"),
    (["run", "connect4", "--matches", "0"], "--matches"),
    (["run", "connect4", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["run", "battle", "-o", "team_size=500"], "team_size"),
    (["run", "battle", "-o", "colour=red"], "bad option"),
])
def test_errors_are_one_line_with_exit_status_2(args, needle):
    p = arena(*args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert needle in lines[0]
    assert "Traceback" not in p.stderr


def test_list_names_arenas_and_agents():
    p = arena("list")
    assert p.returncode == 0
    for word in ("connect4", "battle", "random", "greedy"):
        assert word in p.stdout


def test_ray_is_imported_only_for_backend_ray():
    """Without --backend ray nothing imports Ray (an optional extra), even when it is installed."""
    code = ("import sys; from server.cli import main; "
            "rc = main(['run', 'connect4', '--matches', '4', '--games', '4', '--agents', 'random,greedy', "
            "'--no-progress']); assert rc == 0; print('RAY' if 'ray' in sys.modules else 'NO-RAY')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "NO-RAY"
