"""The connect4 greedy agent: hand-made positions, and a batch of games against the random agent."""
from __future__ import annotations

import numpy as np
import pytest

from agents.greedy_connect4 import Connect4Greedy
from agents.random_agent import RandomAgent
from arenas.connect4 import Connect4
from arenas.connect4 import reference as ref


def position(rows: list[str]):
    """A board from text, top row first: '.' empty, 'x' the agent's pieces, 'o' the opponent's.

    Returns the agent's ``(obs (1, 6, 7, 2), mask (1, 7))`` as the engine would give them.
    """
    rows = [""] * (6 - len(rows)) + rows
    board = np.array([[{"x": 1, "o": 2}.get(ch, 0) for ch in row.ljust(7, ".")] for row in rows], np.int8)
    obs, mask = ref.observe(board, seat=0, to_move=0)
    return obs[None], mask[None]


def choose(rows: list[str]) -> int:
    return int(Connect4Greedy().act(*position(rows))[0])


def test_centre_on_empty_board():
    assert choose([]) == 3


def test_centre_order_among_legal_columns():
    full_3 = ["...o...", "...x...", "...o...", "...x...", "...o...", "...x..."]
    assert choose(full_3) == 2
    obs, mask = position([])
    mask[0, [3, 2]] = 0  # the agent only plays columns the mask allows
    assert Connect4Greedy().act(obs, mask)[0] == 4


def test_wins_when_it_can():
    assert choose(["x......", "xo.....", "xo....."]) == 0  # vertical
    assert choose([".xxx...", ".oxoo.."]) == 4  # horizontal, landing on a piece (column 0 lands too low)
    assert choose(["..xo...", ".xox...", "xooxo.."]) == 3  # diagonal (5,0) (4,1) (3,2) (2,3)


def test_win_beats_block():
    assert choose(["x..o...", "x..o...", "x..o..."]) == 0  # wins in 0 rather than block in 3


def test_ties_go_to_the_centre_order():
    assert choose(["x.xxx.x"]) == 1  # 1 and 5 both win; 1 comes first in 3,2,4,1,5,0,6


def test_blocks_the_opponent():
    assert choose(["o......", "o......", "o.x.x.."]) == 0  # vertical threat in column 0
    assert choose(["x......", "x.ooo.."]) == 1  # horizontal threat on both ends: 1 before 5


def test_batch_rows_are_independent_and_deterministic():
    rows = [position([]), position(["o......", "o......", "o.x.x.."]), position(["x......", "xo.....", "xo....."])]
    obs = np.concatenate([r[0] for r in rows])
    mask = np.concatenate([r[1] for r in rows])
    agent = Connect4Greedy(seed=7)
    out = agent.act(obs, mask)
    assert out.dtype == np.int64 and out.shape == (3,)
    assert out.tolist() == [3, 0, 0]
    assert Connect4Greedy(seed=1).act(obs, mask).tolist() == out.tolist()
    assert agent.act(obs[:0], mask[:0]).shape == (0,)
    assert agent.act(obs, np.zeros_like(mask)).tolist() == [0, 0, 0]  # no legal column: 0


def python_greedy(board, seat: int) -> int:
    """The rule written out with the reference's whole-board scan."""
    order = [3, 2, 4, 1, 5, 0, 6]
    legal = ref.legal_columns(board)
    for piece in (seat + 1, 2 - seat):  # our win first, then the opponent's to block
        for c in order:
            if c in legal:
                b = np.array(board)
                b[max(r for r in range(6) if b[r, c] == 0), c] = piece
                if ref.has_four(b, piece):
                    return c
    return next(c for c in order if c in legal)


def test_agrees_with_python_rule_on_random_positions():
    n = 32
    game = Connect4(num_matches=n)
    game.reset(seed=3)
    greedy, rand = Connect4Greedy(game), RandomAgent(game, seed=3)
    rows = np.arange(n)
    tactical = 0  # decisions other than "the most central legal column": wins and blocks
    for step in range(30):
        seat = game.to_move.astype(np.int64)
        got = greedy.act(game.obs[rows, seat], game.action_mask[rows, seat])
        for m in range(n):
            board = game.snapshot(m)["board"]
            assert got[m] == python_greedy(board, int(seat[m])), f"match {m}, step {step}"
            tactical += got[m] != next(c for c in (3, 2, 4, 1, 5, 0, 6) if board[0, c] == 0)
        actions = np.zeros((n, 2), dtype=np.int64)
        actions[rows, seat] = rand.act(game.obs[rows, seat], game.action_mask[rows, seat])
        game.step(actions)
    assert tactical > 20, tactical


def first_results(greedy_seat: int, n: int = 512, seed: int = 0) -> np.ndarray:
    """Winner of the first game of each of ``n`` matches, greedy in ``greedy_seat`` against random."""
    game = Connect4(num_matches=n)
    game.reset(seed=seed)
    greedy, rand = Connect4Greedy(game), RandomAgent(game, seed=seed)
    winners = np.full(n, -2)
    actions = np.zeros((n, 2), dtype=np.int64)
    while (winners == -2).any():
        actions[:, greedy_seat] = greedy.act(game.obs[:, greedy_seat], game.action_mask[:, greedy_seat])
        actions[:, 1 - greedy_seat] = rand.act(game.obs[:, 1 - greedy_seat], game.action_mask[:, 1 - greedy_seat])
        game.step(actions)
        first = game.episode_done & (winners == -2)
        winners[first] = game.episode_winner[first]
    return winners


@pytest.mark.parametrize("seat", [0, 1])
def test_beats_random(seat):
    winners = first_results(seat)
    assert (winners == seat).mean() > 0.8, f"greedy in seat {seat} won {(winners == seat).mean():.0%}"
