"""One tag match as a PettingZoo ``ParallelEnv``, with the agents and spaces of mpe2's ``simple_tag_v3``.

    from arenas.tag.pettingzoo_env import parallel_env
    env = parallel_env(num_adversaries=3, continuous_actions=False)
    obs, infos = env.reset(seed=0)
    while env.agents:
        actions = {a: env.action_space(a).sample() for a in env.agents}
        obs, rewards, terminations, truncations, infos = env.step(actions)

Agents are ``adversary_0 .. adversary_{k-1}`` then ``agent_0 .. agent_{g-1}`` (seats of ``Tag``).
Observation spaces are ``Box(-inf, inf, (16,))`` for adversaries and ``(14,)`` for good agents
(defaults), float32; action spaces ``Discrete(5)`` or ``Box(0, 1, (5,))`` float32. Every agent is
truncated after ``max_cycles`` steps and ``agents`` becomes empty. ``state()`` is every agent's
observation concatenated, as in mpe2. This adapter runs ``Tag(num_matches=1, auto_reset=False)``; the
rules are those of ``arenas.tag``.
"""
from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from .game import Tag, agent_names


class TagParallelEnv(ParallelEnv):
    metadata = {"name": "tag_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, **options: Any):
        self.game = Tag(num_matches=1, auto_reset=False, **options)
        g = self.game
        self.possible_agents = agent_names(g.num_adversaries, g.num_good)
        self._seat = {name: s for s, name in enumerate(self.possible_agents)}
        self._index = [g.team_obs_index(int(t)) for t in g.seat_team]
        teams = g.team_observation_spaces
        self.observation_spaces = {a: teams[int(g.seat_team[s])] for s, a in enumerate(self.possible_agents)}
        space = g.single_action_space
        self.action_spaces = {a: (gymnasium.spaces.Box(space.low, space.high, dtype=space.dtype)
                                  if g.continuous_actions else gymnasium.spaces.Discrete(g.num_actions))
                              for a in self.possible_agents}
        size = sum(sp.shape[0] for sp in self.observation_spaces.values())
        self.state_space = gymnasium.spaces.Box(-np.float32(np.inf), np.float32(np.inf), (size,), np.float32)
        self.agents: list[str] = []
        self.render_mode = None
        self._actions = np.zeros_like(g.actions)

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self.action_spaces[agent]

    def _obs(self, agents: list[str]) -> dict[str, np.ndarray]:
        g, seat = self.game, self._seat
        return {a: g.obs[0, seat[a]][self._index[seat[a]]].copy() for a in agents}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.game.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._obs(self.agents), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        g, seat = self.game, self._seat
        self._actions[:] = 0
        for agent, action in actions.items():
            if agent not in seat:
                raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
            self._actions[0, seat[agent]] = action
        live = self.agents
        g.step(self._actions)
        obs = self._obs(live)
        rewards = {a: float(g.rewards[0, seat[a]]) for a in live}
        terminations = {a: bool(g.terminations[0, seat[a]]) for a in live}
        truncations = {a: bool(g.truncations[0, seat[a]]) for a in live}
        self.agents = [a for a in live if not (terminations[a] or truncations[a])]
        return obs, rewards, terminations, truncations, {a: {} for a in live}

    def state(self) -> np.ndarray:
        """Every agent's observation, concatenated in seat order (mpe2's ``state``)."""
        return np.concatenate(list(self._obs(self.possible_agents).values()))

    def render(self) -> None:
        return None

    def close(self) -> None:
        pass


def parallel_env(**options: Any) -> TagParallelEnv:
    """One match of ``tag`` as a PettingZoo Parallel env; ``options`` as for ``arenas.tag``."""
    return TagParallelEnv(**options)
