"""Validating what an agent returns, and ``check_agent``: run it on your own agent before a match.

    from agents.check import check_agent
    check_agent(MyBot(), "connect4")      # raises AssertionError saying what to fix, or returns quietly

An agent answers ``act(obs, mask)`` with one action per row: ``(B,)`` integers for a ``Discrete`` action
space, ``(B, K)`` numbers for a continuous ``Box(..., (K,))`` one (``validate_actions`` says what counts
as a fault for each).
"""
from __future__ import annotations

import gymnasium
import numba as nb
import numpy as np


class AgentFault(Exception):
    """An agent's whole answer is unusable (it raised, or returned the wrong shape or dtype)."""


def describe(exc: BaseException) -> str:
    """One line for an exception an agent raised: its type, message and innermost ``file.py:LINE in func``."""
    import os
    import traceback

    tb = traceback.extract_tb(exc.__traceback__)
    at = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno} in {tb[-1].name})" if tb else ""
    return f"raised {type(exc).__name__}: {exc}{at}"


def neutral_action(space: gymnasium.spaces.Box) -> np.ndarray:
    """The stand-in for a faulty row of a continuous action space: zeros clipped into the Box, in its
    dtype (in ``tag``, no force at all)."""
    return np.clip(np.zeros(space.shape), space.low, space.high).astype(space.dtype)


def validate_actions(out, mask: np.ndarray, space: gymnasium.spaces.Space | None = None
                     ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Check an agent's answer for ``mask`` (``(B, num_actions)``) in the action space ``space``
    (``None`` or a ``Discrete``: the discrete rules; a 1-D ``Box``: the continuous ones).

    Discrete: returns ``(actions, bad)``, ``actions`` as int64 ``(B,)`` and ``bad`` mapping a reason to
    the boolean rows it concerns (NaN, fractional, out of range, masked action). Raises ``AgentFault``
    when the answer as a whole is unusable (not an array of B numbers, or a non-numeric dtype).

    Continuous (``Box(low, high, (K,))``): the answer must be ``(B, K)`` numbers (integers or floats);
    ``actions`` comes back in the Box's dtype, and a row with NaN or infinity (in that dtype: a float64
    beyond float32's range counts) is bad, and set to ``neutral_action(space)`` in ``actions``. Values
    outside the Box are allowed: how the game treats them (``tag`` clips them) is part of its rules.
    The mask is not read (it marks the components a seat uses).
    """
    if isinstance(space, gymnasium.spaces.Box):
        return _validate_continuous(out, mask.shape[0], space)
    rows, num_actions = mask.shape
    arr = _numbers(out, "actions must be integers")
    if arr.shape != (rows,):
        raise AgentFault(f"returned shape {arr.shape}; expected ({rows},), one action per row")
    bad: dict[str, np.ndarray] = {}
    if arr.dtype.kind == "f":
        nan = ~np.isfinite(arr)
        if nan.any():
            bad["returned NaN or infinity"] = nan
        whole = np.isfinite(arr) & (arr != np.floor(arr))
        if whole.any():
            bad["returned a fractional action"] = whole
        arr = np.where(np.isfinite(arr) & ~whole, arr, -1).astype(np.int64)
    else:
        arr = arr.astype(np.int64, copy=False)
    out_of_range = (arr < 0) | (arr >= num_actions)
    for rows_bad in bad.values():
        out_of_range &= ~rows_bad
    if out_of_range.any():
        bad[f"returned an action out of range 0..{num_actions - 1}"] = out_of_range
    safe = np.where((arr >= 0) & (arr < num_actions), arr, 0)
    illegal = (mask[np.arange(rows), safe] == 0)
    for rows_bad in bad.values():
        illegal &= ~rows_bad
    if illegal.any():
        bad["chose a masked (illegal) action"] = illegal
    return arr, bad


@nb.njit(cache=True, parallel=True)
def _legal_into_nb(actions, mask_flat, rows, dest):
    bad = 0
    for i in nb.prange(rows.size):
        a, r = actions[i], rows[i]
        if a < 0 or a >= mask_flat.shape[1] or mask_flat[r, a] == 0:
            bad += 1
        else:
            dest[r] = a
    return bad


def legal_into(out, mask_flat: np.ndarray, rows: np.ndarray, dest: np.ndarray) -> bool:
    """The fast path of ``validate_actions`` for a discrete game: when ``out`` is ``(rows.size,)`` integers
    and every one is a legal action of its row (``mask_flat[rows[i]]``), write them to ``dest[rows]`` and
    return True, in one parallel pass. Otherwise return False having written some rows: the caller then
    validates the answer the slow way, which says what is wrong and rewrites every row."""
    if not isinstance(out, np.ndarray) or out.shape != rows.shape or out.dtype.kind not in "iu" \
            or out.dtype.itemsize > 8 or (out.dtype.kind == "u" and out.dtype.itemsize == 8):
        return False
    return _legal_into_nb(out.astype(np.int64, copy=False), mask_flat, rows.astype(np.int64, copy=False),
                          dest) == 0


def _numbers(out, expected: str) -> np.ndarray:
    """``out`` as an array of numbers, or ``AgentFault`` (``expected`` says what was wanted)."""
    try:
        arr = np.asarray(out)
    except Exception as exc:  # e.g. a ragged list
        raise AgentFault(f"returned something that is not an array ({type(out).__name__}: {exc})") from None
    if arr.dtype == object or arr.dtype.kind not in "iuf":
        raise AgentFault(f"returned dtype {arr.dtype}; {expected}")
    return arr


def _validate_continuous(out, rows: int, space: gymnasium.spaces.Box) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    k = int(space.shape[0])
    arr = _numbers(out, f"continuous actions must be numbers ({space.dtype})")
    if arr.shape != (rows, k):
        raise AgentFault(f"returned shape {arr.shape}; expected ({rows}, {k}), one action vector per row")
    with np.errstate(over="ignore", invalid="ignore"):
        arr = arr.astype(space.dtype)
    bad: dict[str, np.ndarray] = {}
    broken = ~np.isfinite(arr).all(axis=1)
    if broken.any():
        bad[f"returned NaN or infinity (in {space.dtype})"] = broken
        arr[broken] = neutral_action(space)
    return arr, bad


def check_agent(agent, arena, num_matches: int = 64, steps: int = 60, seed: int = 0) -> None:
    """Play ``agent`` against itself on ``arena`` (a name or a ``BatchedGame``) and check every answer.

    The agent is asked as a runner asks it: all active rows at once, or, where teams see different
    observation spaces (``tag``), one team's rows at a time cut to that team's space
    (``simcore.game``). Raises ``AssertionError`` with what to fix: exceptions from ``act`` (with their
    traceback), wrong shapes or dtypes, NaN, out-of-range or illegal actions.
    """
    import traceback

    if isinstance(arena, str):
        import arenas
        game = arenas.make(arena, num_matches=num_matches, seed=seed)
    else:
        game = arena
        game.reset(seed=seed)
    who = f"agent {getattr(agent, 'name', type(agent).__name__)!r} on {game.name!r}"
    assert hasattr(agent, "act") and callable(agent.act), f"{who}: an agent needs an act(obs, mask) method"
    if hasattr(agent, "reset"):
        agent.reset(seed)
    obs_flat = game.obs.reshape((-1,) + game.obs_shape)
    mask_flat = game.action_mask.reshape(obs_flat.shape[0], -1)
    actions = game.actions.reshape((obs_flat.shape[0],) + game.action_shape)
    space = game.single_action_space
    if any(sp.shape != game.obs_shape for sp in game.team_observation_spaces):
        seat_team = np.tile(game.seat_team, game.num_matches)
        asks = [(f" (team {t}'s rows)", seat_team == t, (slice(None),) + game.team_obs_index(t))
                for t in range(game.num_teams)]
    else:
        asks = [("", None, (slice(None),))]
    for step in range(steps):
        active = game.active.reshape(-1)
        for where, seats, index in asks:
            rows = np.flatnonzero(active if seats is None else active & seats)
            if rows.size == 0:
                continue
            obs, mask = np.ascontiguousarray(obs_flat[rows][index]), mask_flat[rows]
            try:
                out = agent.act(obs, mask)
            except Exception:
                raise AssertionError(f"{who}: act raised at step {step}{where}:\n{traceback.format_exc()}") from None
            try:
                arr, bad = validate_actions(out, mask, space)
            except AgentFault as exc:
                raise AssertionError(f"{who}: act {exc} at step {step}{where} (obs {obs.shape} {obs.dtype})") from None
            for reason, rows_bad in bad.items():
                i = int(np.flatnonzero(rows_bad)[0])
                raise AssertionError(f"{who}: act {reason} at step {step}{where}: row {i} got {out[i]!r} "
                                     f"with mask {mask[i].tolist()}")
            actions[rows] = arr
        game.step(game.actions)
