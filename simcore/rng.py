"""Per-match counter-based random numbers for numba kernels.

Every match owns one ``uint64`` state (splitmix64). A kernel that handles match ``m`` draws only from
``states[m]``, so the numbers a match sees do not depend on how matches are spread over threads: the
same seed gives the same games at 1 thread and at 16.

All functions are ``@njit`` and take the whole ``states`` array plus the match index, so they can be
called from inside ``prange`` loops over matches.
"""
from __future__ import annotations

import numba as nb
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


@nb.njit(cache=True, inline="always")
def mix64(z):
    """The splitmix64 finaliser: a bijective scramble of one uint64."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@nb.njit(cache=True, inline="always")
def next_u64(states, m):
    """Advance match ``m``'s state and return 64 random bits."""
    s = states[m] + _GOLDEN
    states[m] = s
    return mix64(s)


@nb.njit(cache=True, inline="always")
def rand_below(states, m, n):
    """A uniform integer in ``[0, n)`` for match ``m`` (``n`` > 0, below 2**32)."""
    x = next_u64(states, m) >> _S32
    return np.int64((x * np.uint64(n)) >> _S32)


@nb.njit(cache=True, inline="always")
def rand_float(states, m):
    """A uniform float in ``[0, 1)`` for match ``m``."""
    return np.float64(next_u64(states, m) >> _S11) * _INV53


@nb.njit(cache=True)
def seed_states_nb(seed, states):
    """Give every match its own stream: ``states[m] = mix(seed) ^ mix(m + 1)``, scrambled once more."""
    base = mix64(np.uint64(seed) + _GOLDEN)
    for m in range(states.shape[0]):
        states[m] = mix64(base ^ mix64(np.uint64(m + 1) * _GOLDEN))


def seed_states(seed: int, num_matches: int) -> np.ndarray:
    """Return a fresh ``(num_matches,)`` uint64 state array for ``seed`` (any Python int)."""
    states = np.empty(num_matches, dtype=np.uint64)
    seed_states_nb(np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF), states)
    return states
