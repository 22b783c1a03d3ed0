"""Plain agents load: a class with only ``act(obs, mask)`` (what the README calls an agent) works
everywhere an agent is named, and a constructor gets ``game``, ``seed`` and ``--agent-arg`` values only
as far as its signature accepts them.

Before: the loader always called ``cls(game=..., seed=...)``, so ``class Bot: def act(...)`` died with
"takes no arguments" in every mode.
"""
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import arenas
from agents.check import check_agent
from agents.loader import load_agent
from agents.registry import UnknownAgent

ROOT = Path(__file__).resolve().parents[2]

PLAIN = textwrap.dedent("""
    import numpy as np


    class Bot:
        def act(self, obs, mask):
            return np.argmax(mask, axis=1)          # the leftmost legal column


    class Seeded:
        def __init__(self, seed):
            self.seed = seed

        def act(self, obs, mask):
            return np.argmax(mask, axis=1)


    class WithGame:
        def __init__(self, game, depth=1):
            self.columns, self.depth = game.num_actions, depth

        def act(self, obs, mask):
            return np.argmax(mask, axis=1)


    def factory(**kwargs):                      # **kwargs accepts all: game, seed and every agent arg
        bot = Bot()
        bot.kwargs = kwargs
        return bot
""")


def arena(*args, cwd, timeout=240):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def summary(p):
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture
def bots(tmp_path):
    (tmp_path / "plain_bot.py").write_text(PLAIN)
    return tmp_path


def test_a_class_with_only_act_loads_and_plays_in_process(bots):
    game = arenas.make("connect4", num_matches=8, seed=0)
    agent = load_agent(f"{bots / 'plain_bot.py'}:Bot", game, seed=3)
    check_agent(agent, game)                                  # the whole protocol, through the adapter
    assert load_agent(f"{bots / 'plain_bot.py'}:Seeded", game, seed=3).inner.seed == 3
    wg = load_agent(f"{bots / 'plain_bot.py'}:WithGame", game, args={"depth": 2})
    assert (wg.columns, wg.depth) == (7, 2)
    made = load_agent(f"{bots / 'plain_bot.py'}:factory", game, seed=4, args={"x": 1})
    assert made.kwargs == {"game": game, "seed": 4, "x": 1}


def test_an_argument_the_constructor_does_not_take_is_refused_with_one_line(bots):
    game = arenas.make("connect4", num_matches=1, seed=0)
    with pytest.raises(UnknownAgent, match="cannot pass --agent-arg depth to .*accepts no arguments"):
        load_agent(f"{bots / 'plain_bot.py'}:Bot", game, args={"depth": 3})
    with pytest.raises(UnknownAgent, match="cannot pass --agent-arg width to .*accepts depth"):
        load_agent(f"{bots / 'plain_bot.py'}:WithGame", game, args={"width": 3})
    for extra in (["--trust"], []):         # in this process, and in an isolated agent's own process
        p = arena("run", "connect4", "--agents", "./plain_bot.py:Bot,random", "--agent-arg", "Bot.depth=3",
                  "--no-progress", *extra, cwd=bots)
        lines = [line for line in p.stderr.strip().splitlines() if not re.match(r"arena: removed .* left by", line)]
        assert p.returncode == 2 and len(lines) == 1, p.stderr[-2000:]
        assert "cannot pass --agent-arg depth" in lines[0] and "accepts no arguments" in lines[0], lines[0]


@pytest.mark.parametrize("flags", [["--trust"], []], ids=["in-process", "isolated"])
def test_a_plain_agent_plays_arena_run(bots, flags):
    s = summary(arena("run", "connect4", "--agents", "./plain_bot.py:Bot,random", "--matches", "64", "--json",
                      "--no-progress", *flags, cwd=bots))
    me = s["results"]["./plain_bot.py:Bot"]
    assert me["games"] == 64 and me["forfeits"] == 0
    assert me["wins"] > s["results"]["random"]["wins"], "the leftmost column beats random play"


def test_a_plain_agent_served_by_arena_worker(bots):
    endpoint = f"ipc://{bots}/server"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    serve = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "connect4", "--agents",
                              "./plain_bot.py:Bot,random", "--matches", "32", "--bind", endpoint, "--json",
                              "--no-progress"], cwd=bots, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        time.sleep(0.5)
        worker = subprocess.run([sys.executable, "-m", "server.cli", "worker", "--connect", endpoint, "--agents",
                                 "./plain_bot.py:Bot,random", "--exit-when-done", "--quiet"], cwd=bots, env=env,
                                capture_output=True, text=True, timeout=180)
        assert worker.returncode == 0, worker.stderr[-2000:]
        out, err = serve.communicate(timeout=120)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    assert serve.returncode == 0, err[-2000:]
    s = json.loads(out.strip().splitlines()[-1])
    me = s["results"]["./plain_bot.py:Bot"]
    assert me["games"] == 32 and me["forfeits"] == 0
