"""The Gymnasium-style vector view of a batched arena: one row per (match, seat).

Multi-agent games become a vector env the way SuperSuit and PufferLib do it: every seat of every match
is one sub-environment, so ``num_envs = num_matches * agents_per_match`` and row ``m * A + s`` is seat
``s`` of match ``m``. Observations, rewards and flags are views of the game's own buffers (no copies).

- ``reset(seed=...)`` -> ``(obs, infos)``; ``step(actions)`` -> ``(obs, rewards, terminations,
  truncations, infos)`` with ``actions`` of shape ``(num_envs,)`` (``Discrete`` action space; the
  ``action_space`` is a ``MultiDiscrete``), or ``(num_envs, K)`` floats for a continuous
  ``Box(..., (K,))`` one (``tag`` with ``continuous_actions=True``; ``action_space`` is
  ``batch_space(single_action_space, num_envs)``, and values outside the Box are the game's to treat:
  ``tag`` clips them).
- Where teams see different observation spaces (``tag``), every row has the shape of
  ``single_observation_space`` and is zero-padded beyond its team's space: row ``r`` belongs to team
  ``env.game.seat_team[r % agents_per_match]``, whose part is ``obs[r][env.game.team_obs_index(team)]``.
- Auto-reset is Gymnasium's ``SAME_STEP`` mode: a row whose match ended returns the first observation of
  the next match together with the ended step's reward and flags. The final observation itself is not
  kept.
- ``infos["action_mask"]`` ``(num_envs, num_actions)`` int8 and ``infos["active"]`` ``(num_envs,)``
  bool: rows whose action the next step reads (in turn-based games only the player to move; a dead
  agent's row stays inactive until its match resets). Actions of inactive rows are ignored.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .registry import get


class BatchedVectorEnv(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, name: str, num_envs: int, seed: int | None = None, **options: Any):
        spec = get(name)
        per_match = spec.game(num_matches=1, **options).num_agents
        if num_envs < per_match or num_envs % per_match:
            raise ValueError(f"num_envs={num_envs} must be a positive multiple of {name}'s {per_match} "
                             f"agents per match (one row per seat of every match)")
        self.game = spec.game(num_matches=num_envs // per_match, **options)
        g = self.game
        self.num_envs = num_envs
        self.single_observation_space = g.single_observation_space
        self.single_action_space = g.single_action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        if g.continuous_actions:
            self.action_space = batch_space(self.single_action_space, num_envs)
            self.action_space.seed(seed)
        else:
            self.action_space = spaces.MultiDiscrete(np.full(num_envs, g.num_actions), seed=seed)
        self._obs = g.obs.reshape((num_envs,) + g.obs_shape)
        self._mask = g.action_mask.reshape(num_envs, -1)
        self._active = g.active.reshape(-1)
        self._rewards = g.rewards.reshape(-1)
        self._terms = g.terminations.reshape(-1)
        self._truncs = g.truncations.reshape(-1)
        self._actions = g.actions.reshape((num_envs,) + g.action_shape)
        self._seed = seed

    def _infos(self) -> dict[str, Any]:
        return {"action_mask": self._mask, "active": self._active}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.game.reset(seed=self._seed if seed is None else seed)
        self._seed = None
        return self._obs, self._infos()

    def step(self, actions):
        np.copyto(self._actions, np.asarray(actions).reshape(self._actions.shape), casting="unsafe")
        self.game.step(self.game.actions)
        return self._obs, self._rewards, self._terms, self._truncs, self._infos()
