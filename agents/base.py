"""The one agent protocol: batched ``act(obs, mask) -> actions``.

An agent is asked for the rows where it has to move: the observations of its seats in every match
where it plays, stacked on one leading axis, and the matching action masks. It returns one action per
row. The whole loop, as the match runner drives it::

    agent = MyAgent(game, seed=0, **agent_args)    # game: the BatchedGame it will play (read-only)
    agent.reset(seed)                              # once, before play
    while playing:
        rows = active seats of the matches where the agent sits, in (match, seat) order
        actions[rows] = agent.act(game.obs[rows], game.action_mask[rows])
        game.step(actions)
        agent.on_match_end(slots, outcomes)        # optional: slots that just ended, +1 win / 0 draw / -1 loss
        agent.on_match_start(slots)                # optional: slots where a new match just began

- ``obs``: ``(B, *game.single_observation_space.shape)`` with the space's dtype, one row per seat the
  agent controls (in battle, every live member of its team; in connect4, the player to move).
- ``mask``: ``(B, game.num_actions)`` int8, 1 where the action is legal.
- returns: integers of shape ``(B,)``, each a legal action of its row. Anything else (an exception, a
  wrong shape or dtype, NaN, an out-of-range or masked action, or too long a wait when the agent runs
  isolated) forfeits the matches concerned; see ``check_agent`` to find such faults before a run.

``act`` may return any integer dtype; it should not keep references to ``obs`` or ``mask`` (the
buffers are reused on the next step).
"""
from __future__ import annotations

import numpy as np


class Agent:
    """Base class of every agent. Subclasses implement ``act``; the other methods are optional."""

    #: the name shown in results tables (the CLI sets it to the name the user typed)
    name: str = "agent"

    def __init__(self, game=None, seed: int = 0, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__} takes no arguments {sorted(kwargs)}")
        self.game = game
        self.seed = seed

    def reset(self, seed: int | None = None) -> None:
        """Called once before play starts, with the run's seed for this agent."""
        if seed is not None:
            self.seed = seed

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One action per row of ``obs`` (see the module docstring)."""
        raise NotImplementedError

    # def reseed(self, seed: int) -> None:
    #     Optional. A game server calls it before each batch with a seed derived from (run seed, group,
    #     step, agent), so that a batch re-sent to another worker after a failure gets the same actions.
    #     Agents that draw random numbers should implement it to be reproducible in distributed play.

    def on_match_start(self, slots: np.ndarray) -> None:
        """Matches began in these batch slots (indices into the match axis)."""

    def on_match_end(self, slots: np.ndarray, outcomes: np.ndarray) -> None:
        """Matches ended in these slots; ``outcomes`` is +1 (won), 0 (draw) or -1 (lost) for this agent."""

    def close(self) -> None:
        """Release what the agent holds (processes, files). Called once at the end of a run."""
