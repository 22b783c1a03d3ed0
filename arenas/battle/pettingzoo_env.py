"""One battle match as a PettingZoo ``ParallelEnv``.

    from arenas.battle.pettingzoo_env import parallel_env
    env = parallel_env(team_size=4)
    obs, infos = env.reset(seed=0)
    while env.agents:
        actions = {a: env.action_space(a).sample(infos[a]["action_mask"]) for a in env.agents}
        obs, rewards, terminations, truncations, infos = env.step(actions)

Agents are ``red_0 .. red_{k-1}`` and ``blue_0 .. blue_{k-1}`` (seats ``0 .. 2k-1`` of ``Battle``). An
agent that dies is terminated on that step and leaves ``agents``; when the match ends every remaining
agent is terminated (a team was wiped out) or truncated (``max_steps``) and ``agents`` becomes empty.
``infos[agent]["action_mask"]`` is the int8 mask of the agent's legal actions. The rules, observations
and options are those of ``arenas.battle``; this adapter runs ``Battle(num_matches=1, auto_reset=False)``.
"""
from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from .game import Battle


class BattleParallelEnv(ParallelEnv):
    metadata = {"name": "battle_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, **options: Any):
        self.game = Battle(num_matches=1, auto_reset=False, **options)
        k = self.game.team_size
        self.possible_agents = [f"red_{i}" for i in range(k)] + [f"blue_{i}" for i in range(k)]
        self._seat = {name: s for s, name in enumerate(self.possible_agents)}
        box = self.game.single_observation_space
        self.observation_spaces = {a: gymnasium.spaces.Box(box.low, box.high, dtype=box.dtype)
                                   for a in self.possible_agents}
        self.action_spaces = {a: gymnasium.spaces.Discrete(self.game.num_actions) for a in self.possible_agents}
        s = self.game.map_size
        self.state_space = gymnasium.spaces.Box(-1, 2, (s, s), dtype=np.int8)
        self.agents: list[str] = []
        self.render_mode = None
        self._actions = np.zeros((1, self.game.num_agents), dtype=np.int64)

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Discrete:
        return self.action_spaces[agent]

    def _obs_infos(self, agents: list[str]) -> tuple[dict, dict]:
        g, seat = self.game, self._seat
        obs = {a: g.obs[0, seat[a]].copy() for a in agents}
        infos = {a: {"action_mask": g.action_mask[0, seat[a]].copy()} for a in agents}
        return obs, infos

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.game.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._obs_infos(self.agents)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        g, seat = self.game, self._seat
        self._actions[:] = 0
        for agent, action in actions.items():
            if agent not in seat:
                raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
            self._actions[0, seat[agent]] = int(action)
        live = self.agents
        g.step(self._actions)
        obs, infos = self._obs_infos(live)
        rewards = {a: float(g.rewards[0, seat[a]]) for a in live}
        terminations = {a: bool(g.terminations[0, seat[a]]) for a in live}
        truncations = {a: bool(g.truncations[0, seat[a]]) for a in live}
        self.agents = [a for a in live if not (terminations[a] or truncations[a])]
        return obs, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The whole map as ``(map_size, map_size)`` int8: -1 wall, 0 empty, 1 red, 2 blue."""
        snap = self.game.snapshot(0)
        out = np.where(snap["walls"], -1, 0).astype(np.int8)
        for (r, c), team, alive in zip(snap["pos"], snap["team"], snap["alive"]):
            if alive:
                out[r, c] = team + 1
        return out

    def render(self) -> None:
        return None

    def close(self) -> None:
        pass


def parallel_env(**options: Any) -> BattleParallelEnv:
    """One match of ``battle`` as a PettingZoo Parallel env; ``options`` as for ``arenas.battle``."""
    return BattleParallelEnv(**options)
