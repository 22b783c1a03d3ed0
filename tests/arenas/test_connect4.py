"""The batched connect4 engine: the arena contract, the kernel against the plain-Python reference,
auto-reset, determinism across thread counts, and properties of random play."""
from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import arenas
from arenas.connect4 import SPEC, Connect4
from arenas.connect4 import reference as ref
from arenas.connect4.game import SERIAL_BELOW
from simcore.check import check_arena, random_legal_actions


def play(game: Connect4, columns, match_actions=None) -> None:
    """Step ``game`` with every match (or ``match_actions[m]`` per match) playing the given columns."""
    for i, col in enumerate(columns):
        actions = np.full((game.num_matches, 2), col, dtype=np.int64)
        if match_actions is not None:
            for m, seq in match_actions.items():
                actions[m] = seq[i]
        game.step(actions)


def test_check_arena():
    check_arena(Connect4(num_matches=64))


def test_registry_and_options():
    assert SPEC.name == "connect4" and SPEC.game is Connect4
    game = arenas.make("connect4", num_matches=8, seed=0)
    assert isinstance(game, Connect4) and game.num_matches == 8
    assert game.num_agents == 2 and game.num_teams == 2 and list(game.seat_team) == [0, 1]
    assert game.turn_based and game.name == "connect4" and game.stat_names == ()
    assert game.obs.shape == (8, 2, 6, 7, 2) and game.obs.dtype == np.int8
    assert game.action_mask.shape == (8, 2, 7) and game.num_actions == 7
    with pytest.raises(ValueError, match="width"):
        Connect4(num_matches=2, width=9)
    with pytest.raises(ValueError, match="num_matches"):
        Connect4(num_matches=0)


def test_fresh_match():
    game = Connect4(num_matches=3)
    game.reset(seed=1)
    assert not game.obs.any()
    assert (game.action_mask[:, 0] == 1).all() and (game.action_mask[:, 1] == 0).all()
    assert game.active[:, 0].all() and not game.active[:, 1].any()
    snap = game.snapshot(2)
    assert snap["board"].shape == (6, 7) and snap["board"].dtype == np.int8 and not snap["board"].any()
    assert snap["to_move"] == 0 and snap["step"] == 0
    with pytest.raises(IndexError):
        game.snapshot(3)


def test_pieces_fall_and_obs_views():
    game = Connect4(num_matches=1)
    play(game, [3, 3, 4])  # player_0: (5,3), (5,4); player_1: (4,3)
    board = game.snapshot(0)["board"]
    assert board[5, 3] == 1 and board[4, 3] == 2 and board[5, 4] == 1 and (board != 0).sum() == 3
    for seat in range(2):
        obs, mask = ref.observe(board, seat, to_move=1)
        np.testing.assert_array_equal(game.obs[0, seat], obs)
        np.testing.assert_array_equal(game.action_mask[0, seat], mask)
    assert game.obs[0, 1, 4, 3, 0] == 1 and game.obs[0, 1, 5, 3, 1] == 1  # seat 1 sees itself in channel 0
    assert game.active[0].tolist() == [False, True]


def _random_action(rng, board):
    """Mostly a random legal column; now and then an illegal one (a full column, 7 or -1)."""
    legal = ref.legal_columns(board)
    if rng.random() < 0.03:
        full = [c for c in range(7) if c not in legal]
        return int(rng.choice(full + [7, -1]))
    return int(rng.choice(legal))


@pytest.mark.parametrize("seed, n, steps", [(0, 32, 160), (1, SERIAL_BELOW, 40)], ids=["serial", "parallel"])
def test_kernel_matches_reference(seed, n, steps):
    """Random positions (random legal prefixes, reached through auto-reset), stepped by both.

    Small batches run the serial kernel, large ones the threaded one: both are checked."""
    rng = np.random.default_rng(seed)
    game = Connect4(num_matches=n)
    game.reset(seed=seed)
    illegal_seen = 0
    for _ in range(steps):
        before = [game.snapshot(m) for m in range(n)]
        actions = np.zeros((n, 2), dtype=np.int64)
        for m, snap in enumerate(before):
            actions[m, snap["to_move"]] = _random_action(rng, snap["board"])
            actions[m, 1 - snap["to_move"]] = 3  # ignored: not this seat's turn
        game.step(actions)
        for m, snap in enumerate(before):
            a = int(actions[m, snap["to_move"]])
            exp = ref.step(snap["board"], snap["to_move"], a)
            np.testing.assert_array_equal(game.rewards[m], exp["rewards"])
            assert game.episode_done[m] == exp["done"]
            assert game.terminations[m].tolist() == [exp["done"]] * 2
            assert not game.truncations[m].any()
            if exp["done"]:
                illegal_seen += a not in ref.legal_columns(snap["board"])
                assert game.episode_winner[m] == exp["winner"]
                assert game.episode_length[m] == snap["step"] + 1
                board, to_move = np.zeros((6, 7), np.int8), 0  # auto-reset: a fresh match
                assert game.step_count[m] == 0
            else:
                board, to_move = exp["board"], exp["to_move"]
                assert game.step_count[m] == snap["step"] + 1
            got = game.snapshot(m)
            np.testing.assert_array_equal(got["board"], board)
            assert got["to_move"] == to_move
            for seat in range(2):
                obs, mask = ref.observe(board, seat, to_move)
                np.testing.assert_array_equal(game.obs[m, seat], obs)
                np.testing.assert_array_equal(game.action_mask[m, seat], mask)
                assert game.active[m, seat] == (seat == to_move)
    assert illegal_seen > 0  # the illegal branch was exercised


def test_illegal_actions_lose():
    game = Connect4(num_matches=3)
    game.reset(seed=0)
    # match 0 fills column 0 (alternating pieces, no four) then player_0 plays it again;
    # match 1: player_0 plays column 7 at once; match 2: player_0 plays -1 at once
    play(game, [0], match_actions={1: [7], 2: [-1]})
    assert game.episode_done.tolist() == [False, True, True]
    assert game.episode_winner[1:].tolist() == [1, 1] and game.episode_length[1:].tolist() == [1, 1]
    np.testing.assert_array_equal(game.rewards[1:], [[-1, 1], [-1, 1]])
    assert game.terminations[1:].all() and not game.truncations.any()
    play(game, [0, 0, 0, 0, 0, 0])
    assert game.episode_done[0] and game.episode_winner[0] == 1 and game.episode_length[0] == 7
    assert game.rewards[0].tolist() == [-1.0, 1.0]


def test_illegal_action_by_second_player():
    game = Connect4(num_matches=1)
    play(game, [2, 2, 2, 2, 2, 2, 3])  # player_1 to move, column 2 is full
    assert not game.episode_done[0] and game.to_move[0] == 1
    play(game, [2])
    assert game.episode_done[0] and game.episode_winner[0] == 0 and game.rewards[0].tolist() == [1.0, -1.0]


# player_0 wins vertically in column 3 on its 4th piece (step 7)
P0_WINS = [3, 4, 3, 4, 3, 4, 3, 0]
# player_1 wins vertically in column 3 on step 8
P1_WINS = [0, 3, 0, 3, 1, 3, 6, 3]
# nobody wins within 8 steps
NO_WIN = [0, 1, 2, 3, 4, 5, 6, 0]


def test_auto_reset():
    game = Connect4(num_matches=3)
    game.reset(seed=0)
    seqs = {0: P0_WINS, 1: P1_WINS, 2: NO_WIN}
    play(game, range(7), match_actions={m: s[:7] for m, s in seqs.items()})
    assert game.episode_done.tolist() == [True, False, False]
    assert game.episode_winner[0] == 0 and game.episode_length[0] == 7
    assert game.rewards.tolist() == [[1, -1], [0, 0], [0, 0]]
    assert game.terminations.tolist() == [[True, True], [False, False], [False, False]]
    # SAME_STEP: match 0 already shows the first position of its next match
    assert not game.obs[0].any() and game.step_count[0] == 0
    assert game.action_mask[0, 0].tolist() == [1] * 7 and not game.action_mask[0, 1].any()
    assert game.active[0].tolist() == [True, False] and game.snapshot(0)["to_move"] == 0
    assert not game.snapshot(0)["board"].any()
    assert game.step_count[1:].tolist() == [7, 7]

    play(game, [7], match_actions={0: [3], 1: [P1_WINS[7]], 2: [NO_WIN[7]]})
    assert game.episode_done.tolist() == [False, True, False]
    assert game.episode_winner[1] == 1 and game.episode_length[1] == 8
    assert game.rewards.tolist() == [[0, 0], [-1, 1], [0, 0]]
    assert not game.terminations[0].any() and game.terminations[1].all()
    assert game.step_count.tolist() == [1, 0, 8]
    assert game.snapshot(0)["board"][5, 3] == 1


def test_no_auto_reset_freezes_finished_match():
    game = Connect4(num_matches=2, auto_reset=False)
    game.reset(seed=0)
    play(game, range(7), match_actions={0: P0_WINS[:7], 1: NO_WIN[:7]})
    assert game.episode_done.tolist() == [True, False] and game.episode_winner[0] == 0
    final_obs = game.obs[0].copy()
    assert final_obs[0, :, 3, 0].sum() == 4  # the final position is kept
    assert not game.active[0].any() and not game.action_mask[0].any()
    for _ in range(3):
        play(game, [1])
        assert not game.episode_done[0] and game.rewards[0].tolist() == [0, 0]
        assert game.terminations[0].all()
        np.testing.assert_array_equal(game.obs[0], final_obs)
        assert game.step_count[0] == 7
    assert game.step_count[1] == 10
    game.reset(seed=0)
    assert not game.obs.any() and game.active[:, 0].all() and not game.terminations.any()
    assert game.step_count.tolist() == [0, 0]


# a full board without four (found by random play through the reference); the last piece lands on top
DRAW_GAME = [int(c) for c in "341021034560252312626116663135424054003455"]


def test_full_board_draw():
    board, to_move = np.zeros((6, 7), np.int8), 0
    for a in DRAW_GAME[:-1]:
        out = ref.step(board, to_move, a)
        assert not out["done"]
        board, to_move = out["board"], out["to_move"]
    assert ref.step(board, to_move, DRAW_GAME[-1])["winner"] == -1
    game = Connect4(num_matches=1, auto_reset=False)
    play(game, DRAW_GAME[:-1])
    assert not game.episode_done[0] and game.action_mask[0, 1].tolist() == [0, 0, 0, 0, 0, 1, 0]
    play(game, DRAW_GAME[-1:])
    assert game.episode_done[0] and game.episode_winner[0] == -1 and game.episode_length[0] == 42
    assert game.rewards[0].tolist() == [0, 0] and game.terminations[0].all()
    assert (game.snapshot(0)["board"] != 0).all()


def _trace(num_threads: int) -> list[int]:
    old = numba.get_num_threads()
    numba.set_num_threads(num_threads)
    try:
        game = Connect4(num_matches=SERIAL_BELOW + 44)  # the threaded kernel
        game.reset(seed=5)
        rng = np.random.default_rng(5)
        out = []
        for _ in range(150):
            game.step(random_legal_actions(game.action_mask, rng))
            out.append(hash((game.obs.tobytes(), game.rewards.tobytes(), game.episode_winner.tobytes(),
                             game.episode_done.tobytes(), game.step_count.tobytes())))
        return out
    finally:
        numba.set_num_threads(old)


def test_same_seed_same_results_across_thread_counts():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread here")
    assert _trace(1) == _trace(2)


N_PROP = 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), min_size=N_PROP, max_size=N_PROP), min_size=20, max_size=120))
def test_random_action_sequences(columns):
    """Any column sequence (full columns included): one outcome per finished match, consistent boards."""
    game = Connect4(num_matches=N_PROP)
    game.reset(seed=0)
    for row in columns:
        prev_steps = game.step_count.copy()
        game.step(np.repeat(np.asarray(row, dtype=np.int64)[:, None], 2, axis=1))
        for m in range(N_PROP):
            if game.episode_done[m]:
                w = int(game.episode_winner[m])
                assert w in (-1, 0, 1)
                event("a match ended")
                assert game.episode_length[m] == prev_steps[m] + 1
                expected = [0.0, 0.0] if w == -1 else [1.0 if s == w else -1.0 for s in range(2)]
                assert game.rewards[m].tolist() == expected
                assert game.terminations[m].all()
                if w == -1:
                    assert game.episode_length[m] == 42
                assert game.step_count[m] == 0
            else:
                assert game.rewards[m].tolist() == [0, 0] and not game.terminations[m].any()
                assert game.step_count[m] == prev_steps[m] + 1
            board = game.snapshot(m)["board"]
            n0, n1 = int((board == 1).sum()), int((board == 2).sum())
            assert n0 + n1 == game.step_count[m] and n0 - n1 == game.to_move[m]
            occupied = board != 0
            # no floating piece: below an occupied cell every cell is occupied
            assert (occupied[:-1] <= occupied[1:]).all()
            assert game.active[m].sum() == 1 and game.active[m, game.to_move[m]]
            for seat in range(2):
                np.testing.assert_array_equal(game.obs[m, seat, :, :, 0], board == seat + 1)
                np.testing.assert_array_equal(game.obs[m, seat, :, :, 1], board == 2 - seat)
    assert not game.truncations.any()
