"""Tag: the BatchedGame contract (per-team observations, continuous actions), the rules on hand-made
states, and the kernels against the plain-Python reference."""
from __future__ import annotations

import math

import gymnasium
import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arenas
from arenas.tag import SPEC, Tag
from arenas.tag.game import obs_sizes
from arenas.tag.reference import RefMatch, bound
from simcore import check_arena, seed_states

RIGHT, LEFT, UP, DOWN = 2, 1, 4, 3


def far_apart(game: Tag, m: int = 0) -> None:
    """Agents on a wide ring, landmarks far away: no contact force reaches anyone."""
    a = game.num_agents
    angle = np.arange(a) * 2 * np.pi / a
    landmarks = np.array([[5.0 + 2 * j, 5.0] for j in range(game.num_obstacles)])
    game.set_state(m, 0.8 * np.stack([np.cos(angle), np.sin(angle)], axis=1), None, landmarks)


# -- the contract ---------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [
    dict(), dict(continuous_actions=True),
    dict(num_good=2, num_adversaries=2, num_obstacles=0, max_cycles=10),
    dict(num_good=3, num_adversaries=1, num_obstacles=4, max_cycles=7, continuous_actions=True),
])
def test_check_arena(options):
    check_arena(Tag(num_matches=24, **options), steps=120)


def test_registry_and_spec():
    assert "tag" in arenas.names()
    game = arenas.make("tag", num_matches=3, seed=1, num_adversaries=2)
    assert isinstance(game, Tag) and game.num_agents == 3
    assert SPEC.name == Tag.name == "tag" and SPEC.pettingzoo is not None
    assert SPEC.defaults == {"num_good": 1, "num_adversaries": 3, "num_obstacles": 2, "max_cycles": 25,
                             "continuous_actions": False}
    assert Tag.stat_names == ("return", "touches")


def test_spaces_per_team_and_padding():
    game = Tag(num_matches=2)
    assert game.num_agents == 4 and game.num_teams == 2
    np.testing.assert_array_equal(game.seat_team, [0, 0, 0, 1])
    adv, good = game.team_observation_spaces
    assert adv.shape == (16,) and good.shape == (14,) and adv.dtype == good.dtype == np.float32
    assert game.single_observation_space.shape == (16,) and game.obs.shape == (2, 4, 16)
    assert game.team_obs_index(1) == (slice(0, 14),)
    assert (game.obs[:, 3, 14:] == 0).all() and (game.obs[:, 3, :14] != 0).any()
    assert obs_sizes(num_good=2, num_adversaries=4, num_obstacles=3) == (24, 22)
    # discrete: Discrete(5), (N, A) int64 actions
    assert game.single_action_space == gymnasium.spaces.Discrete(5) and not game.continuous_actions
    assert game.actions.shape == (2, 4) and game.actions.dtype == np.int64 and game.action_shape == ()
    assert (game.action_mask == 1).all() and game.action_mask.shape == (2, 4, 5)


def test_continuous_action_buffer():
    game = Tag(num_matches=3, continuous_actions=True)
    space = game.single_action_space
    assert isinstance(space, gymnasium.spaces.Box) and space.shape == (5,) and space.dtype == np.float32
    assert (space.low == 0).all() and (space.high == 1).all()
    assert game.continuous_actions and game.num_actions == 5 and game.action_shape == (5,)
    assert game.actions.shape == (3, 4, 5) and game.actions.dtype == np.float32
    assert "Box" in repr(game)


def test_existing_arenas_keep_one_observation_space():
    for name in ("battle", "connect4"):
        game = arenas.make(name, num_matches=2)
        assert game.team_observation_spaces == (game.single_observation_space,) * game.num_teams
        assert not game.continuous_actions and game.actions.shape == (2, game.num_agents)


@pytest.mark.parametrize("bad", [
    dict(num_good=0), dict(num_adversaries=0), dict(num_obstacles=-1), dict(max_cycles=0),
    dict(num_good=65), dict(continuous_actions="yes"), dict(num_good=1.5), dict(local_ratio=0.5),
])
def test_bad_options_name_the_option(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name if name != "local_ratio" else "unknown"):
        Tag(num_matches=1, **bad)
    with pytest.raises(ValueError, match="damping"):
        Tag(num_matches=1, damping=1.5)


def test_start_positions_seeded_in_mpe2_ranges():
    game = Tag(num_matches=256)
    game.reset(seed=3)
    a = game.num_agents
    agents, landmarks = game.pos[:, :a], game.pos[:, a:]
    assert (np.abs(agents) <= 1).all() and (np.abs(landmarks) <= 0.9).all()
    assert agents.min() < -0.95 and agents.max() > 0.95
    assert (game.vel == 0).all() and (game.step_count == 0).all()
    first = game.pos.copy()
    assert not np.array_equal(first[0], first[1]), "matches must draw their own starts"
    game.reset(seed=3)
    np.testing.assert_array_equal(game.pos, first)
    game.reset(seed=4)
    assert not np.array_equal(game.pos, first)


def test_snapshot_is_a_copy_with_the_documented_keys():
    game = Tag(num_matches=2, num_obstacles=3)
    snap = game.snapshot(1)
    assert set(snap) == {"pos", "vel", "landmarks", "size", "team", "step", "touches"}
    assert snap["pos"].shape == (4, 2) and snap["landmarks"].shape == (3, 2) and snap["size"].shape == (7,)
    np.testing.assert_allclose(snap["size"], [0.075] * 3 + [0.05] + [0.2] * 3)
    snap["pos"][:] = 99
    assert (np.abs(game.pos[1]) <= 1).all()
    with pytest.raises(IndexError):
        game.snapshot(2)


# -- the rules on hand-made states ----------------------------------------------------------------
def test_observation_layout():
    game = Tag(num_matches=1, num_good=2, num_adversaries=2, num_obstacles=1)
    pos = np.array([[0.1, 0.2], [0.3, -0.4], [-0.5, 0.6], [0.7, 0.8]])
    vel = np.array([[0.01, 0.02], [0.03, 0.04], [0.05, 0.06], [0.07, 0.08]])
    game.set_state(0, pos, vel, [[0.0, -0.9]])
    o = game.obs[0].astype(np.float64)
    lm = np.array([0.0, -0.9])
    # adversary 0: own vel, own pos, landmark - own, others - own (seats 1, 2, 3), good velocities (2, 3)
    expect0 = np.concatenate([vel[0], pos[0], lm - pos[0], pos[1] - pos[0], pos[2] - pos[0], pos[3] - pos[0],
                              vel[2], vel[3]]).astype(np.float32)
    np.testing.assert_array_equal(game.obs[0, 0], expect0)
    # good agent 2: the other good agent's velocity only; the row padded with 2 zeros
    expect2 = np.concatenate([vel[2], pos[2], lm - pos[2], pos[0] - pos[2], pos[1] - pos[2], pos[3] - pos[2],
                              vel[3]]).astype(np.float32)
    np.testing.assert_array_equal(game.obs[0, 2, :14], expect2)
    assert (o[2, 14:] == 0).all() and (o[3, 14:] == 0).all()


def test_discrete_moves_integrate_the_old_velocity_then_damp():
    game = Tag(num_matches=1, num_obstacles=0)
    far_apart(game)
    start = game.pos[0, :4].copy()
    game.step(np.array([[RIGHT, LEFT, UP, DOWN]]))
    # step 1: positions move with the old (zero) velocity; velocity = force * dt = accel * 0.1
    np.testing.assert_array_equal(game.pos[0, :4], start)
    np.testing.assert_allclose(game.vel[0], [[0.3, 0], [-0.3, 0], [0, 0.3], [0, -0.4]], atol=1e-15)
    game.step(np.array([[0, 0, 0, 0]]))
    np.testing.assert_allclose(game.pos[0, :4] - start, [[0.03, 0], [-0.03, 0], [0, 0.03], [0, -0.04]], atol=1e-15)
    np.testing.assert_allclose(game.vel[0, 3], [0, -0.3], atol=1e-15)   # * (1 - 0.25)


def test_speed_is_capped_per_side():
    game = Tag(num_matches=1, num_obstacles=0, max_cycles=100)
    far_apart(game)
    for _ in range(20):
        game.step(np.array([[RIGHT, RIGHT, RIGHT, RIGHT]]))
    speed = np.linalg.norm(game.vel[0], axis=1)
    np.testing.assert_allclose(speed, [1.0, 1.0, 1.0, 1.3])


def test_continuous_actions_clipped_and_scaled():
    game = Tag(num_matches=1, num_obstacles=0, continuous_actions=True)
    far_apart(game)
    act = np.zeros((1, 4, 5), np.float32)
    act[0, 0] = [0.9, 0.2, 0.7, 0.0, 0.25]        # x: 0.5, y: 0.25 (component 0 unused)
    act[0, 1] = [0.0, 0.0, 3.0, -2.0, 0.5]        # clipped: x 1, y 0.5
    act[0, 2] = [0.0, np.nan, 0.5, 0.0, 0.0]      # NaN counts as 0: x 0.5
    act[0, 3] = [0.0, 0.3, 0.1, 0.0, 1.0]         # x: float32(0.1 - 0.3), y 1
    game.step(act)
    dx3 = float(np.float32(0.1) - np.float32(0.3))
    np.testing.assert_allclose(game.vel[0], [[0.15, 0.075], [0.3, 0.15], [0.15, 0], [dx3 * 0.4, 0.4]], rtol=1e-12)
    assert game.vel[0, 3, 0] == dx3 * 4.0 * 0.1


def test_out_of_range_discrete_action_is_no_action():
    game = Tag(num_matches=1, num_obstacles=0)
    far_apart(game)
    game.step(np.array([[-1, 5, 99, 0]]))
    assert (game.vel[0] == 0).all()


def test_touch_rewards_and_winner():
    game = Tag(num_matches=1, num_obstacles=0, max_cycles=3)
    # adversary 0 sits on the good agent; adversaries 1 and 2 far away
    game.set_state(0, [[0.0, 0.0], [0.5, 0.5], [-0.5, 0.5], [0.1, 0.0]])
    game.step(np.zeros((1, 4), np.int64))
    assert game.rewards[0].tolist() == [10.0, 10.0, 10.0, -10.0], "the adversaries share the reward"
    # two adversaries on it: +20 each, -20 for the good agent
    game.set_state(0, [[0.0, 0.0], [0.15, 0.05], [-0.5, 0.5], [0.1, 0.0]])
    game.step(np.zeros((1, 4), np.int64))
    assert game.rewards[0].tolist() == [20.0, 20.0, 20.0, -20.0]
    game.set_state(0, [[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.0, 0.0]])
    game.step(np.zeros((1, 4), np.int64))
    assert game.rewards[0].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert game.episode_done[0] and game.truncations[0].all() and not game.terminations[0].any()
    assert game.episode_winner[0] == 0 and game.episode_length[0] == 3
    np.testing.assert_allclose(game.episode_stats[0], [[30.0, 3], [-30.0, 3]])


def test_no_touch_good_agents_win_and_bound_penalty():
    game = Tag(num_matches=1, num_obstacles=0, max_cycles=1)
    game.set_state(0, [[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.95, 1.2]])
    game.step(np.zeros((1, 4), np.int64))
    penalty = (0.95 - 0.9) * 10 + math.exp(2 * 1.2 - 2)
    assert game.rewards[0, 3] == pytest.approx(-penalty, rel=1e-6)
    assert game.episode_winner[0] == 1 and game.episode_stats[0, 0, 1] == 0
    assert game.episode_stats[0, 1, 0] == pytest.approx(-penalty, rel=1e-6)
    assert bound(0.5) == 0 and bound(0.95) == pytest.approx(0.5) and bound(3.0) == 10


def test_contact_force_pushes_apart_and_landmarks_stay():
    game = Tag(num_matches=1, num_obstacles=1)
    game.set_state(0, [[0.0, 0.0], [0.9, 0.9], [-0.9, 0.9], [0.9, -0.9]], None, [[0.2, 0.0]])
    game.step(np.zeros((1, 4), np.int64))   # adversary 0 overlaps the landmark (0.075 + 0.2 > 0.2)
    assert game.vel[0, 0, 0] < -1e-3 and abs(game.vel[0, 0, 1]) < 1e-12
    np.testing.assert_array_equal(game.pos[0, 4], [0.2, 0.0])


def test_auto_reset_same_step_and_no_auto_reset():
    game = Tag(num_matches=4, max_cycles=5)
    rng = np.random.default_rng(0)
    for step in range(1, 16):
        game.step(rng.integers(0, 5, size=(4, 4)))
        if step % 5 == 0:
            assert game.episode_done.all() and (game.episode_length == 5).all() and game.truncations.all()
            assert (game.step_count == 0).all() and (game.vel == 0).all() and game.active.all()
        else:
            assert not game.episode_done.any() and (game.step_count == step % 5).all()
    frozen = Tag(num_matches=2, auto_reset=False, max_cycles=2)
    frozen.step(np.ones((2, 4), np.int64))
    frozen.step(np.ones((2, 4), np.int64))
    assert frozen.episode_done.all() and not frozen.active.any()
    final = frozen.obs.copy(), frozen.pos.copy()
    frozen.step(np.full((2, 4), 2))
    assert not frozen.episode_done.any() and not frozen.truncations.any() and (frozen.rewards == 0).all()
    np.testing.assert_array_equal(frozen.obs, final[0])
    np.testing.assert_array_equal(frozen.pos, final[1])
    frozen.reset(seed=1)
    assert frozen.active.all() and (frozen.step_count == 0).all()


def test_reset_matches_replays_from_match_rng():
    game = Tag(num_matches=3)
    game.reset(seed=9)
    start, rng0 = game.pos.copy(), game.match_rng.copy()
    for _ in range(4):
        game.step(np.full((3, 4), 2))
    game.rng_states[1] = rng0[1]
    game.reset_matches([1])
    np.testing.assert_array_equal(game.pos[1], start[1])
    assert game.step_count[1] == 0 and game.step_count[0] == 4


# -- kernels against the reference ----------------------------------------------------------------
OPTION_SETS = [
    dict(max_cycles=12),
    dict(continuous_actions=True, max_cycles=9),
    dict(num_good=2, num_adversaries=2, num_obstacles=3, max_cycles=10),
    dict(num_good=3, num_adversaries=4, num_obstacles=0, max_cycles=8, continuous_actions=True),
]


def random_actions(game: Tag, rng: np.random.Generator) -> np.ndarray:
    """Actions with some out-of-range values (discrete: no action; continuous: clipped)."""
    if game.continuous_actions:
        return rng.uniform(-0.2, 1.2, size=game.actions.shape).astype(np.float32)
    return np.where(rng.random(game.actions.shape) < 0.05, 7, rng.integers(0, 5, size=game.actions.shape))


def crowd(game: Tag, refs: list[RefMatch], rng: np.random.Generator) -> None:
    """Random states packed into a small square, so that bodies touch and push, in both."""
    a = game.num_agents
    for m, ref in enumerate(refs):
        if ref.finished:
            continue
        pos = rng.uniform(-0.35, 0.35, size=(a, 2)) + rng.uniform(-1.0, 1.0, size=2)
        vel = rng.uniform(-0.5, 0.5, size=(a, 2))
        game.set_state(m, pos, vel)
        ref.pos, ref.vel = [p.copy() for p in pos], [v.copy() for v in vel]


def assert_matches_reference(game: Tag, refs: list[RefMatch], where: str) -> None:
    a = game.num_agents
    for m, ref in enumerate(refs):
        at = f"{where}, match {m}"
        np.testing.assert_allclose(game.pos[m, :a], ref.pos, rtol=1e-12, atol=1e-12, err_msg=f"pos {at}")
        np.testing.assert_allclose(game.vel[m], ref.vel, rtol=1e-12, atol=1e-12, err_msg=f"vel {at}")
        np.testing.assert_array_equal(game.pos[m, a:].reshape(-1, 2), np.reshape(ref.landmarks, (-1, 2)),
                                      err_msg=f"landmarks {at}")
        assert game.step_count[m] == ref.step_count and int(game.rng_states[m]) == ref.rng, f"step/rng {at}"
        np.testing.assert_array_equal(game.active[m], ref.active(), err_msg=f"active {at}")
        np.testing.assert_allclose(game.obs[m], ref.observations(), rtol=1e-6, atol=1e-7, err_msg=f"obs {at}")
        if ref.rewards:
            np.testing.assert_allclose(game.rewards[m], ref.rewards, rtol=1e-6, atol=1e-6, err_msg=f"rewards {at}")
            np.testing.assert_array_equal(game.truncations[m], ref.truncations, err_msg=f"truncations {at}")
            assert not game.terminations[m].any()
            assert game.episode_done[m] == ref.episode_done, f"episode_done {at}"
            if ref.episode_done:
                assert game.episode_winner[m] == ref.winner and game.episode_length[m] == ref.length, at
                np.testing.assert_allclose(game.episode_stats[m], ref.stats, rtol=1e-5, err_msg=f"stats {at}")


@pytest.mark.parametrize("auto_reset", [True, False])
@pytest.mark.parametrize("options", OPTION_SETS)
def test_kernel_matches_reference(options, auto_reset):
    n = 4
    touches = episodes = 0
    for seed in (0, 21):
        game = Tag(num_matches=n, auto_reset=auto_reset, **options)
        game.reset(seed=seed)
        refs = [RefMatch(options=dict(options), rng_state=int(s), auto_reset=auto_reset)
                for s in seed_states(seed, n)]
        for ref in refs:
            ref.reset()
        assert_matches_reference(game, refs, f"seed {seed}, after reset")
        rng = np.random.default_rng(seed)
        for step in range(30):
            if step % 4 == 1:
                crowd(game, refs, rng)
            actions = random_actions(game, rng)
            game.step(actions)
            for m, ref in enumerate(refs):
                ref.step(actions[m])
            assert_matches_reference(game, refs, f"seed {seed}, step {step}")
            touches += int((game.rewards[:, 0] > 0).sum())
            episodes += int(game.episode_done.sum())
    assert touches > 0 and episodes > 0, (touches, episodes, "the crowded states should include touches")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), options=st.sampled_from(OPTION_SETS),
       spread=st.floats(0.05, 2.0), speed=st.floats(0.0, 1.5))
def test_one_step_from_random_states_matches_reference(seed, options, spread, speed):
    """Any state (bodies overlapping or not, fast or at rest) and any actions: one step agrees."""
    rng = np.random.default_rng(seed)
    game = Tag(num_matches=1, **options)
    ref = RefMatch(options=dict(options), rng_state=0)
    ref.reset()
    a, nl = game.num_agents, game.num_obstacles
    pos = rng.uniform(-spread, spread, size=(a, 2))
    vel = rng.uniform(-speed, speed, size=(a, 2))
    landmarks = rng.uniform(-spread, spread, size=(nl, 2))
    game.set_state(0, pos, vel, landmarks)
    ref.pos, ref.vel, ref.landmarks = list(pos.copy()), list(vel.copy()), list(landmarks.copy())
    actions = random_actions(game, rng)
    game.step(actions)
    ref.step(actions[0])
    ref._rng[0] = game.rng_states[0]
    assert_matches_reference(game, [ref], f"seed {seed}")


def test_same_results_at_one_and_two_threads():
    def trace(threads: int):
        numba.set_num_threads(threads)
        try:
            game = Tag(num_matches=300, max_cycles=10)   # above SERIAL_BELOW: the parallel kernel
            game.reset(seed=3)
            rng = np.random.default_rng(3)
            out = []
            for _ in range(25):
                game.step(rng.integers(0, 5, size=(300, 4)))
                out.append((game.obs.copy(), game.rewards.copy(), game.episode_winner * game.episode_done))
            return out
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)

    for x, y in zip(trace(1), trace(min(2, numba.config.NUMBA_NUM_THREADS))):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


def test_bench_tag_returns_both_figures():
    from bench.tag import bench_tag

    r = bench_tag(matches=64, seconds=0.2, threads=1)
    assert r["tag_agent_steps_per_s"] > 0 and r["matches"] == 64
    assert r["mpe2_agent_steps_per_s"] > 0 and r["ratio"] == r["tag_agent_steps_per_s"] / r["mpe2_agent_steps_per_s"]
