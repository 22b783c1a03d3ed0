"""Loading agents and arenas from every place a user can name them, through the real CLI."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import arenas
from agents.check import check_agent
from agents.loader import load_agent, split_agent_args
from agents.registry import UnknownAgent

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "centre_bot.py"


def arena(*args, cwd=ROOT, extra_path=(), timeout=240):
    path = os.pathsep.join([str(ROOT), *map(str, extra_path)])
    env = dict(os.environ, PYTHONPATH=path)
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def summary(p):
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_the_readme_example_works_when_copied_and_run_as_written(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "centre_bot.py")
    s = summary(arena("run", "connect4", "--matches", "256", "--agents", "./centre_bot.py:CentreBot,random",
                      "--json", cwd=tmp_path))
    bot = s["results"]["./centre_bot.py:CentreBot"]
    assert bot["games"] == 256 and bot["forfeits"] == 0
    assert bot["wins"] > s["results"]["random"]["wins"], "weighting the centre beats uniform play"
    s2 = summary(arena("run", "connect4", "--matches", "256", "--agents", "./centre_bot.py:CentreBot,random",
                       "--agent-arg", "CentreBot.sharpness=4", "--json", "--trust", cwd=tmp_path))
    assert s2["results"]["./centre_bot.py:CentreBot"]["games"] == 256


def test_module_attr_and_agent_args():
    s = summary(arena("run", "connect4", "--matches", "64", "--agents", "examples.centre_bot:CentreBot,greedy",
                      "--agent-arg", "CentreBot.sharpness=2", "--json"))
    assert set(s["results"]) == {"examples.centre_bot:CentreBot", "greedy"}
    p = arena("run", "connect4", "--agents", "examples.centre_bot:CentreBot,greedy", "--agent-arg", "CentreBot.depth=2")
    assert p.returncode == 2 and "depth" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def _install_plugin(tmp_path: Path) -> Path:
    """A real installed distribution (a .dist-info on the path) with agent and arena entry points."""
    site = tmp_path / "site"
    (site / "mybots").mkdir(parents=True)
    (site / "mybots" / "__init__.py").write_text(textwrap.dedent("""
        import numpy as np
        from agents import Agent
        from arenas.connect4 import Connect4

        class Leftmost(Agent):
            def act(self, obs, mask):
                return np.argmax(mask, axis=1)

        class Connect4Again(Connect4):
            '''connect4 under another name, to show a plug-in arena'''
            name = "connect4"
    """))
    dist = site / "mybots-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mybots\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[arena.agents]\nleftmost = mybots:Leftmost\n\n[arena.arenas]\nconnect4again = mybots:Connect4Again\n")
    return site


def test_entry_points_for_agents_and_arenas(tmp_path):
    site = _install_plugin(tmp_path)
    p = arena("list", extra_path=[site])
    assert "connect4again" in p.stdout
    s = summary(arena("run", "connect4again", "--matches", "32", "--agents", "leftmost,greedy", "--json",
                      extra_path=[site]))
    assert s["arena"] == "connect4again" and s["results"]["leftmost"]["games"] == 32


def test_custom_arena_from_a_file(tmp_path):
    (tmp_path / "mygame.py").write_text("from arenas.connect4 import Connect4 as MyGame\n")
    s = summary(arena("run", f"{tmp_path / 'mygame.py'}:MyGame", "--matches", "16", "--agents", "random,random",
                      "--json"))
    assert s["matches"] == 16


def test_check_agent_passes_good_agents_and_explains_bad_ones():
    game = arenas.make("connect4", num_matches=16, seed=0)
    check_agent(load_agent(f"{EXAMPLE}:CentreBot", game), "connect4")
    check_agent(load_agent("greedy", game), "connect4")
    bad = Path(__file__).resolve().parent / "bad"
    for file, needle in [("wrong_shape.py", "returned shape"), ("nan.py", "returned NaN"),
                         ("masked.py", "masked (illegal) action"), ("raises.py", "lost my marbles"),
                         ("out_of_range.py", "out of range")]:
        with pytest.raises(AssertionError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            check_agent(load_agent(f"{bad / file}:Bot", game), "connect4", steps=40)


def test_split_agent_args_matches_specs_by_their_short_name():
    out = split_agent_args(["CentreBot.sharpness=2", "greedy.x=true"], ["./b.py:CentreBot", "greedy"])
    assert out == {"./b.py:CentreBot": {"sharpness": 2}, "greedy": {"x": True}}
    with pytest.raises(ValueError, match="no agent named"):
        split_agent_args(["Nope.a=1"], ["greedy"])
    with pytest.raises(ValueError, match="NAME.key=value"):
        split_agent_args(["sharpness=2"], ["greedy"])


def test_unknown_spec_names_the_forms():
    game = arenas.make("connect4", num_matches=1, seed=0)
    with pytest.raises(UnknownAgent, match="module:Attr, path/to/file.py:Attr or ckpt:PATH"):
        load_agent("sniper", game)
