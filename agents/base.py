"""The one agent protocol: batched ``act(obs, mask) -> actions``.

An agent sees only the rows where it has to move: the observations of its seats in every match where
it plays, stacked on one leading axis, and the matching action masks. It returns one action per row::

    agent = make_agent("greedy", game, seed=0)   # game: the BatchedGame it will play
    agent.reset(seed=0)
    while running:
        rows = ...                                   # the (match, seat) pairs this agent controls
        actions[rows] = agent.act(game.obs[rows], game.action_mask[rows])
        game.step(actions)

``obs`` has shape ``(B, *single_observation_space.shape)`` and ``mask`` ``(B, num_actions)`` int8
(1 = legal). The result must be an integer array of shape ``(B,)``.
"""
from __future__ import annotations

import numpy as np


class Agent:
    """Base class of every agent. Subclasses implement ``act``; ``reset`` is optional."""

    #: the name shown in results tables (the CLI sets it to the name the user typed)
    name: str = "agent"

    def __init__(self, game=None, seed: int = 0, **kwargs):
        self.game = game
        self.seed = seed

    def reset(self, seed: int | None = None) -> None:
        """Called once before play starts, with the run's seed for this agent."""
        if seed is not None:
            self.seed = seed

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError
