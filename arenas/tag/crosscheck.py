"""Cross-check of the tag arena against mpe2's ``simple_tag_v3`` itself, episode by episode.

    from arenas.tag.crosscheck import crosscheck
    report = crosscheck(episodes=1000, continuous=False, seed=0)
    print(report)            # episodes, steps, max abs errors, the first mismatch if any
    assert report.ok

For each episode ``e`` it resets mpe2's ``simple_tag_v3.parallel_env`` with seed ``seed + e``, copies
the world mpe2 drew (agent positions and velocities, landmark positions) into match ``e`` of one batched
``Tag`` game, then feeds both the same random actions (uniform over ``Discrete(5)``, or uniform in
``[0, 1)^5`` float32) for the whole episode. After the reset and after every step it compares every
agent's observation (the padding of a good agent's row must be zero), reward, termination and
truncation, and that the episode ends at the same step. A value counts as a mismatch when
``|arena - mpe2| > tolerance * max(1, |mpe2|)``; flags must be equal.

mpe2 is imported inside the function: the arena itself does not need it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import nb as K
from .game import Tag, agent_names, validate_options

#: default tolerance: observations are float32 in both (identical when the float64 states agree);
#: rewards are float64 in mpe2 and float32 here (rounding up to ~2e-6 at |reward| ~ 40)
TOLERANCE = 1e-5


@dataclass
class CrossCheckReport:
    """What ``crosscheck`` found. ``ok`` is True when nothing differed beyond ``tolerance``."""

    episodes: int
    steps: int                      # world steps compared (episodes x max_cycles)
    continuous: bool
    tolerance: float
    damping: float
    max_abs_error: dict[str, float] = field(default_factory=dict)   # "obs", "rewards"
    mismatched_episodes: int = 0
    first_mismatch: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.first_mismatch is None

    def __str__(self) -> str:
        kind = "continuous" if self.continuous else "discrete"
        errs = ", ".join(f"{k} {v:.3g}" for k, v in self.max_abs_error.items())
        head = (f"tag vs mpe2 simple_tag_v3 ({kind} actions, damping {self.damping}): {self.episodes} episodes, "
                f"{self.steps} steps, tolerance {self.tolerance:g} x max(1, |mpe2|); max abs error: {errs}")
        if self.ok:
            return head + "; all equal"
        f = self.first_mismatch
        return (head + f"\n  MISMATCH in {self.mismatched_episodes} episode(s); first: episode {f['episode']} "
                f"(seed {f['seed']}), step {f['step']}, agent {f['agent']}, {f['field']}"
                + (f"[{f['index']}]" if f.get("index") is not None else "")
                + f": arena {f['arena']!r} vs mpe2 {f['mpe2']!r}")


def _mpe2_episodes(env, world, episodes: int, seed: int, actions: np.ndarray, obs_len: int,
                   continuous: bool) -> dict[str, np.ndarray]:
    """Play every episode in mpe2; record the start state and everything the arena must reproduce."""
    names = env.possible_agents
    e_n, t_n, a_n = actions.shape[:3]
    l_n = len(world.landmarks)
    rec = {
        "pos": np.zeros((e_n, a_n, 2)), "vel": np.zeros((e_n, a_n, 2)), "landmarks": np.zeros((e_n, l_n, 2)),
        "obs": np.zeros((e_n, t_n + 1, a_n, obs_len), np.float32),
        "rewards": np.zeros((e_n, t_n, a_n)),
        "terminations": np.zeros((e_n, t_n, a_n), np.bool_),
        "truncations": np.zeros((e_n, t_n, a_n), np.bool_),
        "ended": np.zeros((e_n, t_n), np.bool_),
    }

    def put_obs(e, t, obs):
        for i, name in enumerate(names):
            o = obs[name]
            rec["obs"][e, t, i, :o.shape[0]] = o

    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        for i, agent in enumerate(world.agents):
            rec["pos"][e, i] = agent.state.p_pos
            rec["vel"][e, i] = agent.state.p_vel
        for j, landmark in enumerate(world.landmarks):
            rec["landmarks"][e, j] = landmark.state.p_pos
        put_obs(e, 0, obs)
        for t in range(t_n):
            if not env.agents:
                break
            step_actions = {name: (actions[e, t, i] if continuous else int(actions[e, t, i]))
                            for i, name in enumerate(names)}
            obs, rewards, terms, truncs, _ = env.step(step_actions)
            put_obs(e, t + 1, obs)
            for i, name in enumerate(names):
                rec["rewards"][e, t, i] = rewards[name]
                rec["terminations"][e, t, i] = terms[name]
                rec["truncations"][e, t, i] = truncs[name]
            rec["ended"][e, t] = not env.agents
    return rec


def crosscheck(episodes: int = 1000, continuous: bool = False, seed: int = 0, damping: float | None = None,
               tolerance: float = TOLERANCE, **options: Any) -> CrossCheckReport:
    """Play ``episodes`` seeded episodes in mpe2 and in the arena from the same states with the same
    random actions, and compare everything (module docstring). ``options`` are tag's other options
    (``num_good``, ``num_adversaries``, ``num_obstacles``, ``max_cycles``), passed to both.
    ``damping`` overrides the arena's (not mpe2's) damping, to see the check fail on a wrong variant."""
    from mpe2 import simple_tag_v3

    o = validate_options({**options, "continuous_actions": bool(continuous)})
    damping = K.DAMPING if damping is None else float(damping)
    env = simple_tag_v3.parallel_env(**o)
    world = env.unwrapped.world
    game = Tag(num_matches=episodes, auto_reset=False, damping=damping, **o)
    names = agent_names(game.num_adversaries, game.num_good)
    if list(env.possible_agents) != names:
        raise AssertionError(f"mpe2's agents {env.possible_agents} are not the arena's seats {names}")
    n, a, t_n = episodes, game.num_agents, o["max_cycles"]
    rng = np.random.default_rng(seed)
    if continuous:
        actions = rng.random((n, t_n, a, K.NUM_ACTIONS), dtype=np.float32)
    else:
        actions = rng.integers(0, K.NUM_ACTIONS, size=(n, t_n, a))
    rec = _mpe2_episodes(env, world, episodes, seed, actions, game.obs_shape[0], continuous)
    env.close()

    game.reset(seed=seed)
    game.pos[:, :a] = rec["pos"]
    game.vel[:] = rec["vel"]
    game.pos[:, a:] = rec["landmarks"]
    K.refresh_obs_nb(np.ones(n, np.bool_), game.num_adversaries, game.pos, game.vel, game.obs)

    report = CrossCheckReport(episodes=n, steps=n * t_n, continuous=bool(continuous), tolerance=tolerance,
                              damping=damping, max_abs_error={"obs": 0.0, "rewards": 0.0})
    first: dict[int, dict[str, Any]] = {}   # episode -> its first mismatch

    def compare(step: int, field_name: str, ours: np.ndarray, theirs: np.ndarray) -> None:
        if ours.dtype == np.bool_:
            bad = ours != theirs
        else:
            err = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
            report.max_abs_error[field_name] = max(report.max_abs_error[field_name], float(np.nanmax(err)))
            bad = ~(err <= tolerance * np.maximum(1.0, np.abs(theirs.astype(np.float64))))
        for e in np.flatnonzero(bad.reshape(n, -1).any(axis=1)):
            if int(e) in first:
                continue
            sub = np.asarray(bad[e])
            where = np.argwhere(sub)[0] if sub.ndim else np.zeros(0, np.int64)
            i = int(where[0]) if where.size else None
            index = int(where[1]) if where.size > 1 else None
            pick = (e,) + tuple(int(w) for w in where)
            first[int(e)] = {"episode": int(e), "seed": seed + int(e), "step": step,
                             "agent": names[i] if i is not None else None, "field": field_name, "index": index,
                             "arena": ours[pick].item(), "mpe2": theirs[pick].item()}

    compare(0, "obs", game.obs, rec["obs"][:, 0])
    for t in range(t_n):
        game.step(actions[:, t])
        compare(t + 1, "obs", game.obs, rec["obs"][:, t + 1])
        compare(t + 1, "rewards", game.rewards, rec["rewards"][:, t])
        compare(t + 1, "terminations", game.terminations, rec["terminations"][:, t])
        compare(t + 1, "truncations", game.truncations, rec["truncations"][:, t])
        compare(t + 1, "episode end", game.episode_done, rec["ended"][:, t])
    report.mismatched_episodes = len(first)
    if first:
        report.first_mismatch = first[min(first)]
    return report
