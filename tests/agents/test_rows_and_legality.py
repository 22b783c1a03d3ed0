"""The runner's two hot-path helpers around agents: gathering the rows an agent answers for
(``simcore.rows.take_rows`` is ``np.take(src, rows, axis=0)``) and storing an all-legal answer in one pass
(``agents.check.legal_into``; anything else goes to the slow validation, which names the fault)."""
import numpy as np
import pytest

from agents.check import legal_into, validate_actions
from simcore.rows import take_rows



@pytest.mark.parametrize("shape, dtype", [((5000, 7, 7, 4), np.uint8), ((5000, 16), np.float32),
                                          ((5000, 9), np.int8), ((300, 3), np.int64)])
def test_take_rows_equals_numpys_take(shape, dtype):
    rng = np.random.default_rng(0)
    src = rng.integers(0, 100, size=shape).astype(dtype)
    rows = np.sort(rng.choice(shape[0], size=shape[0] // 2, replace=False)).astype(np.int64)
    out = np.empty((rows.size,) + shape[1:], dtype)
    assert take_rows(src, rows, out) is out
    np.testing.assert_array_equal(out, np.take(src, rows, axis=0))
    np.testing.assert_array_equal(take_rows(src, rows[::-1].copy()), src[rows[::-1]])



def _case(n=4096, k=7, seed=0):
    rng = np.random.default_rng(seed)
    mask = (rng.random((2 * n, k)) < 0.6).astype(np.int8)
    mask[:, 3] = 1
    rows = np.sort(rng.choice(2 * n, size=n, replace=False)).astype(np.int64)
    legal = np.array([rng.choice(np.flatnonzero(mask[r])) for r in rows], dtype=np.int64)
    return mask, rows, legal


def test_an_all_legal_answer_is_stored_in_one_pass():
    mask, rows, legal = _case()
    dest = np.full(mask.shape[0], -1, np.int64)
    assert legal_into(legal, mask, rows, dest)
    np.testing.assert_array_equal(dest[rows], legal)
    assert (np.delete(dest, rows) == -1).all(), "only the answer's rows are written"
    actions, bad = validate_actions(legal, mask[rows])
    assert not bad and np.array_equal(actions, legal)
    assert legal_into(legal.astype(np.int32), mask, rows, dest), "any integer dtype"


def test_anything_else_goes_to_the_slow_path():
    mask, rows, legal = _case()
    dest = np.zeros(mask.shape[0], np.int64)
    illegal = legal.copy()
    illegal[5] = int(np.flatnonzero(mask[rows[5]] == 0)[0]) if (mask[rows[5]] == 0).any() else 99
    assert not legal_into(illegal, mask, rows, dest)
    out_of_range = legal.copy()
    out_of_range[0] = -1
    assert not legal_into(out_of_range, mask, rows, dest)
    assert not legal_into(legal.astype(np.float64), mask, rows, dest)      # floats: validated the slow way
    assert not legal_into(legal[:-1], mask, rows, dest)                     # wrong length
    assert not legal_into(legal.astype(np.uint64), mask, rows, dest)        # could wrap
    assert not legal_into(list(legal), mask, rows, dest)                    # not an array
