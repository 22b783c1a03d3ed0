"""``Tag``: the batched predator-prey game (rules in the package docstring, kernels in ``nb.py``)."""
from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from simcore.game import BatchedGame
from simcore.options import check_int

from . import nb as K

DEFAULTS: dict[str, Any] = {
    "num_good": 1,
    "num_adversaries": 3,
    "num_obstacles": 2,
    "max_cycles": 25,
    "continuous_actions": False,
}

#: below this many matches the kernels run on the calling thread (the one-match PettingZoo adapter and
#: the cross-check stay quick; waking threads would cost more than the work)
SERIAL_BELOW = 256




def validate_options(options: dict[str, Any]) -> dict[str, Any]:
    """Fill in defaults and check every option; raises ``ValueError`` naming the bad one."""
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown tag option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    o = {**DEFAULTS, **options}
    o["num_good"] = check_int("tag", "num_good", o["num_good"], 1, 64)
    o["num_adversaries"] = check_int("tag", "num_adversaries", o["num_adversaries"], 1, 64)
    o["num_obstacles"] = check_int("tag", "num_obstacles", o["num_obstacles"], 0, 64)
    o["max_cycles"] = check_int("tag", "max_cycles", o["max_cycles"], 1, 2**31 - 1)
    if not isinstance(o["continuous_actions"], (bool, np.bool_)):
        raise ValueError(f"tag option continuous_actions must be True or False, got {o['continuous_actions']!r}")
    o["continuous_actions"] = bool(o["continuous_actions"])
    return o


def obs_sizes(num_good: int, num_adversaries: int, num_obstacles: int) -> tuple[int, int]:
    """Observation lengths ``(adversary, good agent)``: own velocity and position, landmarks, the other
    agents' positions, the other good agents' velocities (2 numbers each)."""
    a = num_good + num_adversaries
    common = 4 + 2 * num_obstacles + 2 * (a - 1)
    return common + 2 * num_good, common + 2 * (num_good - 1)


def agent_names(num_adversaries: int, num_good: int) -> list[str]:
    """mpe2's agent names in seat order: ``adversary_0..``, then ``agent_0..``."""
    return [f"adversary_{i}" for i in range(num_adversaries)] + [f"agent_{i}" for i in range(num_good)]


class Tag(BatchedGame):
    """Predator-prey on a plane: the rules of mpe2's ``simple_tag_v3``, ``num_matches`` at once.

    The rules and options are in the ``arenas.tag`` docstring; the buffers are those of
    ``simcore.BatchedGame``, with per-team observation spaces (adversaries see 2 numbers more) and,
    with ``continuous_actions=True``, a ``Box(0, 1, (5,))`` float32 action space. With
    ``auto_reset=False`` a match that ends keeps its final state and observations, its seats turn
    inactive, and later steps report nothing for it until ``reset()``.

    ``damping`` is not an option of mpe2 (whose world always uses 0.25): it exists so that the
    cross-check can show that it catches a wrong variant (``arenas.tag.crosscheck``).
    """

    name = "tag"
    stat_names = ("return", "touches")
    turn_based = False

    def __init__(self, num_matches: int = 1, *, auto_reset: bool = True, damping: float = K.DAMPING,
                 **game_options: Any):
        o = validate_options(game_options)
        if isinstance(damping, bool) or not isinstance(damping, (int, float)) or not 0.0 <= damping <= 1.0:
            raise ValueError(f"tag damping must be a number in [0, 1], got {damping!r}")
        self.options = o
        self.auto_reset = bool(auto_reset)
        self.damping = float(damping)
        na, ng, nl = o["num_adversaries"], o["num_good"], o["num_obstacles"]
        a = na + ng
        self.num_adversaries, self.num_good, self.num_obstacles = na, ng, nl
        adv_len, good_len = obs_sizes(ng, na, nl)
        inf = np.float32(np.inf)
        team_spaces = tuple(gymnasium.spaces.Box(-inf, inf, (d,), np.float32) for d in (adv_len, good_len))
        action_space = gymnasium.spaces.Box(0.0, 1.0, (K.NUM_ACTIONS,), np.float32) \
            if o["continuous_actions"] else None
        self._allocate(num_matches, a, np.repeat(np.arange(2), [na, ng]), team_spaces[0], K.NUM_ACTIONS,
                       team_observation_spaces=team_spaces, action_space=action_space)
        n = self.num_matches
        self.action_mask[:] = 1  # every action (every component) is always legal

        # per-entity constants: agents (adversaries first), then landmarks
        adversary = np.arange(a) < na
        self.size = np.concatenate([np.where(adversary, K.ADVERSARY_SIZE, K.GOOD_SIZE),
                                    np.full(nl, K.LANDMARK_SIZE)]).astype(np.float64)
        self.accel = np.where(adversary, K.ADVERSARY_ACCEL, K.GOOD_ACCEL).astype(np.float64)
        self.max_speed = np.where(adversary, K.ADVERSARY_MAX_SPEED, K.GOOD_MAX_SPEED).astype(np.float64)

        # state
        self.pos = np.zeros((n, a + nl, 2), dtype=np.float64)
        self.vel = np.zeros((n, a, 2), dtype=np.float64)
        self.ep_return = np.zeros((n, a), dtype=np.float64)
        self.ep_touches = np.zeros(n, dtype=np.int64)
        self.finished = np.zeros(n, dtype=np.bool_)
        self._force = np.zeros((n, a, 2), dtype=np.float64)
        # the kernel reads one of the two action arrays; the other is a one-element stand-in
        if o["continuous_actions"]:
            self._actions_d, self._actions_c = np.zeros((1, 1), np.int64), self.actions
        else:
            self._actions_d, self._actions_c = self.actions, np.zeros((1, 1, K.NUM_ACTIONS), np.float32)
        serial = n < SERIAL_BELOW
        self._step_kernel = K.step_serial_nb if serial else K.step_nb
        self.reset(seed=0)

    def _reset_all(self) -> None:
        K.reset_all_nb(self.rng_states, self.match_rng, self.num_adversaries, self.pos, self.vel, self.ep_return,
                       self.ep_touches, self.finished, self.obs, self.active, self.step_count)

    def _step(self) -> None:
        self._step_kernel(self._actions_d, self._actions_c, self.options["continuous_actions"], self.rng_states,
                          self.match_rng, self.num_adversaries, self.pos, self.vel, self._force, self.size,
                          self.accel, self.max_speed, self.damping, self.options["max_cycles"], self.auto_reset,
                          self.ep_return, self.ep_touches, self.finished, self.obs, self.active, self.rewards,
                          self.terminations, self.truncations, self.episode_done, self.episode_winner,
                          self.episode_length, self.episode_stats, self.step_count)

    def _reset_some(self, which: np.ndarray) -> None:
        K.reset_some_nb(which, self.rng_states, self.match_rng, self.num_adversaries, self.pos, self.vel,
                        self.ep_return, self.ep_touches, self.finished, self.obs, self.active, self.step_count,
                        self.rewards, self.terminations, self.truncations)

    def set_state(self, match: int, agent_pos, agent_vel=None, landmark_pos=None) -> None:
        """Put match ``match`` in a chosen state (agents ``(A, 2)``, velocities ``(A, 2)`` (default at
        rest), landmarks ``(L, 2)`` (default unchanged)) and rewrite its observations. The step count,
        returns and touches of the episode are kept."""
        m = int(match)
        a = self.num_agents
        self.pos[m, :a] = np.asarray(agent_pos, dtype=np.float64).reshape(a, 2)
        self.vel[m] = 0.0 if agent_vel is None else np.asarray(agent_vel, dtype=np.float64).reshape(a, 2)
        if landmark_pos is not None:
            self.pos[m, a:] = np.asarray(landmark_pos, dtype=np.float64).reshape(self.num_obstacles, 2)
        which = np.zeros(self.num_matches, dtype=np.bool_)
        which[m] = True
        K.refresh_obs_nb(which, self.num_adversaries, self.pos, self.vel, self.obs)

    def snapshot(self, match: int) -> dict[str, Any]:
        """Copy of match ``match``: agent ``pos``/``vel`` ``(A, 2)``, ``landmarks`` ``(L, 2)``, ``size``
        ``(A + L,)`` radii (agents then landmarks), ``team`` ``(A,)`` (0 adversary, 1 good), ``step``,
        ``touches`` so far."""
        if not 0 <= match < self.num_matches:
            raise IndexError(f"match {match} out of range [0, {self.num_matches})")
        m, a = int(match), self.num_agents
        return {
            "pos": self.pos[m, :a].copy(),
            "vel": self.vel[m].copy(),
            "landmarks": self.pos[m, a:].copy(),
            "size": self.size.copy(),
            "team": self.seat_team.copy(),
            "step": int(self.step_count[m]),
            "touches": int(self.ep_touches[m]),
        }
