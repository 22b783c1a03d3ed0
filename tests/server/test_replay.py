"""Recordings: 100 matches of each arena replay exactly; files are validated; forfeits keep their outcome."""
import json
import zipfile

import numpy as np
import pytest

import arenas
from agents import make_agent
from server.play.match import MatchRunner
from server.spectator.replay import ReplayError, Recorder, load, new_game, replay, verify

SMALL_BATTLE = dict(team_size=4, map_size=16, max_steps=80)


def _record(arena, slots, games=None, seed=5, auto_reset=True, names=("greedy", "random"), agents=None, **options):
    game = arenas.get(arena).game(num_matches=slots, auto_reset=auto_reset, **options)
    runner = MatchRunner(game, agents or [make_agent(n, game) for n in names], list(names))
    runner.reset(seed)
    rec = Recorder(runner, seed=seed)
    runner.play(games=games, on_step=rec.on_step)
    return runner, rec


@pytest.mark.parametrize("arena, options", [("connect4", {}), ("battle", {}), ("battle", SMALL_BATTLE), ("tag", {}),
                                             ("tag", {"continuous_actions": True})])
def test_100_recorded_matches_replay_exactly(arena, options, tmp_path):
    # 40 slots for 100 games: most slots play several matches, so restarts inside a run are recorded too
    runner, rec = _record(arena, 40, games=100, **options)
    path = rec.save(tmp_path / "run.npz")
    recording = load(path)
    assert len(recording) == 100 == runner.games
    assert sorted((m.slot, m.winner, m.length) for m in recording) == sorted(runner.outcomes), \
        "the recording holds exactly the games the results table counted"
    assert recording.agents == ["greedy", "random"] and recording.options == runner.game.options
    assert verify(recording) == []
    winners = {m.winner for m in recording}
    assert len(winners) > 1 or arena == "connect4", "a varied sample of outcomes"
    if arena == "battle":
        assert any(m.stats.sum() > 0 for m in recording), "kills and survivors are recorded and compared"
    if options.get("continuous_actions"):           # float actions, kept exactly (float32, (T, A, 5))
        m = recording.match(0)
        assert m.actions.dtype == np.float32 and m.actions.shape[1:] == (runner.game.num_agents, 5)
        assert recording.header["action_shape"] == [5]


@pytest.mark.parametrize("arena, options", [("connect4", {}), ("battle", SMALL_BATTLE), ("battle", {})])
def test_replayed_final_positions_equal_the_live_ones(arena, options):
    # without auto-reset every slot keeps its final position: the replay must end in exactly that state
    runner, rec = _record(arena, 100, auto_reset=False, **options)
    recording = rec.recording()
    assert len(recording) == 100
    game = new_game(recording.arena, recording.options)
    for m in recording:
        got = replay(m, game)
        assert (got.winner, got.length) == (m.winner, m.length)
        live = runner.game.snapshot(m.slot)
        for key, value in live.items():
            assert np.array_equal(got.final[key], value), f"{key} differs in slot {m.slot}"


def test_replay_shows_every_position():
    _, rec = _record("connect4", 4, games=4)
    m = rec.recording().match(0)
    steps = []
    replay(m, on_frame=lambda snap, t: steps.append((t, snap["step"], int((snap["board"] != 0).sum()))))
    assert [s[0] for s in steps] == list(range(m.length + 1))
    assert steps[0][2] == 0 and steps[-1][2] == m.length, "one piece per move, from the empty board"


class _Cheater:
    """Plays column 0 until it is full, then keeps playing it: an illegal (masked) move, a forfeit."""

    def reset(self, seed=None):
        pass

    def act(self, obs, mask):
        return np.zeros(len(mask), dtype=np.int64)


def test_forfeits_are_flagged_and_keep_their_recorded_outcome():
    game = arenas.make("connect4", num_matches=16)
    runner, rec = _record("connect4", 16, games=40, names=("cheater", "random"),
                          agents=[_Cheater(), make_agent("random", game)])
    recording = rec.recording()
    forfeits = [m for m in recording if m.forfeit]
    assert forfeits, "the cheater forfeited some matches"
    assert sum(v for v in runner.forfeit_log.values()) >= len(forfeits)
    for m in forfeits:
        cheater_team = list(m.agents).index("cheater")
        assert m.winner == 1 - cheater_team, "a forfeit is a loss for the one who forfeits"
    assert verify(recording) == []


def test_a_recorder_attached_mid_run_records_only_matches_it_saw_start():
    game = arenas.make("connect4", num_matches=8)
    runner = MatchRunner(game, [make_agent("random", game), make_agent("random", game)], ["a", "b"])
    runner.reset(1)
    runner.play(steps=3)
    rec = Recorder(runner, seed=1)
    runner.play(games=runner.games + 30, on_step=rec.on_step)
    recording = rec.recording()
    assert 0 < len(recording) <= 30
    assert verify(recording) == []


# -- files ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    _, rec = _record("connect4", 8, games=10)
    return rec.save(tmp_path_factory.mktemp("rec") / "c4.npz")


def _rewrite(src, dst, **changes):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    np.savez(dst, **arrays)
    return dst


def _header(**fields):
    with_fields = {"format": "arena-replay", "version": 1, "arena": "connect4", "options": {}, "agents": ["a", "b"],
                   "num_agents": 2, "num_teams": 2, "num_actions": 7, "stat_names": []}
    with_fields.update(fields)
    return np.frombuffer(json.dumps(with_fields).encode(), dtype=np.uint8)


@pytest.mark.parametrize("make, needle", [
    (lambda p, src: (p.write_text("hello"), p)[1], "not a valid arena recording"),
    (lambda p, src: np.save(p.with_suffix(".npy"), np.zeros(3)) or p.with_suffix(".npy"), "single .npy array"),
    (lambda p, src: _rewrite(src, p, offsets=None), "arrays missing ['offsets']"),
    (lambda p, src: _rewrite(src, p, header=_header(format="mp4")), "header format"),
    (lambda p, src: _rewrite(src, p, header=_header(version=99)), "format version 99"),
    (lambda p, src: _rewrite(src, p, header=np.frombuffer(b"{not json", np.uint8)), "not JSON"),
    (lambda p, src: _rewrite(src, p, winner=np.zeros(3, np.float64)), "array 'winner'"),
    (lambda p, src: _rewrite(src, p, offsets=np.arange(11, dtype=np.int64) * 1000), "offsets do not index"),
    (lambda p, src: _rewrite(src, p, team_agent=np.full((10, 2), 7, np.int16)), "names an agent"),
    (lambda p, src: _rewrite(src, p, slot=np.array([{"x": 1}] * 10, dtype=object)), "not a valid arena recording"),
])
def test_bad_files_are_one_clear_error(tmp_path, saved, make, needle):
    path = make(tmp_path / "bad.npz", saved)
    with pytest.raises(ReplayError) as err:
        load(path)
    assert needle in str(err.value) and str(path) in str(err.value)


def test_files_hold_no_pickles_and_a_readable_header(saved):
    with zipfile.ZipFile(saved) as z:
        names = sorted(z.namelist())
    assert names == sorted(f"{k}.npy" for k in ("header", "actions", "offsets", "match_rng", "slot", "team_agent",
                                                 "winner", "length", "forfeit", "stats"))
    with np.load(saved, allow_pickle=False) as z:
        header = json.loads(z["header"].tobytes())
        assert z["actions"].dtype == np.int8
    assert header["arena"] == "connect4" and header["seed"] == 5 and header["agents"] == ["greedy", "random"]
