import numba as nb
import numpy as np
from hypothesis import given, settings, strategies as st

from simcore.rng import rand_below, rand_float, seed_states


@nb.njit(cache=True)
def _draw(states, n, k):
    out = np.empty((states.shape[0], k), dtype=np.int64)
    for m in range(states.shape[0]):
        for i in range(k):
            out[m, i] = rand_below(states, m, n)
    return out


@nb.njit(cache=True, parallel=True)
def _draw_parallel(states, n, k):
    out = np.empty((states.shape[0], k), dtype=np.int64)
    for m in nb.prange(states.shape[0]):
        for i in range(k):
            out[m, i] = rand_below(states, m, n)
    return out


@nb.njit(cache=True)
def _floats(states, k):
    out = np.empty(k)
    for i in range(k):
        out[i] = rand_float(states, 0)
    return out


def test_same_seed_same_streams_and_matches_differ():
    a, b = seed_states(7, 64), seed_states(7, 64)
    assert (a == b).all()
    assert len(np.unique(a)) == 64, "every match must get its own stream"
    assert not (seed_states(8, 64) == a).any()
    assert (_draw(a, 10, 50) == _draw(b, 10, 50)).all()


def test_streams_do_not_depend_on_thread_count():
    serial = _draw(seed_states(3, 257), 1000, 40)
    for threads in (1, nb.config.NUMBA_NUM_THREADS):
        nb.set_num_threads(threads)
        assert (_draw_parallel(seed_states(3, 257), 1000, 40) == serial).all()
    nb.set_num_threads(nb.config.NUMBA_NUM_THREADS)


def test_rand_below_is_roughly_uniform():
    counts = np.bincount(_draw(seed_states(11, 100), 7, 700).ravel(), minlength=7)
    expected = 70000 / 7
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 30, f"chi-square {chi2} over 6 degrees of freedom is far from uniform: {counts}"


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), n=st.integers(1, 2**32 - 1))
def test_rand_below_stays_in_range(seed, n):
    d = _draw(seed_states(seed, 4), n, 16)
    assert (d >= 0).all() and (d < n).all()
    f = _floats(seed_states(seed, 1), 16)
    assert (f >= 0).all() and (f < 1).all()
