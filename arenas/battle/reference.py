"""A plain-Python battle match (no numba), written for clarity: the tests check the kernels against it.

It follows the rules of the package docstring one match at a time, with lists and dicts instead of a
padded grid, and draws from the same splitmix64 stream as ``simcore.rng`` so that a match seeded from
the kernel's state takes the same spawns and move orders.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .game import validate_options, wall_pattern

_MASK64 = (1 << 64) - 1
DIRS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class SplitMix:
    """``simcore.rng`` for one match, in Python integers."""

    def __init__(self, state: int):
        self.state = int(state) & _MASK64

    def below(self, n: int) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        return ((_mix64(self.state) >> 32) * n) >> 32


@dataclass
class RefMatch:
    """One match: options, state, and the outputs of the last step."""

    options: dict[str, Any]
    rng: SplitMix
    auto_reset: bool = True
    pos: list[list[int]] = field(default_factory=list)
    hp: list[int] = field(default_factory=list)
    last_attack: list[int] = field(default_factory=list)
    step_count: int = 0
    finished: bool = False
    # outputs of the last step
    rewards: list[float] = field(default_factory=list)
    terminations: list[bool] = field(default_factory=list)
    truncations: list[bool] = field(default_factory=list)
    episode_done: bool = False
    winner: int = -1
    length: int = 0
    stats: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.options = validate_options(self.options)
        o = self.options
        self.k = o["team_size"]
        self.n = 2 * self.k
        self.size = o["map_size"]
        self.walls = wall_pattern(self.size, o["walls"]).tolist()
        q = self.size // 4
        self.spawn_cells = [(r, c) for r in range(self.size) for c in range(q) if not self.walls[r][c]]

    def team(self, i: int) -> int:
        return 0 if i < self.k else 1

    def alive(self, i: int) -> bool:
        return self.hp[i] > 0

    def agent_at(self, r: int, c: int) -> int | None:
        """The live agent on cell ``(r, c)``, or None."""
        return self.occupants().get((r, c))

    def occupants(self) -> dict[tuple[int, int], int]:
        return {(self.pos[i][0], self.pos[i][1]): i for i in range(self.n) if self.alive(i)}

    def blocked(self, r: int, c: int) -> bool:
        off_map = not (0 <= r < self.size and 0 <= c < self.size)
        return off_map or self.walls[r][c] or self.agent_at(r, c) is not None

    # -- rules -------------------------------------------------------------------------------------
    def reset(self) -> None:
        taken: set[tuple[int, int]] = set()
        red, blue = [], []
        for _ in range(self.k):
            while True:
                cell = self.spawn_cells[self.rng.below(len(self.spawn_cells))]
                if cell not in taken:
                    break
            taken.add(cell)
            red.append([cell[0], cell[1]])
            blue.append([cell[0], self.size - 1 - cell[1]])
        self.pos = red + blue
        self.hp = [self.options["max_hp"]] * self.n
        self.last_attack = [-1] * self.n
        self.step_count = 0
        self.finished = False

    def step(self, actions) -> None:
        o = self.options
        n = self.n
        self.rewards = [0.0] * n
        self.terminations = [False] * n
        self.truncations = [False] * n
        self.episode_done = False
        if self.finished:
            return
        acts = [int(a) if 0 <= int(a) <= 8 else 0 for a in actions]
        hp0 = list(self.hp)
        # (1) attacks from start-of-step positions
        hits: dict[int, int] = {}
        for i in range(n):
            self.last_attack[i] = -1
            if hp0[i] <= 0 or acts[i] < 5:
                continue
            d = acts[i] - 5
            self.last_attack[i] = d
            r, c = self.pos[i][0] + DIRS[d][0], self.pos[i][1] + DIRS[d][1]
            j = self.agent_at(r, c)
            if j is not None and self.team(j) != self.team(i):
                hits[i] = j
                self.rewards[i] += o["damage_reward"] * min(o["damage"], hp0[j])
        # (2) deaths
        for i, j in hits.items():
            self.hp[j] -= o["damage"]
        for j in range(n):
            if hp0[j] > 0 and self.hp[j] <= 0:
                self.hp[j] = 0
                self.terminations[j] = True
        for i, j in hits.items():
            if self.hp[j] == 0:
                self.rewards[i] += o["kill_reward"]
        # (3) moves in rotating order
        start = self.rng.below(n)
        for i in [(start + t) % n for t in range(n)]:
            if self.alive(i) and 1 <= acts[i] <= 4:
                dr, dc = DIRS[acts[i] - 1]
                r, c = self.pos[i][0] + dr, self.pos[i][1] + dc
                if not self.blocked(r, c):
                    self.pos[i] = [r, c]
        self.step_count += 1
        # ending
        alive = [sum(self.alive(i) for i in range(n) if self.team(i) == t) for t in (0, 1)]
        if min(alive) == 0:
            self.winner = 0 if alive[0] else (1 if alive[1] else -1)
            self.terminations = [True] * n
        elif self.step_count >= o["max_steps"]:
            self.winner = -1
            if o["timeout_winner"] == "survivors" and alive[0] != alive[1]:
                self.winner = 0 if alive[0] > alive[1] else 1
            self.truncations = [True] * n
        else:
            return
        self.episode_done = True
        self.length = self.step_count
        self.stats = [[self.k - alive[1], alive[0]], [self.k - alive[0], alive[1]]]
        if self.auto_reset:
            self.reset()
        else:
            self.finished = True

    # -- what the agents see -----------------------------------------------------------------------
    def active(self) -> list[bool]:
        return [self.alive(i) and not self.finished for i in range(self.n)]

    def action_mask(self) -> np.ndarray:
        mask = np.zeros((self.n, 9), dtype=np.int8)
        mask[:, 0] = 1
        for i, act in enumerate(self.active()):
            if act:
                mask[i, :] = 1
        return mask

    def observations(self) -> np.ndarray:
        o = self.options
        v, p = o["view"], o["view"] // 2
        dtype = np.dtype(o["obs_dtype"])
        obs = np.zeros((self.n, v, v, 4), dtype=dtype)
        occupants = self.occupants()
        for i in range(self.n):
            if not self.alive(i):
                continue
            for dy in range(v):
                for dx in range(v):
                    r, c = self.pos[i][0] - p + dy, self.pos[i][1] - p + dx
                    if not (0 <= r < self.size and 0 <= c < self.size) or self.walls[r][c]:
                        obs[i, dy, dx, 0] = 1
                        continue
                    j = occupants.get((r, c))
                    if j is None:
                        continue
                    obs[i, dy, dx, 1 if self.team(j) == self.team(i) else 2] = 1
                    obs[i, dy, dx, 3] = self.hp[j] if dtype == np.uint8 else self.hp[j] / o["max_hp"]
        return obs
