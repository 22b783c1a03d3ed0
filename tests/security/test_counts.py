"""Honest counts: the forfeit line and the results table agree, and compiling is not play.

Before: with the default stop rule (each slot's first game counts) a slot that restarted after a
forfeit and forfeited again was counted in the forfeit line but not in the table, so an agent that
forfeited everything showed "lost 416 matches" beside 400 losses. And ``arena run`` warmed up on a
one-match copy of the game, so connect4's parallel step kernel (chosen for 256 matches and more)
compiled inside the timed loop: a cold first run reported ~32k instead of ~1M agent-steps/s.
"""
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import arenas
from agents.registry import make_agent
from server.play.match import MatchRunner

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "agents" / "bad"


def arena(*args, timeout=240):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def table(stdout: str) -> dict[str, dict[str, str]]:
    """The results table as printed: agent -> column -> cell."""
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("agent "))
    cols = lines[head].replace("win %", "win%").split()
    rows = {}
    for line in lines[head + 2:]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = dict(zip(cols[1:], cells[-(len(cols) - 1):]))
    return rows


def forfeit_lines(stdout: str) -> dict[str, tuple[int, int]]:
    """agent -> (matches lost by forfeit in the table, more past the count) from the forfeit lines."""
    out = {}
    for m in re.finditer(r"^forfeit: (\S+) lost (\d+) counted matches by forfeit in \w+: .*?"
                         r"(?: \(and (\d+) more in games past the count, not in the table\))?$", stdout, re.M):
        n, more = out.get(m.group(1), (0, 0))
        out[m.group(1)] = (n + int(m.group(2)), more + int(m.group(3) or 0))
    return out


def test_an_agent_that_forfeits_everything_loses_exactly_the_counted_games():
    bad = f"{BAD / 'wrong_shape.py'}:Bot"
    p = arena("run", "connect4", "--matches", "400", "--agents", f"{bad},random", "--trust", "--json",
              "--no-progress")
    assert p.returncode == 0, p.stderr[-2000:]
    s = json.loads(p.stdout.strip().splitlines()[-1])
    mine = s["results"][bad]
    assert mine["games"] == mine["losses"] == mine["forfeits"] == 400
    printed = table(p.stdout)[bad]
    assert printed["losses"] == printed["forfeits"] == "400"
    lost, more = forfeit_lines(p.stdout)[bad]
    assert lost == 400, "the forfeit line says what the table says"
    # restarted slots forfeited again after their counted game: said apart, not mixed in
    [f] = s["forfeits"]
    assert f["matches"] == 400 and f["uncounted"] == more > 0


def test_partial_forfeits_match_the_tables_forfeits_column():
    bad = f"{BAD / 'nan.py'}:Bot"
    p = arena("run", "connect4", "--matches", "300", "--agents", f"{bad},random", "--trust", "--json",
              "--no-progress", "--games", "500")
    assert p.returncode == 0, p.stderr[-2000:]
    s = json.loads(p.stdout.strip().splitlines()[-1])
    mine = s["results"][bad]
    lost, _ = forfeit_lines(p.stdout)[bad]
    assert 0 < lost == mine["forfeits"] == int(table(p.stdout)[bad]["forfeits"]) <= mine["losses"]
    assert mine["games"] == 500


def test_counted_forfeits_per_reason_add_up_to_the_totals_under_every_stop_rule():
    class Flaky:
        """Raises on every third call, returns NaN in one row on every fifth."""
        def __init__(self):
            self.calls = 0

        def act(self, obs, mask):
            self.calls += 1
            if self.calls % 3 == 0:
                raise RuntimeError("flaked")
            out = np.argmax(mask, axis=1).astype(np.float64)
            if self.calls % 5 == 0 and len(out):
                out[0] = np.nan
            return out

    for stop in ({}, {"games": 150}, {"steps": 40}):
        game = arenas.make("connect4", num_matches=64, seed=0)
        r = MatchRunner(game, [Flaky(), make_agent("random", game)], ["flaky", "random"], warn=lambda t: None)
        r.reset(1)
        r.play(**stop)
        s = r.summary("connect4", 1.0)
        counted = sum(f["matches"] for f in s["forfeits"] if f["agent"] == "flaky")
        assert counted == s["results"]["flaky"]["forfeits"] > 0, stop
        reasons = sorted(f["reason"] for f in s["forfeits"])
        assert len(reasons) == 2 and reasons[0].startswith("raised RuntimeError: flaked") \
            and reasons[1].startswith("returned NaN"), reasons
        total = sum(r.forfeit_log.values())
        assert total == sum(f["matches"] + f["uncounted"] for f in s["forfeits"])


WATCH = textwrap.dedent("""
    # arena run, with a look at numba's dispatchers when warm-up ends and when play ends
    import json, sys
    from numba.core.registry import CPUDispatcher
    import server.cli.play as play
    from server.cli import main

    def compiled():
        out = {}
        for name, mod in list(sys.modules.items()):
            if name.split(".")[0] in ("simcore", "arenas", "agents"):
                for attr, v in vars(mod).items():
                    if isinstance(v, CPUDispatcher):
                        out[f"{name}.{attr}"] = len(v.signatures)
        return out

    seen = {}
    warm_up = play.warm_up
    def watched(*args, **kwargs):
        warm_up(*args, **kwargs)
        seen["after_warm_up"] = compiled()
    play.warm_up = watched
    rc = main(sys.argv[1:])
    seen["after_play"] = compiled()
    print(json.dumps(seen))
    sys.exit(rc)
""")


def test_numba_compiles_before_the_timed_play(tmp_path):
    script = tmp_path / "watch.py"
    script.write_text(WATCH)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # 512 matches: connect4 steps them with its parallel kernel, which a one-match copy never compiles
    p = subprocess.run([sys.executable, str(script), "run", "connect4", "--matches", "512", "--agents",
                        "greedy,random", "--no-progress", "--json"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    seen = json.loads(p.stdout.strip().splitlines()[-1])
    warm, end = seen["after_warm_up"], seen["after_play"]
    assert warm["agents.greedy_connect4.greedy_connect4_nb"] >= 1, "greedy compiled in the warm-up"
    assert warm["arenas.connect4.nb.step_nb"] >= 1, "the step kernel play uses compiled in the warm-up"
    late = {k: (warm.get(k, 0), n) for k, n in end.items() if n != warm.get(k, 0)}
    assert not late, f"compiled inside the timed play: {late}"
    summary = json.loads(p.stdout.strip().splitlines()[-2])
    assert summary["matches"] == 512 and summary["compile_seconds"] > 0
