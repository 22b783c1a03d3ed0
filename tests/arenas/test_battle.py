"""Battle: the BatchedGame contract, the rules, the kernels against the plain-Python reference."""
from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import arenas
from arenas.battle import SPEC, Battle
from arenas.battle.game import wall_pattern
from arenas.battle.reference import RefMatch, SplitMix
from simcore import check_arena, seed_states

SMALL = dict(team_size=2, map_size=12, view=5, obs_dtype="float32")


# -- helpers --------------------------------------------------------------------------------------
def place(game: Battle, m: int, pos, hp) -> None:
    """Put match ``m`` in a chosen state (live agents where ``hp > 0``); obs follow after the next step."""
    p = game.pad
    game.grid[m] = game.wall_grid
    game.pos[m] = pos
    game.hp[m] = hp
    for i in range(game.num_agents):
        if hp[i] > 0:
            assert game.grid[m, pos[i][0] + p, pos[i][1] + p] == 0, "place(): cell taken or wall"
            game.grid[m, pos[i][0] + p, pos[i][1] + p] = 2 + i


def scramble(game: Battle, refs: list[RefMatch], rng: np.random.Generator) -> None:
    """Random state: live agents to random free cells of a small random area (so that they fight), with
    random hp, in the game and in the reference."""
    s, max_hp, a = game.map_size, game.options["max_hp"], game.num_agents
    side = int(np.ceil(np.sqrt(2 * a))) + 1
    for m, ref in enumerate(refs):
        if game.finished[m]:
            continue
        r0, c0 = rng.integers(0, s - side + 1, size=2)
        free = [(r, c) for r in range(r0, r0 + side) for c in range(c0, c0 + side) if not game.walls[r, c]]
        if len(free) < a:
            free = [(r, c) for r in range(s) for c in range(s) if not game.walls[r, c]]
        cells = rng.choice(len(free), size=a, replace=False)
        pos = game.pos[m].copy()
        hp = game.hp[m].copy()
        for i in range(a):
            if hp[i] > 0:
                pos[i] = free[cells[i]]
                hp[i] = rng.integers(1, max_hp + 1)
        place(game, m, pos, hp)
        ref.pos = pos.tolist()
        ref.hp = hp.tolist()


def random_actions(rng: np.random.Generator, shape) -> np.ndarray:
    """Moves and attacks, attack-heavy, with a few out-of-range values (treated as stay)."""
    act = rng.integers(0, 9, size=shape)
    act = np.where(rng.random(shape) < 0.4, rng.integers(5, 9, size=shape), act)
    act = np.where(rng.random(shape) < 0.03, rng.choice([-3, 9, 100], size=shape), act)
    return act


def assert_matches_reference(game: Battle, refs: list[RefMatch], where: str) -> None:
    float_obs = game.obs.dtype == np.float32
    for m, ref in enumerate(refs):
        at = f"{where}, match {m}"
        np.testing.assert_array_equal(game.pos[m], ref.pos, err_msg=f"pos {at}")
        np.testing.assert_array_equal(game.hp[m], ref.hp, err_msg=f"hp {at}")
        np.testing.assert_array_equal(game.last_attack[m], ref.last_attack, err_msg=f"last_attack {at}")
        assert game.step_count[m] == ref.step_count, f"step_count {at}"
        assert int(game.rng_states[m]) == ref.rng.state, f"rng state {at}"
        np.testing.assert_array_equal(game.active[m], ref.active(), err_msg=f"active {at}")
        np.testing.assert_array_equal(game.action_mask[m], ref.action_mask(), err_msg=f"action_mask {at}")
        if float_obs:
            np.testing.assert_allclose(game.obs[m], ref.observations(), rtol=1e-6, err_msg=f"obs {at}")
        else:
            np.testing.assert_array_equal(game.obs[m], ref.observations(), err_msg=f"obs {at}")
        if ref.rewards:  # after a step
            np.testing.assert_allclose(game.rewards[m], ref.rewards, rtol=1e-6, atol=1e-7, err_msg=f"rewards {at}")
            np.testing.assert_array_equal(game.terminations[m], ref.terminations, err_msg=f"terminations {at}")
            np.testing.assert_array_equal(game.truncations[m], ref.truncations, err_msg=f"truncations {at}")
            assert game.episode_done[m] == ref.episode_done, f"episode_done {at}"
            if ref.episode_done:
                assert game.episode_winner[m] == ref.winner, f"winner {at}"
                assert game.episode_length[m] == ref.length, f"length {at}"
                np.testing.assert_array_equal(game.episode_stats[m], ref.stats, err_msg=f"stats {at}")


# -- the contract ---------------------------------------------------------------------------------
def test_check_arena_default():
    check_arena(Battle(num_matches=32))


def test_check_arena_small_float32():
    check_arena(Battle(num_matches=32, **SMALL))


def test_registry_and_spec():
    game = arenas.make("battle", num_matches=3, seed=1, team_size=4)
    assert isinstance(game, Battle) and game.num_agents == 8
    assert SPEC.name == Battle.name == "battle"
    assert SPEC.defaults["team_size"] == 8 and SPEC.pettingzoo is not None
    assert Battle.stat_names == ("kills", "survivors")


def test_spaces_and_seats():
    game = Battle(num_matches=2)
    assert game.num_agents == 16 and game.num_teams == 2 and game.num_actions == 9
    np.testing.assert_array_equal(game.seat_team, [0] * 8 + [1] * 8)
    space = game.single_observation_space
    assert space.shape == (7, 7, 4) and space.dtype == np.uint8
    assert space.high[..., :3].max() == 1 and space.high[0, 0, 3] == 10
    fgame = Battle(num_matches=2, view=9, obs_dtype="float32", max_hp=20)
    assert fgame.obs.shape == (2, 16, 9, 9, 4) and fgame.obs.dtype == np.float32
    assert fgame.single_observation_space.high.max() == 1.0


@pytest.mark.parametrize("bad", [
    dict(team_size=0), dict(team_size=65), dict(map_size=7), dict(map_size=257), dict(view=4),
    dict(view=17), dict(view=1), dict(obs_dtype="int16"), dict(max_hp=0), dict(max_hp=256), dict(damage=0),
    dict(max_steps=0), dict(timeout_winner="red"), dict(walls="yes"), dict(kill_reward=float("nan")),
    dict(map_size=8, team_size=9), dict(colour="red"),
])
def test_bad_options_name_the_option(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name if name != "colour" else "unknown"):
        Battle(num_matches=1, **bad)


def test_walls_are_fixed_mirrored_and_clear_of_spawns():
    for s in (8, 12, 32, 33, 64):
        w = wall_pattern(s)
        assert w.any()
        np.testing.assert_array_equal(w, w[:, ::-1])  # left/right mirror
        assert not w[:, :s // 4].any() and not w[:, s - s // 4:].any()
    assert not wall_pattern(32, walls=False).any()
    np.testing.assert_array_equal(Battle(num_matches=1).snapshot(0)["walls"], wall_pattern(32))


def test_spawns_quarters_mirrored_distinct_and_seeded():
    game = Battle(num_matches=64, team_size=16)
    game.reset(seed=5)
    s, k = game.map_size, game.team_size
    for m in range(game.num_matches):
        pos = game.pos[m]
        red, blue = pos[:k], pos[k:]
        assert (red[:, 1] < s // 4).all() and (blue[:, 1] >= s - s // 4).all()
        np.testing.assert_array_equal(blue[:, 0], red[:, 0])
        np.testing.assert_array_equal(blue[:, 1], s - 1 - red[:, 1])
        assert len({tuple(p) for p in pos}) == 2 * k
        assert not game.walls[pos[:, 0], pos[:, 1]].any()
    first = game.pos.copy()
    assert not (first[0] == first[1]).all(), "matches must draw their own spawns"
    game.reset(seed=5)
    np.testing.assert_array_equal(game.pos, first)
    game.reset(seed=6)
    assert not np.array_equal(game.pos, first)


def test_snapshot_is_a_copy_with_the_documented_keys():
    game = Battle(num_matches=2, team_size=3)
    snap = game.snapshot(1)
    assert set(snap) == {"pos", "hp", "alive", "team", "walls", "last_attack", "step"}
    assert snap["pos"].shape == (6, 2) and snap["walls"].shape == (32, 32) and snap["walls"].dtype == bool
    assert snap["alive"].all() and (snap["hp"] == 10).all() and (snap["last_attack"] == -1).all()
    assert snap["step"] == 0
    snap["hp"][:] = 0
    assert (game.hp[1] == 10).all()


# -- the rules on hand-made positions -------------------------------------------------------------
def test_attack_damage_kill_rewards_and_death():
    game = Battle(num_matches=1, team_size=2, map_size=12, walls=False, max_hp=3, damage=2,
                  damage_reward=0.5, kill_reward=10.0)
    # red 0 at (5,5), red 1 at (4,6); blue 2 at (5,6) (right of red 0, below red 1); blue 3 far away
    place(game, 0, [(5, 5), (4, 6), (5, 6), (0, 11)], [3, 3, 3, 3])
    # red 0 attacks right, red 1 attacks down: 4 damage on a 3-hp blue -> dies; blue 2 attacks left
    game.step(np.array([[8, 6, 7, 0]]))
    np.testing.assert_array_equal(game.hp[0], [1, 3, 0, 3])
    # each hit counts min(damage, hp at start) = 2 hp -> 1.0, plus the kill bonus; blue 2 hit red 0 for 2
    np.testing.assert_allclose(game.rewards[0], [11.0, 11.0, 1.0, 0.0])
    np.testing.assert_array_equal(game.terminations[0], [False, False, True, False])
    assert not game.active[0, 2] and game.action_mask[0, 2].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert game.obs[0, 2].max() == 0, "a dead agent sees zeros"
    assert game.grid[0, 5 + game.pad, 6 + game.pad] == 0, "the dead agent leaves the grid"
    np.testing.assert_array_equal(game.last_attack[0], [3, 1, 2, -1])
    # a dead agent's action is ignored and it earns nothing; an attack on an ally does nothing
    game.step(np.array([[4, 0, 7, 0]]))  # red 0 moves right into the freed cell, below red 1
    np.testing.assert_array_equal(game.pos[0, :2], [(5, 6), (4, 6)])
    assert game.rewards[0].sum() == 0 and not game.terminations[0].any()
    game.step(np.array([[5, 6, 0, 0]]))  # red 0 and red 1 attack each other: no friendly fire
    np.testing.assert_array_equal(game.hp[0], [1, 3, 0, 3])
    assert game.rewards[0].sum() == 0


def test_obs_channels_uint8_and_float32():
    for dtype in ("uint8", "float32"):
        game = Battle(num_matches=1, team_size=2, map_size=8, view=5, walls=False, max_hp=4, obs_dtype=dtype)
        place(game, 0, [(0, 0), (1, 0), (0, 2), (7, 7)], [4, 3, 2, 1])
        game.step(np.zeros((1, 4), dtype=np.int64))
        o = game.obs[0, 0]  # red 0 in the top-left corner: window rows/cols -2..2
        assert o[:2, :, 0].all() and o[:, :2, 0].all() and not o[2:, 2:, 0].any()
        assert o[2, 2, 1] == 1 and o[3, 2, 1] == 1 and o[2, 4, 2] == 1 and o[2, 4, 1] == 0
        scale = 1 if dtype == "uint8" else 1 / 4
        np.testing.assert_allclose([o[2, 2, 3], o[3, 2, 3], o[2, 4, 3]], np.array([4, 3, 2]) * scale)
        b = game.obs[0, 2]  # blue 2 at (0,2): red agents are its enemies, itself its ally
        assert b[2, 2, 1] == 1 and b[2, 0, 2] == 1 and b[3, 0, 2] == 1 and b[2, 0, 1] == 0
        assert game.obs.dtype == np.dtype(dtype)


def test_moves_fail_into_walls_and_agents_and_rotate_order():
    game = Battle(num_matches=1, team_size=1, map_size=8, walls=False)
    place(game, 0, [(0, 0), (0, 1)], [10, 10])
    game.step(np.array([[1, 3]]))  # red tries off the map, blue tries into red
    np.testing.assert_array_equal(game.pos[0], [(0, 0), (0, 1)])
    # both move into the same cell: whoever moves first (random start seat) takes it
    firsts = set()
    for seed in range(40):
        game.reset(seed=seed)
        place(game, 0, [(3, 3), (3, 5)], [10, 10])
        game.step(np.array([[4, 3]]))
        firsts.add(0 if tuple(game.pos[0, 0]) == (3, 4) else 1)
        assert sorted(map(tuple, game.pos[0])) in ([(3, 3), (3, 4)], [(3, 4), (3, 5)])
    assert firsts == {0, 1}
    # a cell vacated earlier in the step can be entered: a chain of moves
    game.reset(seed=0)
    place(game, 0, [(3, 3), (3, 4)], [10, 10])
    entered = False
    for _ in range(30):
        place(game, 0, [(3, 3), (3, 4)], [10, 10])
        game.step(np.array([[4, 4]]))
        entered |= tuple(game.pos[0, 0]) == (3, 4)
    assert entered


def test_wipeout_draw_and_timeout_winner():
    game = Battle(num_matches=1, team_size=1, map_size=8, walls=False, max_hp=2, damage=2)
    place(game, 0, [(3, 3), (3, 4)], [2, 2])
    game.step(np.array([[8, 7]]))  # both die in the same step: draw
    assert game.episode_done[0] and game.episode_winner[0] == -1 and game.episode_length[0] == 1
    assert game.terminations[0].all() and not game.truncations[0].any()
    np.testing.assert_array_equal(game.episode_stats[0], [[1, 0], [1, 0]])
    assert game.step_count[0] == 0 and game.active[0].all(), "auto-reset"

    for rule, winner in (("survivors", 0), ("draw", -1)):
        game = Battle(num_matches=1, team_size=2, map_size=8, walls=False, max_steps=3, max_hp=2,
                      timeout_winner=rule)
        place(game, 0, [(0, 0), (3, 3), (3, 4), (7, 7)], [2, 2, 2, 2])
        game.step(np.array([[0, 8, 0, 0]]))  # red 1 kills blue 2
        assert game.terminations[0].tolist() == [False, False, True, False] and not game.episode_done[0]
        game.step(np.zeros((1, 4), dtype=np.int64))
        game.step(np.zeros((1, 4), dtype=np.int64))
        assert game.episode_done[0] and game.truncations[0].all() and game.episode_length[0] == 3
        assert game.episode_winner[0] == winner
        np.testing.assert_array_equal(game.episode_stats[0], [[1, 2], [0, 1]])


def test_no_auto_reset_keeps_the_final_state():
    game = Battle(num_matches=2, auto_reset=False, team_size=1, map_size=8, walls=False, max_hp=2)
    place(game, 0, [(3, 3), (3, 4)], [2, 2])
    game.step(np.array([[8, 0], [0, 0]]))
    assert game.episode_done[0] and game.episode_winner[0] == 0 and not game.episode_done[1]
    final_obs, final_pos = game.obs[0].copy(), game.pos[0].copy()
    assert not game.active[0].any() and game.step_count[0] == 1
    assert game.obs[0, 0, 3, 3, 1] == 1 and game.obs[0, 1].max() == 0
    for _ in range(3):
        game.step(np.array([[4, 4], [4, 4]]))
        assert not game.episode_done[0] and game.rewards[0].sum() == 0
        assert not game.terminations[0].any() and not game.truncations[0].any()
        np.testing.assert_array_equal(game.obs[0], final_obs)
        np.testing.assert_array_equal(game.pos[0], final_pos)
    assert game.step_count[1] == 4
    game.reset(seed=1)
    assert game.active.all() and (game.step_count == 0).all()


def test_auto_reset_same_step():
    game = Battle(num_matches=4, team_size=1, map_size=8, walls=False, max_steps=5)
    rng = np.random.default_rng(0)
    for step in range(1, 16):
        game.step(rng.integers(0, 5, size=(4, 2)))  # moves only: every match times out
        if step % 5 == 0:
            assert game.episode_done.all() and (game.episode_length == 5).all()
            assert game.truncations.all() and (game.step_count == 0).all() and game.active.all()
            assert (game.hp == 10).all() and (game.pos[:, 0, 1] < 2).all() and (game.pos[:, 1, 1] >= 6).all()
        else:
            assert not game.episode_done.any() and (game.step_count == step % 5).all()


# -- kernels against the reference ----------------------------------------------------------------
OPTION_SETS = [
    dict(team_size=3, map_size=8, view=3, max_hp=4, max_steps=40),
    dict(team_size=2, map_size=12, view=5, obs_dtype="float32", max_hp=6, damage=3, damage_reward=0.25,
         kill_reward=2.0, max_steps=30, timeout_winner="draw"),
    dict(team_size=4, map_size=16, walls=False, view=7, max_hp=5, max_steps=25),
    dict(team_size=8, map_size=32, max_steps=20),
]


@pytest.mark.parametrize("auto_reset", [True, False])
@pytest.mark.parametrize("options", OPTION_SETS)
def test_kernel_matches_reference(options, auto_reset):
    n = 4
    kills = episodes = 0
    for seed in (0, 17):
        game = Battle(num_matches=n, auto_reset=auto_reset, **options)
        game.reset(seed=seed)
        refs = [RefMatch(options=dict(options), rng=SplitMix(s), auto_reset=auto_reset)
                for s in seed_states(seed, n)]
        for ref in refs:
            ref.reset()
        assert_matches_reference(game, refs, f"seed {seed}, after reset")
        rng = np.random.default_rng(seed)
        for step in range(60):
            if step % 7 == 3:
                scramble(game, refs, rng)
            actions = random_actions(rng, (n, game.num_agents))
            game.step(actions)
            for m, ref in enumerate(refs):
                ref.step(actions[m])
            assert_matches_reference(game, refs, f"seed {seed}, step {step}")
            kills += int((game.terminations & ~game.episode_done[:, None]).sum())
            episodes += int(game.episode_done.sum())
    assert kills > 0 and episodes > 0, (kills, episodes, "the random states should include kills and finished matches")


def test_same_results_at_one_and_two_threads():
    def trace(threads: int):
        numba.set_num_threads(threads)
        try:
            game = Battle(num_matches=64, team_size=4, map_size=12, max_steps=30)
            game.reset(seed=3)
            rng = np.random.default_rng(3)
            out = []
            for _ in range(70):
                game.step(random_actions(rng, (64, 8)))
                out.append((game.obs.copy(), game.rewards.copy(), game.episode_winner.copy() * game.episode_done))
            return out
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)

    one = trace(1)
    two = trace(min(2, numba.config.NUMBA_NUM_THREADS))
    for a, b in zip(one, two):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


# -- properties -----------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1),
       options=st.sampled_from(OPTION_SETS[:3]),
       actions=hnp.arrays(np.int64, (45, 3, 8), elements=st.integers(0, 8)))
def test_invariants_under_random_play(seed, options, actions):
    game = Battle(num_matches=3, auto_reset=False, **options)
    game.reset(seed=seed)
    a, k, s = game.num_agents, game.team_size, game.map_size
    outcomes = np.zeros(3, dtype=int)
    for step in range(actions.shape[0]):
        game.step(actions[step, :, :a])
        for m in range(3):
            snap = game.snapshot(m)
            live = snap["alive"]
            pos = snap["pos"][live]
            assert ((pos >= 0) & (pos < s)).all()
            assert not snap["walls"][pos[:, 0], pos[:, 1]].any()
            assert len({tuple(p) for p in pos}) == len(pos), "two live agents on one cell"
            assert (snap["hp"] >= 0).all() and (snap["hp"] <= game.options["max_hp"]).all()
            assert (game.grid[m] >= 2).sum() == live.sum()
            if game.episode_done[m]:
                outcomes[m] += 1
                terms, truncs = game.terminations[m], game.truncations[m]
                assert terms.all() != truncs.all(), "exactly one way to end"
                alive = [int(live[:k].sum()), int(live[k:].sum())]
                np.testing.assert_array_equal(game.episode_stats[m, :, 1], alive)
                np.testing.assert_array_equal(game.episode_stats[m, :, 0], [k - alive[1], k - alive[0]])
                w = game.episode_winner[m]
                if terms.all():
                    assert min(alive) == 0
                    assert w == (-1 if max(alive) == 0 else int(alive[1] > 0))
                else:
                    assert game.step_count[m] == game.options["max_steps"]
                    if game.options["timeout_winner"] == "draw" or alive[0] == alive[1]:
                        assert w == -1
                    else:
                        assert w == int(alive[1] > alive[0])
    assert (outcomes <= 1).all()
    assert (outcomes == 1).all() == game.finished.all()
