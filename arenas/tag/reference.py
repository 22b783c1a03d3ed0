"""A plain-Python tag match (no numba), written for clarity: the tests check the kernels against it.

It transcribes mpe2's ``World.step`` and ``simple_tag`` scenario one match at a time, with lists of
NumPy float64 vectors as mpe2 keeps them (``np.logaddexp``, ``np.exp`` and all), and draws its start
positions from the same per-match stream as the kernels (``simcore.rng``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simcore.rng import rand_float

from . import nb as K
from .game import obs_sizes, validate_options


@dataclass
class RefMatch:
    """One match: options, state, and the outputs of the last step."""

    options: dict[str, Any]
    rng_state: int
    auto_reset: bool = True
    damping: float = K.DAMPING
    pos: list[np.ndarray] = field(default_factory=list)        # agents
    vel: list[np.ndarray] = field(default_factory=list)
    landmarks: list[np.ndarray] = field(default_factory=list)
    step_count: int = 0
    finished: bool = False
    ep_return: list[float] = field(default_factory=list)
    ep_touches: int = 0
    # outputs of the last step
    rewards: list[float] = field(default_factory=list)
    terminations: list[bool] = field(default_factory=list)
    truncations: list[bool] = field(default_factory=list)
    episode_done: bool = False
    winner: int = -1
    length: int = 0
    stats: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.options = validate_options(self.options)
        o = self.options
        self.na, self.ng, self.nl = o["num_adversaries"], o["num_good"], o["num_obstacles"]
        self.n = self.na + self.ng
        self._rng = np.array([self.rng_state], dtype=np.uint64)

    def adversary(self, i: int) -> bool:
        return i < self.na

    def size(self, i: int) -> float:
        """Radius of entity ``i`` (agents, then landmarks)."""
        if i >= self.n:
            return K.LANDMARK_SIZE
        return K.ADVERSARY_SIZE if self.adversary(i) else K.GOOD_SIZE

    def entity_pos(self, i: int) -> np.ndarray:
        return self.pos[i] if i < self.n else self.landmarks[i - self.n]

    def collides(self, i: int, j: int) -> bool:
        delta = self.entity_pos(i) - self.entity_pos(j)
        return bool(np.sqrt(np.sum(np.square(delta))) < self.size(i) + self.size(j))

    # -- rules -------------------------------------------------------------------------------------
    def reset(self) -> None:
        def uniform(half: float) -> np.ndarray:
            return np.array([-half + 2.0 * half * rand_float(self._rng, 0) for _ in range(2)])

        self.pos = [uniform(1.0) for _ in range(self.n)]
        self.landmarks = [uniform(0.9) for _ in range(self.nl)]
        self.vel = [np.zeros(2) for _ in range(self.n)]
        self.ep_return = [0.0] * self.n
        self.ep_touches = 0
        self.step_count = 0
        self.finished = False

    @property
    def rng(self) -> int:
        return int(self._rng[0])

    def action_force(self, i: int, action) -> np.ndarray:
        u = np.zeros(2)
        if self.options["continuous_actions"]:
            a = np.nan_to_num(np.clip(np.asarray(action, dtype=np.float32), 0, 1), nan=0.0).astype(np.float32)
            u[0] += a[2] - a[1]
            u[1] += a[4] - a[3]
        else:
            d = int(action)
            if d == 1:
                u[0] = -1.0
            if d == 2:
                u[0] = +1.0
            if d == 3:
                u[1] = -1.0
            if d == 4:
                u[1] = +1.0
        u *= K.ADVERSARY_ACCEL if self.adversary(i) else K.GOOD_ACCEL
        return u

    def step(self, actions) -> None:
        n, e_n = self.n, self.n + self.nl
        self.rewards = [0.0] * n
        self.terminations = [False] * n
        self.truncations = [False] * n
        self.episode_done = False
        if self.finished:
            return
        # World.step: action forces, then contact forces pair by pair (a < b), then integration
        force: list[Any] = [self.action_force(i, actions[i]) + 0.0 for i in range(n)] + [None] * self.nl
        for a in range(e_n):
            for b in range(e_n):
                if b <= a:
                    continue
                delta = self.entity_pos(a) - self.entity_pos(b)
                dist = np.sqrt(np.sum(np.square(delta)))
                dist_min = self.size(a) + self.size(b)
                penetration = np.logaddexp(0, -(dist - dist_min) / K.CONTACT_MARGIN) * K.CONTACT_MARGIN
                f = K.CONTACT_FORCE * delta / dist * penetration
                if a < n:
                    force[a] = f + force[a]
                if b < n:
                    force[b] = -f + force[b]
        for i in range(n):
            max_speed = K.ADVERSARY_MAX_SPEED if self.adversary(i) else K.GOOD_MAX_SPEED
            self.pos[i] = self.pos[i] + self.vel[i] * K.DT
            v = self.vel[i] * (1 - self.damping)
            v = v + (force[i] / K.MASS) * K.DT
            speed = np.sqrt(np.square(v[0]) + np.square(v[1]))
            if speed > max_speed:
                v = v / np.sqrt(np.square(v[0]) + np.square(v[1])) * max_speed
            self.vel[i] = v
        # rewards: a shared +10 per adversary-good contact; -10 per contact and the bound penalty
        touches = sum(self.collides(g, j) for g in range(self.na, n) for j in range(self.na))
        for i in range(n):
            if self.adversary(i):
                rew = 10 * touches
            else:
                rew = -10 * sum(self.collides(j, i) for j in range(self.na))
                for d in range(2):
                    rew -= bound(abs(self.pos[i][d]))
            self.rewards[i] = float(rew)
            self.ep_return[i] += float(rew)
        self.ep_touches += touches
        self.step_count += 1
        if self.step_count < self.options["max_cycles"]:
            return
        self.truncations = [True] * n
        self.episode_done = True
        self.length = self.step_count
        self.winner = 0 if self.ep_touches > 0 else 1
        self.stats = [[sum(self.ep_return[:self.na]) / self.na, self.ep_touches],
                      [sum(self.ep_return[self.na:]) / self.ng, self.ep_touches]]
        if self.auto_reset:
            self.reset()
        else:
            self.finished = True

    # -- what the agents see -----------------------------------------------------------------------
    def active(self) -> list[bool]:
        return [not self.finished] * self.n

    def observations(self) -> np.ndarray:
        """``(A, adversary obs length)`` float32, good agents' rows zero-padded."""
        width = obs_sizes(self.ng, self.na, self.nl)[0]
        out = np.zeros((self.n, width), dtype=np.float32)
        for i in range(self.n):
            parts = [self.vel[i], self.pos[i]]
            parts += [lm - self.pos[i] for lm in self.landmarks]
            parts += [self.pos[j] - self.pos[i] for j in range(self.n) if j != i]
            parts += [self.vel[j] for j in range(self.n) if j != i and not self.adversary(j)]
            o = np.concatenate(parts).astype(np.float32)
            out[i, :o.shape[0]] = o
        return out


def bound(x: float) -> float:
    """mpe2's penalty for a good agent at ``|coordinate| = x``."""
    if x < 0.9:
        return 0
    if x < 1.0:
        return (x - 0.9) * 10
    return min(np.exp(2 * x - 2), 10)
