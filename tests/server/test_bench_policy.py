"""`arena bench --policy`: speed rows per precision, mode and batch beside fp32 eager, and the quality check."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import arenas
from agents.inference import available
from server.bench.policy import Variant, load_master, play_fp32, play_openings, run_policy_bench, wilson

ROOT = Path(__file__).resolve().parents[2]


def test_the_old_bench_functions_stay_where_they_were():
    import server.bench

    for name in ("run_bench", "run_distributed", "run_train_bench", "bench_arena", "protocol_cost", "engine_rate"):
        assert callable(getattr(server.bench, name)), name


def test_rows_cover_every_precision_and_batch_beside_fp32_eager():
    figures = run_policy_bench("connect4", batches=(1, 32), seconds=0.01, games=0, modes=("eager",))
    rows = figures["rows"]
    want = {(p, b) for p in available("cpu") for b in (1, 32)}
    assert {(r["precision"], r["batch"]) for r in rows} >= want
    for r in rows:
        assert {"precision", "mode", "device", "batch", "decisions_per_s", "p50_ms", "p99_ms"} <= set(r)
        assert r["mode"] == "eager" and r["device"] == "cpu"
        assert r["decisions_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
        # both figures are rounded (decisions/s to 0.1): a slow machine makes small ones, hence abs
        assert r["decisions_per_s"] == pytest.approx(r["batch"] / (r["p50_ms"] / 1e3), rel=1e-3, abs=0.06)
    base = [r for r in rows if r["precision"] == "fp32" and r["batch"] == 32]
    assert base[0]["x_fp32_eager"] == 1.0
    assert figures["policy"] == "ckpt:builtin/connect4" and figures["quality"] == {}


def test_openings_are_shared_by_each_pair_of_slots():
    game = arenas.make("connect4", num_matches=40, seed=0)
    game.reset(seed=0)
    play_openings(game, 4, seed=1)
    obs = game.obs.reshape(20, 2, -1)                     # (pair, slot in pair, ...)
    assert (obs[:, 0] == obs[:, 1]).all(), "both slots of a pair open alike"
    assert len({o.tobytes() for o in obs[:, 0]}) > 5, "pairs open differently"
    with pytest.raises(ValueError, match="fewer"):
        play_openings(arenas.make("connect4", num_matches=4, seed=0), 42, seed=0)


def test_quality_counts_every_game_and_fp32_is_even_with_itself():
    _, net, _ = load_master("connect4")
    r = play_fp32("connect4", net, Variant("fp32", "eager", "cpu"), games=400)
    assert r["games"] == 400 and r["wins"] + r["losses"] + r["draws"] == 400
    assert r["ci95"][0] < 0.5 < r["ci95"][1] and not r["flagged"]
    assert 0.3 < r["team0_won"] < 0.9, "the openings make games that the first mover does not always win"


def test_a_damaged_policy_loses_visibly():
    """The check can see a loss: a 1-bit copy (sign times the row's mean magnitude) plays the original."""
    import copy

    import torch

    from agents.neural import NeuralAgent
    from server.bench.policy import FLAG_LOSS
    from server.play.match import MatchRunner

    _, net, _ = load_master("connect4")
    damaged = copy.deepcopy(net)
    with torch.no_grad():
        for m in damaged.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(m.weight.sign() * m.weight.abs().mean(1, keepdim=True))
    game = arenas.make("connect4", num_matches=300, seed=0)
    runner = MatchRunner(game, [NeuralAgent(game, seed=1, net=damaged, device="cpu"),
                                NeuralAgent(game, seed=2, net=net, device="cpu")])
    runner.reset(0)
    play_openings(game, 4, seed=0)
    runner.play()
    t = runner.totals[0]
    assert wilson(t.wins + 0.5 * t.draws, t.games)[1] < 0.5 - FLAG_LOSS


def test_wilson_interval():
    lo, hi = wilson(1000, 2000)
    assert lo == pytest.approx(0.4781, abs=1e-3) and hi == pytest.approx(0.5219, abs=1e-3)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


def test_cli_prints_the_table_and_json_rows():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "server.cli", "bench", "--policy", "connect4", "--batches", "1,16",
                        "--seconds", "0.01", "--games", "40", "--no-compile", "--json"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    figures = json.loads(p.stdout.strip().splitlines()[-1])
    assert {r["batch"] for r in figures["rows"]} == {1, 16}
    assert set(figures["quality"]) == set(available("cpu")) - {"fp32"}
    assert all(0 <= v <= 1 for v in figures["quality"].values())
    assert "decisions/s" in p.stdout and "95% CI" in p.stdout
    bad = subprocess.run([sys.executable, "-m", "server.cli", "bench", "--policy", "connect4", "--ckpt", "nowhere",
                          "--games", "0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "nowhere" in bad.stderr and "Traceback" not in bad.stderr
