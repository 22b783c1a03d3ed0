"""``Battle``: the batched grid team battle (rules in the package docstring, kernels in ``nb.py``)."""
from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from simcore.game import BatchedGame
from simcore.options import check_float, check_int

from . import nb as K

DEFAULTS: dict[str, Any] = {
    "team_size": 8,
    "map_size": 32,
    "walls": True,
    "view": 7,
    "obs_dtype": "uint8",
    "max_hp": 10,
    "damage": 2,
    "damage_reward": 0.1,
    "kill_reward": 1.0,
    "max_steps": 200,
    "timeout_winner": "survivors",
}


def wall_pattern(map_size: int, walls: bool = True) -> np.ndarray:
    """The fixed interior walls, ``(map_size, map_size)`` bool, mirror-symmetric left/right.

    Four short vertical segments (two per half, mirrored top/bottom) and a 2x2 block at the centre,
    all outside the spawn quarters (3x3 centre block on odd sizes). ``walls=False`` gives an open map
    (the border still walls it in).
    """
    s = map_size
    w = np.zeros((s, s), dtype=bool)
    if not walls:
        return w
    q, e = s // 4, max(1, s // 8)
    col = q + e
    for c in (col, s - 1 - col):
        w[q:q + e, c] = True
        w[s - q - e:s - q, c] = True
    lo, hi = s // 2 - 1, s - s // 2  # the centre 2x2 (3x3 on odd sizes), symmetric both ways
    w[lo:hi + 1, lo:hi + 1] = True
    return w






def validate_options(options: dict[str, Any]) -> dict[str, Any]:
    """Fill in defaults and check every option; raises ``ValueError`` naming the bad one."""
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown battle option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    o = {**DEFAULTS, **options}
    o["team_size"] = check_int("battle", "team_size", o["team_size"], 1, 64)
    o["map_size"] = check_int("battle", "map_size", o["map_size"], 8, 256)
    o["view"] = check_int("battle", "view", o["view"], 3, 15)
    if o["view"] % 2 == 0:
        raise ValueError(f"battle option view must be odd (the agent sits at the centre), got {o['view']}")
    if o["obs_dtype"] not in ("uint8", "float32"):
        raise ValueError(f"battle option obs_dtype must be 'uint8' or 'float32', got {o['obs_dtype']!r}")
    o["max_hp"] = check_int("battle", "max_hp", o["max_hp"], 1, 255)
    o["damage"] = check_int("battle", "damage", o["damage"], 1, 255)
    o["damage_reward"] = check_float("battle", "damage_reward", o["damage_reward"])
    o["kill_reward"] = check_float("battle", "kill_reward", o["kill_reward"])
    o["max_steps"] = check_int("battle", "max_steps", o["max_steps"], 1, 2**31 - 1)
    if o["timeout_winner"] not in ("survivors", "draw"):
        raise ValueError(f"battle option timeout_winner must be 'survivors' or 'draw', got {o['timeout_winner']!r}")
    if not isinstance(o["walls"], (bool, np.bool_)):
        raise ValueError(f"battle option walls must be True or False, got {o['walls']!r}")
    o["walls"] = bool(o["walls"])
    s = o["map_size"]
    fit = s * (s // 4) // 2
    if o["team_size"] > fit:
        raise ValueError(f"battle option team_size={o['team_size']} does not fit map_size={s}: a team spawns "
                         f"in the leftmost quarter ({s}x{s // 4} cells) and may fill at most half of it "
                         f"(team_size <= {fit})")
    return o


class Battle(BatchedGame):
    """Grid team battle: red vs blue, move and attack adjacent cells, last team standing wins.

    The rules and options are in the ``arenas.battle`` docstring; the buffers are those of
    ``simcore.BatchedGame``. With ``auto_reset=False`` a match that ends keeps its final state and
    observations, its seats turn inactive (mask: stay only), and later steps report nothing for it
    (rewards 0, no terminations, truncations or ``episode_done``) until ``reset()``.
    """

    name = "battle"
    stat_names = ("kills", "survivors")
    turn_based = False

    def __init__(self, num_matches: int = 1, *, auto_reset: bool = True, **game_options: Any):
        o = validate_options(game_options)
        self.options = o
        self.auto_reset = bool(auto_reset)
        k, s, v = o["team_size"], o["map_size"], o["view"]
        a = 2 * k
        self.team_size, self.map_size, self.view = k, s, v
        self.pad = v // 2
        dtype = np.dtype(o["obs_dtype"])
        high = np.ones((v, v, 4), dtype=dtype)
        if dtype == np.uint8:
            high[..., 3] = o["max_hp"]
        obs_space = gymnasium.spaces.Box(low=np.zeros_like(high), high=high, dtype=dtype)
        self._allocate(num_matches, a, np.repeat(np.arange(2), k), obs_space, K.NUM_ACTIONS)
        n, p = self.num_matches, s + 2 * self.pad

        self.walls = wall_pattern(s, o["walls"])
        self.wall_grid = np.full((p, p), K.WALL, dtype=np.uint8)
        self.wall_grid[self.pad:self.pad + s, self.pad:self.pad + s] = np.where(self.walls, K.WALL, K.EMPTY)
        q = s // 4
        rows, cols = np.nonzero(~self.walls[:, :q])
        self.spawn_cells = np.stack([rows, cols], axis=1).astype(np.int32)

        # state; grid: the padded map of cell codes (see nb.py), walls and agents
        self.grid = np.zeros((n, p, p), dtype=np.uint8)
        self.pos = np.zeros((n, a, 2), dtype=np.int32)
        self.hp = np.zeros((n, a), dtype=np.int32)
        self.last_attack = np.full((n, a), -1, dtype=np.int8)
        self.finished = np.zeros(n, dtype=np.bool_)
        self._hit_target = np.zeros((n, a), dtype=np.int32)
        self._damage_taken = np.zeros((n, a), dtype=np.int32)

        # table[m, viewer team, cell code] = the 4 channels seen in such a cell; only hp changes later
        self._table = np.zeros((n, 2, K.AGENT0 + a, 4), dtype=dtype)
        self._table[:, :, K.WALL, 0] = 1
        ally = self.seat_team[None, :] == np.arange(2)[:, None]
        self._table[:, :, K.AGENT0:, 1] = ally
        self._table[:, :, K.AGENT0:, 2] = ~ally
        if dtype == np.uint8:  # one uint32 word per cell: the window copy moves 4 channels at once
            self._table_words = self._table.view(np.uint32)
            self._obs_out = self.obs.view(np.uint32)
            self._hp_scale = 1.0
        else:
            self._table_words = self._table
            self._obs_out = self.obs
            self._hp_scale = 1.0 / o["max_hp"]
        # the kernels see the grid flattened per match and the obs as (N, A, view * view, words)
        self._size = p
        self._grid_flat = self.grid.reshape(n, p * p)
        self._wall_flat = self.wall_grid.reshape(p * p)
        self._obs_out = self._obs_out.reshape(n, a, v * v, -1)
        dy, dx = np.divmod(np.arange(v * v), v)
        self._window = (dy * p + dx).astype(np.int64)  # window cell k -> offset in the flat padded grid
        self._timeout_survivors = o["timeout_winner"] == "survivors"
        self.reset(seed=0)

    def _reset_all(self) -> None:
        K.reset_all_nb(self.rng_states, self.match_rng, self._wall_flat, self.spawn_cells, self._grid_flat, self.pos, self.hp,
                       self.last_attack, self.seat_team, self._table, self._table_words, self._obs_out,
                       self.action_mask, self.active, self.step_count, self.finished,
                       self.map_size, self.pad, self._size, self._window, self.options["max_hp"], self._hp_scale)

    def _step(self) -> None:
        o = self.options
        K.step_nb(self.actions, self.rng_states, self.match_rng, self._wall_flat, self.spawn_cells, self._grid_flat, self.pos,
                  self.hp, self.last_attack, self.seat_team, self._table, self._table_words, self._obs_out,
                  self.action_mask, self.active, self._hit_target, self._damage_taken,
                  self.rewards, self.terminations, self.truncations, self.episode_done, self.episode_winner,
                  self.episode_length, self.episode_stats, self.step_count, self.finished,
                  self.map_size, self.pad, self._size, self._window, o["max_hp"], self._hp_scale, o["damage"],
                  o["damage_reward"], o["kill_reward"], o["max_steps"], self._timeout_survivors, self.auto_reset)

    def _reset_some(self, which: np.ndarray) -> None:
        K.reset_some_nb(which, self.rng_states, self.match_rng, self._wall_flat, self.spawn_cells, self._grid_flat,
                        self.pos, self.hp, self.last_attack, self.seat_team, self._table, self._table_words,
                        self._obs_out, self.action_mask, self.active, self.step_count, self.finished,
                        self.rewards, self.terminations, self.truncations, self.map_size, self.pad, self._size,
                        self._window, self.options["max_hp"], self._hp_scale)

    def snapshot(self, match: int) -> dict[str, Any]:
        """Copy of match ``match``: positions ``(row, col)``, hp, alive, team, walls, last attack, step."""
        m = int(match)
        return {
            "pos": self.pos[m].astype(np.int64),
            "hp": self.hp[m].astype(np.int64),
            "alive": self.hp[m] > 0,
            "team": self.seat_team.copy(),
            "walls": self.walls.copy(),
            "last_attack": self.last_attack[m].astype(np.int64),
            "step": int(self.step_count[m]),
        }
