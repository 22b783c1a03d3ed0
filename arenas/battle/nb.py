"""Numba kernels of the battle arena (arrays and scalars in, no Python objects).

State of match ``m`` (allocated by ``game.Battle``), with ``pad = view // 2`` and ``P = map_size + 2*pad``:

- ``grid[m]`` ``(P * P,)`` uint8, the flattened padded grid: the map surrounded by ``pad`` rings of
  wall, one code per cell (``EMPTY``, ``WALL`` or ``AGENT0 + seat`` for a live agent). Map cell
  ``(r, c)`` is ``grid[m, (r + pad) * P + c + pad]``, so neither a neighbour nor a view window ever
  needs a bounds check.
- ``pos[m]`` ``(A, 2)`` int32 map coordinates ``(row, col)``; ``hp[m]`` ``(A,)`` int32, alive iff > 0.
- ``last_attack[m]`` ``(A,)`` int8: direction attacked last step (0 up, 1 down, 2 left, 3 right) or -1.

Observations go through a per-match lookup table ``table[m, viewer team, cell code]`` holding the four
channels a viewer of that team sees in a cell of that code; only the hit-point entries change, after
each step's hits. ``table_words`` and ``obs_out`` (``(N, A, view * view, W)``) are the table and the
observation buffer seen as ``W`` words per cell: one uint32 word for uint8 observations (``W == 1``,
four channels at once), the four channels for float32 (``W == 4``). The window copy is then one table
load and one store per cell, and reads only the small uint8 ``grid``.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from simcore.rng import rand_below

EMPTY = 0
WALL = 1
AGENT0 = 2

STAY, UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3, 4
ATTACK_UP = 5  # 5..8: attack up, down, left, right
NUM_ACTIONS = 9

# row / column offsets of the four directions: up, down, left, right
DIR_R = np.array([-1, 1, 0, 0], dtype=np.int64)
DIR_C = np.array([0, 0, -1, 1], dtype=np.int64)


@nb.njit(cache=True)
def set_table_hp_nb(m, hp, table, hp_scale):
    """Write the hit-point channel of every agent's entry in both teams' tables of match ``m``."""
    for j in range(hp.shape[1]):
        v = hp[m, j] * hp_scale
        table[m, 0, AGENT0 + j, 3] = v
        table[m, 1, AGENT0 + j, 3] = v


@nb.njit(cache=True)
def cell_nb(r, c, pad, size):
    """Index in the flattened padded grid of map cell ``(r, c)``."""
    return (r + pad) * size + c + pad


@nb.njit(cache=True)
def write_obs_nb(m, grid, size, pos, hp, team, table_words, obs_out, window):
    """Copy every agent's window of match ``m`` into ``obs_out`` through the table; zeros when dead.

    ``window[k]`` is the offset of window cell ``k`` (row-major) from the window's top-left cell, which
    for an agent on map cell ``(r, c)`` is padded cell ``(r, c)``: index ``r * size + c``.
    """
    words = obs_out.shape[3]
    for i in range(hp.shape[1]):
        out = obs_out[m, i]
        if hp[m, i] <= 0:
            out[:] = 0
            continue
        base = pos[m, i, 0] * size + pos[m, i, 1]
        tab = table_words[m, team[i]]
        if words == 1:
            for k in range(window.shape[0]):
                out[k, 0] = tab[grid[m, base + window[k]], 0]
        else:
            for k in range(window.shape[0]):
                code = grid[m, base + window[k]]
                for w in range(4):
                    out[k, w] = tab[code, w]


@nb.njit(cache=True)
def reset_match_nb(m, rng_states, match_rng, wall_grid, spawn_cells, grid, pos, hp, last_attack,
                   team, table, table_words, obs_out, action_mask, active, step_count, finished,
                   map_size, pad, size, window, max_hp, hp_scale):
    """Start a new match in slot ``m``: fresh grid, spawns drawn from ``rng_states[m]``, full hp, obs.

    ``match_rng[m]`` keeps the stream's state before the draws: a replay restarts the match from it."""
    match_rng[m] = rng_states[m]
    grid[m, :] = wall_grid
    k = hp.shape[1] // 2
    for s in range(k):
        while True:
            cell = rand_below(rng_states, m, spawn_cells.shape[0])
            r = spawn_cells[cell, 0]
            c = spawn_cells[cell, 1]
            if grid[m, cell_nb(r, c, pad, size)] == EMPTY:
                break
        mc = map_size - 1 - c
        pos[m, s, 0] = r
        pos[m, s, 1] = c
        pos[m, k + s, 0] = r
        pos[m, k + s, 1] = mc
        grid[m, cell_nb(r, c, pad, size)] = AGENT0 + s
        grid[m, cell_nb(r, mc, pad, size)] = AGENT0 + k + s
    for i in range(hp.shape[1]):
        hp[m, i] = max_hp
        last_attack[m, i] = -1
        active[m, i] = True
        for a in range(action_mask.shape[2]):
            action_mask[m, i, a] = 1
    step_count[m] = 0
    finished[m] = False
    set_table_hp_nb(m, hp, table, hp_scale)
    write_obs_nb(m, grid, size, pos, hp, team, table_words, obs_out, window)


@nb.njit(cache=True, parallel=True)
def reset_all_nb(rng_states, match_rng, wall_grid, spawn_cells, grid, pos, hp, last_attack, team, table, table_words,
                 obs_out, action_mask, active, step_count, finished, map_size, pad, size, window, max_hp, hp_scale):
    """``reset_match_nb`` for every match."""
    for m in nb.prange(grid.shape[0]):
        reset_match_nb(m, rng_states, match_rng, wall_grid, spawn_cells, grid, pos, hp, last_attack,
                       team, table, table_words, obs_out, action_mask, active, step_count, finished,
                       map_size, pad, size, window, max_hp, hp_scale)


@nb.njit(cache=True)
def reset_some_nb(which, rng_states, match_rng, wall_grid, spawn_cells, grid, pos, hp, last_attack, team, table,
                  table_words, obs_out, action_mask, active, step_count, finished, rewards, terminations,
                  truncations, map_size, pad, size, window, max_hp, hp_scale):
    """``reset_match_nb`` for the matches where ``which`` is True, clearing their rewards and flags."""
    for m in range(grid.shape[0]):
        if which[m]:
            reset_match_nb(m, rng_states, match_rng, wall_grid, spawn_cells, grid, pos, hp, last_attack,
                           team, table, table_words, obs_out, action_mask, active, step_count, finished,
                           map_size, pad, size, window, max_hp, hp_scale)
            for i in range(rewards.shape[1]):
                rewards[m, i] = 0.0
                terminations[m, i] = False
                truncations[m, i] = False


@nb.njit(cache=True, parallel=True)
def step_nb(actions, rng_states, match_rng, wall_grid, spawn_cells, grid, pos, hp, last_attack,
            team, table, table_words, obs_out, action_mask, active, hit_target, damage_taken,
            rewards, terminations, truncations, episode_done, episode_winner, episode_length,
            episode_stats, step_count, finished,
            map_size, pad, size, window, max_hp, hp_scale, damage, damage_reward, kill_reward, max_steps,
            timeout_survivors, auto_reset):
    """One step of every match: attacks, deaths, moves, the ending rule, auto-reset, observations."""
    n_agents = hp.shape[1]
    k = n_agents // 2
    for m in nb.prange(grid.shape[0]):
        episode_done[m] = False
        for i in range(n_agents):
            rewards[m, i] = 0.0
            terminations[m, i] = False
            truncations[m, i] = False
        if finished[m]:  # ended with auto_reset off: untouched until reset()
            continue

        # (1) attacks, all at once from start-of-step positions
        for i in range(n_agents):
            hit_target[m, i] = -1
            damage_taken[m, i] = 0
        for i in range(n_agents):
            a = actions[m, i]
            if hp[m, i] <= 0 or a < ATTACK_UP or a >= NUM_ACTIONS:
                last_attack[m, i] = -1
                continue
            d = a - ATTACK_UP
            last_attack[m, i] = d
            code = grid[m, cell_nb(pos[m, i, 0] + DIR_R[d], pos[m, i, 1] + DIR_C[d], pad, size)]
            if code >= AGENT0:
                j = code - AGENT0
                if team[j] != team[i]:
                    hit_target[m, i] = j
                    damage_taken[m, j] += damage
                    rewards[m, i] += damage_reward * min(damage, hp[m, j])

        # (2) deaths
        for j in range(n_agents):
            if damage_taken[m, j] > 0:
                h = hp[m, j] - damage_taken[m, j]
                if h > 0:
                    hp[m, j] = h
                else:
                    hp[m, j] = 0
                    grid[m, cell_nb(pos[m, j, 0], pos[m, j, 1], pad, size)] = EMPTY
                    terminations[m, j] = True
                    active[m, j] = False
                    action_mask[m, j, 0] = 1
                    for a in range(1, action_mask.shape[2]):
                        action_mask[m, j, a] = 0
        for i in range(n_agents):
            j = hit_target[m, i]
            if j >= 0 and hp[m, j] == 0:
                rewards[m, i] += kill_reward

        # (3) moves, one agent at a time in a rotating order
        start = rand_below(rng_states, m, n_agents)
        for o in range(n_agents):
            i = start + o
            if i >= n_agents:
                i -= n_agents
            a = actions[m, i]
            if hp[m, i] <= 0 or a < UP or a > RIGHT:
                continue
            nr = pos[m, i, 0] + DIR_R[a - UP]
            nc = pos[m, i, 1] + DIR_C[a - UP]
            to = cell_nb(nr, nc, pad, size)
            if grid[m, to] == EMPTY:
                grid[m, to] = AGENT0 + i
                grid[m, cell_nb(pos[m, i, 0], pos[m, i, 1], pad, size)] = EMPTY
                pos[m, i, 0] = nr
                pos[m, i, 1] = nc
        step_count[m] += 1

        # ending
        alive0 = 0
        alive1 = 0
        for i in range(n_agents):
            if hp[m, i] > 0:
                if i < k:
                    alive0 += 1
                else:
                    alive1 += 1
        ended = False
        winner = -1
        if alive0 == 0 or alive1 == 0:
            ended = True
            if alive1 > 0:
                winner = 1
            elif alive0 > 0:
                winner = 0
            for i in range(n_agents):
                terminations[m, i] = True
        elif step_count[m] >= max_steps:
            ended = True
            if timeout_survivors:
                if alive0 > alive1:
                    winner = 0
                elif alive1 > alive0:
                    winner = 1
            for i in range(n_agents):
                truncations[m, i] = True
        if ended:
            episode_done[m] = True
            episode_winner[m] = winner
            episode_length[m] = step_count[m]
            episode_stats[m, 0, 0] = k - alive1  # kills: enemies that died (no friendly fire)
            episode_stats[m, 1, 0] = k - alive0
            episode_stats[m, 0, 1] = alive0      # survivors
            episode_stats[m, 1, 1] = alive1
            if auto_reset:
                reset_match_nb(m, rng_states, match_rng, wall_grid, spawn_cells, grid, pos, hp, last_attack, team,
                               table, table_words, obs_out, action_mask, active, step_count, finished,
                               map_size, pad, size, window, max_hp, hp_scale)
                continue
            finished[m] = True
            for i in range(n_agents):
                active[m, i] = False
                action_mask[m, i, 0] = 1
                for a in range(1, action_mask.shape[2]):
                    action_mask[m, i, a] = 0
        set_table_hp_nb(m, hp, table, hp_scale)
        write_obs_nb(m, grid, size, pos, hp, team, table_words, obs_out, window)
