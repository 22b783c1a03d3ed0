"""One connect4 match as a PettingZoo AEC env, interchangeable with ``connect_four_v3.env()``.

``raw_env`` drives a ``Connect4(num_matches=1, auto_reset=False)``; ``env`` wraps it with the same
wrappers ``connect_four_v3`` uses, so illegal moves, out-of-range actions and call order behave exactly
as there (an illegal move: the mover gets -1, the other 0, and both are terminated *and* truncated)::

    from arenas.connect4.pettingzoo_env import env
    e = env()
    e.reset(seed=0)
    for agent in e.agent_iter():
        obs, reward, terminated, truncated, info = e.last()
        e.step(None if terminated or truncated else int(obs["action_mask"].argmax()))
"""
from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv
from pettingzoo.utils import wrappers
from pettingzoo.utils.agent_selector import AgentSelector

from .game import Connect4
from .nb import COLS, ROWS


def env(**kwargs) -> AECEnv:
    """The wrapped env, as ``connect_four_v3.env(**kwargs)`` builds it."""
    e = raw_env(**kwargs)
    e = wrappers.TerminateIllegalWrapper(e, illegal_reward=-1)
    e = wrappers.AssertOutOfBoundsWrapper(e)
    return wrappers.OrderEnforcingWrapper(e)


class raw_env(AECEnv):
    """The unwrapped AEC env; the rules run in the batched engine's kernels."""

    metadata = {"render_modes": [], "name": "connect4_arena_v0", "is_parallelizable": False, "render_fps": 2}

    def __init__(self, render_mode: str | None = None):
        super().__init__()
        if render_mode is not None:
            raise ValueError(f"render_mode must be None (connect4_arena_v0 draws nothing; use the spectator), "
                             f"got {render_mode!r}")
        self.render_mode = None
        self.game = Connect4(num_matches=1, auto_reset=False)
        self.agents = ["player_0", "player_1"]
        self.possible_agents = self.agents[:]
        self.action_spaces = {a: spaces.Discrete(COLS) for a in self.agents}
        self.observation_spaces = {
            a: spaces.Dict({
                "observation": spaces.Box(low=0, high=1, shape=(ROWS, COLS, 2), dtype=np.int8),
                "action_mask": spaces.Box(low=0, high=1, shape=(COLS,), dtype=np.int8),
            })
            for a in self.agents
        }

    def observation_space(self, agent):
        return self.observation_spaces[agent]

    def action_space(self, agent):
        return self.action_spaces[agent]

    def observe(self, agent):
        seat = self.possible_agents.index(agent)
        action_mask = np.zeros(COLS, dtype=np.int8)
        if agent == self.agent_selection:  # as connect_four_v3: the free columns, even once the game is over
            action_mask[:] = self.game.board[0, 0] == 0
        return {"observation": self.game.obs[0, seat].copy(), "action_mask": action_mask}

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        self.game.reset(seed=0 if seed is None else seed)  # the rules draw no random numbers
        self.agents = self.possible_agents[:]
        self.rewards = dict.fromkeys(self.agents, 0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {a: {} for a in self.agents}
        self._agent_selector = AgentSelector(self.agents)
        self.agent_selection = self._agent_selector.reset()

    def step(self, action) -> None:
        if self.terminations[self.agent_selection] or self.truncations[self.agent_selection]:
            return self._was_dead_step(action)
        assert self.game.board[0, 0, action] == 0, "played illegal move."
        game = self.game
        seat = self.possible_agents.index(self.agent_selection)
        game.actions[0, seat] = action
        game.step(game.actions)
        next_agent = self._agent_selector.next()
        if game.terminations[0, seat]:
            self.rewards = {a: int(game.rewards[0, i]) for i, a in enumerate(self.possible_agents)}
            self.terminations = dict.fromkeys(self.agents, True)
        self.agent_selection = next_agent
        self._accumulate_rewards()

    def render(self) -> None:
        gymnasium.logger.warn("connect4_arena_v0 has no render modes; use the spectator to watch matches.")
        return None

    def close(self) -> None:
        pass
