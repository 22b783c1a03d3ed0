"""``check_arena``: the conformance check for any ``BatchedGame``, ours or a user's.

Run it on your own arena before you plug it in::

    from simcore import check_arena
    check_arena(MyGame(num_matches=16))

Each failed assertion says which part of the contract (see ``simcore.game``) was broken.
"""
from __future__ import annotations

import gymnasium
import numpy as np

from .game import DRAW, BatchedGame


def random_legal_actions(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random legal action per row of ``mask`` (``(..., num_actions)``); 0 where none."""
    flat = mask.reshape(-1, mask.shape[-1]).astype(bool)
    counts = flat.sum(axis=1)
    pick = (rng.random(flat.shape[0]) * np.maximum(counts, 1)).astype(np.int64)
    cum = np.cumsum(flat, axis=1)
    act = (cum <= pick[:, None]).sum(axis=1)
    act[counts == 0] = 0
    return act.reshape(mask.shape[:-1])


def uniform_in_box(space: gymnasium.spaces.Box, u: np.ndarray) -> np.ndarray:
    """Map uniform numbers ``u`` in [0, 1) (shape ``(..., *space.shape)``) into ``space``, in its dtype;
    an infinite bound counts as -1 or 1."""
    low = np.where(np.isfinite(space.low), space.low, -1.0)
    high = np.where(np.isfinite(space.high), space.high, 1.0)
    return (low + u * (high - low)).astype(space.dtype)


def random_actions(game: BatchedGame, rng: np.random.Generator) -> np.ndarray:
    """Random actions for every seat of ``game``, shaped like ``game.actions``: a random legal action
    per seat (``Discrete``), or a vector uniform in the ``Box`` (``uniform_in_box``)."""
    if not game.continuous_actions:
        return random_legal_actions(game.action_mask, rng)
    return uniform_in_box(game.single_action_space, rng.random(game.actions.shape))


def _check_spaces(game: BatchedGame, name: str) -> None:
    """The observation and action spaces and the buffers that follow from them."""
    n, a, t = game.num_matches, game.num_agents, game.num_teams
    space = game.single_observation_space
    teams = game.team_observation_spaces
    assert isinstance(teams, tuple) and len(teams) == t, (
        f"{name}.team_observation_spaces must be a tuple of one space per team ({t}), got {teams!r}")
    for team, sp in enumerate(teams):
        assert isinstance(sp, gymnasium.spaces.Box), f"{name}: team {team}'s observation space must be a Box"
        assert sp.dtype == space.dtype and len(sp.shape) == len(space.shape) and \
            all(d <= e for d, e in zip(sp.shape, space.shape)), (
            f"{name}: team {team}'s observation space {sp.shape}:{sp.dtype} must have the dtype and ndim of "
            f"single_observation_space {space.shape}:{space.dtype} and fit inside it (rows are zero-padded)")
    action = game.single_action_space
    if game.continuous_actions:
        assert len(action.shape) == 1, f"{name}: a continuous action space must be a 1-D Box, got {action}"
        assert game.actions.shape == (n, a) + action.shape and game.actions.dtype == action.dtype, (
            f"{name}.actions must be {action.dtype} of shape (N, A, {action.shape[0]}) for a Box action space, "
            f"got {game.actions.dtype} {game.actions.shape}")
    else:
        assert isinstance(action, gymnasium.spaces.Discrete), (
            f"{name}.single_action_space must be Discrete or a 1-D Box, got {action}")
        assert game.actions.shape == (n, a) and game.actions.dtype.kind == "i", (
            f"{name}.actions must be an integer (N, A) array for a Discrete action space")
    assert game.action_mask.shape == (n, a, game.num_actions) and game.action_mask.dtype == np.int8, (
        f"{name}.action_mask must be int8 of shape (N, A, num_actions)")


def _check_team_obs(game: BatchedGame, name: str, step: int) -> None:
    """Each seat's row: its team's part inside the team space, the padding beyond it zero."""
    for team, sp in enumerate(game.team_observation_spaces):
        rows = game.obs[:, game.seat_team == team]
        index = (slice(None), slice(None)) + game.team_obs_index(team)
        part = rows[index]
        assert (part >= sp.low).all() and (part <= sp.high).all(), (
            f"{name}: a team {team} observation is outside team_observation_spaces[{team}] at step {step}")
        if sp.shape != game.obs_shape:
            pad = rows.copy()
            pad[index] = 0
            assert not pad.any(), (
                f"{name}: team {team}'s rows must be zero beyond its observation space {sp.shape} "
                f"(step {step}); the padding up to obs_shape {game.obs_shape} is not zero")


def _buffers(game: BatchedGame) -> dict[str, np.ndarray]:
    return {k: getattr(game, k) for k in ("obs", "action_mask", "active", "rewards", "terminations",
                                          "truncations", "episode_done", "episode_winner",
                                          "episode_length", "episode_stats", "step_count", "actions")}


def check_arena(game: BatchedGame, steps: int = 300, seed: int = 0) -> None:
    """Play ``steps`` random legal steps and assert the ``BatchedGame`` contract holds.

    Checks: buffer shapes and dtypes, the action buffer matching the action space (integers for
    ``Discrete``, float vectors for a ``Box``); buffers are never replaced (kernels write in place);
    observations stay inside ``single_observation_space`` and each team's part inside its
    ``team_observation_spaces`` entry, zero beyond it; every active seat has a legal action;
    a finished match reports exactly one outcome (a team index or a draw) and is auto-reset;
    the same seed gives the same trajectory.
    """
    n, a, t = game.num_matches, game.num_agents, game.num_teams
    name = type(game).__name__
    assert game.seat_team.shape == (a,), f"{name}.seat_team must have one team per seat, shape ({a},)"
    assert game.obs.shape == (n, a) + game.obs_shape, (
        f"{name}.obs has shape {game.obs.shape}; expected (num_matches, num_agents, *obs_shape) = "
        f"{(n, a) + game.obs_shape}")
    assert game.obs.dtype == game.single_observation_space.dtype, (
        f"{name}.obs dtype {game.obs.dtype} differs from single_observation_space {game.single_observation_space.dtype}")
    _check_spaces(game, name)
    for key in ("rewards",):
        assert getattr(game, key).shape == (n, a) and getattr(game, key).dtype == np.float32, f"{name}.{key} must be float32 (N, A)"
    for key in ("terminations", "truncations", "active"):
        assert getattr(game, key).shape == (n, a) and getattr(game, key).dtype == np.bool_, f"{name}.{key} must be bool (N, A)"
    assert game.episode_stats.shape == (n, t, len(game.stat_names)), f"{name}.episode_stats must be (N, T, len(stat_names))"

    before = _buffers(game)   # the arrays themselves (ids of freed arrays can be reused)
    rng = np.random.default_rng(seed)
    game.reset(seed=seed)
    trace_a = []
    space = game.single_observation_space
    finished = 0
    for step in range(steps):
        assert (game.action_mask[game.active].sum(axis=-1) > 0).all(), (
            f"{name}: an active seat has no legal action (step {step}); every seat in `active` needs one")
        if step % 17 == 0:
            o = game.obs.reshape((-1,) + game.obs_shape)
            assert (o >= space.low).all() and (o <= space.high).all(), (
                f"{name}: observation outside single_observation_space at step {step}")
            _check_team_obs(game, name, step)
        actions = random_actions(game, rng)
        game.step(actions)
        assert np.isfinite(game.rewards).all(), f"{name}: non-finite reward at step {step}"
        done = game.episode_done
        if done.any():
            finished += int(done.sum())
            w = game.episode_winner[done]
            assert ((w == DRAW) | ((w >= 0) & (w < t))).all(), (
                f"{name}: episode_winner must be a team index or -1 (draw), got {np.unique(w)}")
            ended = game.terminations[done] | game.truncations[done]
            assert ended.any(axis=1).all(), (
                f"{name}: a match flagged episode_done has no seat terminated or truncated")
            assert (game.step_count[done] == 0).all(), (
                f"{name}: a finished match must be auto-reset (step_count back to 0)")
            assert (game.episode_length[done] > 0).all(), f"{name}: episode_length of a finished match must be > 0"
        assert not (game.step_count[~done] == 0).any(), f"{name}: step_count must count steps of running matches"
        trace_a.append((game.obs.sum(dtype=np.float64), game.rewards.sum(dtype=np.float64), int(done.sum())))
    after = _buffers(game)
    assert all(after[k] is before[k] for k in before), (
        f"{name}: buffers were replaced; kernels must write into the preallocated arrays")
    assert finished > 0, f"{name}: no match finished in {steps} random steps; is auto-reset / the ending rule wired?"

    # determinism: same seed, same actions, same trajectory
    rng = np.random.default_rng(seed)
    game.reset(seed=seed)
    for step in range(steps):
        game.step(random_actions(game, rng))
        got = (game.obs.sum(dtype=np.float64), game.rewards.sum(dtype=np.float64), int(game.episode_done.sum()))
        assert got == trace_a[step], f"{name}: same seed and actions gave a different trajectory at step {step}"
