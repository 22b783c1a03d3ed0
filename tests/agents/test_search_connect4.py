"""The connect4 search agent: hand-made tactics, legality on real positions, matches through the engine."""
from __future__ import annotations

import numpy as np
import pytest

import arenas
from agents import make_agent
from agents.random_agent import RandomAgent
from agents.registry import UnknownAgent
from agents.search_connect4 import Connect4Search
from arenas.connect4 import Connect4
from arenas.connect4 import reference as ref
from server.play.match import MatchRunner


def position(rows: list[str]):
    """A board from text, top row first: '.' empty, 'x' the agent's pieces, 'o' the opponent's.

    Returns the agent's ``(obs (1, 6, 7, 2), mask (1, 7))`` as the engine would give them.
    """
    rows = [""] * (6 - len(rows)) + rows
    board = np.array([[{"x": 1, "o": 2}.get(ch, 0) for ch in row.ljust(7, ".")] for row in rows], np.int8)
    obs, mask = ref.observe(board, seat=0, to_move=0)
    return obs[None], mask[None]


def choose(rows: list[str], depth: int = 2) -> int:
    return int(Connect4Search(depth=depth).act(*position(rows))[0])


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_takes_a_win_in_one(depth):
    assert choose(["x......", "xo.....", "xo....."], depth) == 0  # vertical
    assert choose([".xxx...", ".oxoo.."], depth) == 4  # horizontal, landing on a piece
    assert choose(["..xo...", ".xox...", "xooxo.."], depth) == 3  # diagonal
    assert choose(["x..o...", "x..o...", "x..o..."], depth) == 0  # winning beats blocking


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_blocks_a_win_in_one(depth):
    assert choose(["o......", "o......", "o.x.x.."], depth) == 0  # vertical threat in column 0
    assert choose(["......o", "......o", "..x.x.o"], depth) == 6  # the same at the edge
    assert choose(["xooo..."], depth) == 4  # horizontal threat, one open end
    assert choose(["x......", "x.ooo.x"], depth) == 1  # two threats: lost, but it blocks one (1 before 5)


TRAP = ["ooo...x", "xox...x"]   # o's four waits on (4, 3); a piece of x in column 3 would land under it


def test_does_not_hand_the_opponent_a_win_on_top():
    from agents.greedy_connect4 import Connect4Greedy

    assert int(Connect4Greedy().act(*position(TRAP))[0]) == 3   # greedy walks into it
    board = np.array([[0] * 7] * 4 + [[{"x": 1, "o": 2}.get(ch, 0) for ch in row] for row in TRAP], np.int8)
    for depth in (2, 4):
        got = choose(TRAP, depth)
        assert got != 3
        after = ref.step(board, 0, got)
        assert not after["done"]
        for c in ref.legal_columns(after["board"]):   # o has no win in one after the move chosen
            assert ref.step(after["board"], 1, c)["winner"] != 1, (depth, got, c)


def test_batch_rows_are_independent_and_deterministic():
    rows = [position([]), position(["o......", "o......", "o.x.x.."]), position(["x......", "xo.....", "xo....."])]
    obs = np.concatenate([r[0] for r in rows])
    mask = np.concatenate([r[1] for r in rows])
    agent = Connect4Search(seed=7, depth=3)
    out = agent.act(obs, mask)
    assert out.dtype == np.int64 and out.shape == (3,)
    assert out.tolist()[1:] == [0, 0]
    assert out[0] == 3  # the centre on an empty board
    assert Connect4Search(seed=1, depth=3).act(obs, mask).tolist() == out.tolist()
    assert agent.act(obs[:0], mask[:0]).shape == (0,)
    assert agent.act(obs, np.zeros_like(mask)).tolist() == [0, 0, 0]  # no legal column: 0
    obs1, mask1 = position([])
    mask1[0, [3, 2]] = 0   # only columns the mask allows are played
    assert agent.act(obs1, mask1)[0] not in (2, 3)
    assert Connect4Search(depth=2).act(obs.astype(np.uint8), mask)[1:].tolist() == [0, 0]  # any int dtype


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_never_illegal_on_real_positions(depth):
    n = 64
    game = Connect4(num_matches=n)
    game.reset(seed=depth)
    search, rand = Connect4Search(game, depth=depth), RandomAgent(game, seed=depth)
    rows = np.arange(n)
    rng = np.random.default_rng(depth)
    for step in range(45):
        seat = game.to_move.astype(np.int64)
        obs, mask = game.obs[rows, seat], game.action_mask[rows, seat]
        mask = mask.copy()
        drop = rng.random(mask.shape) < 0.3   # also with masks narrower than the board allows
        narrowed = np.where(drop & ((mask & ~drop).sum(1, keepdims=True) > 0), 0, mask).astype(np.int8)
        for m_ in (mask, narrowed):
            got = search.act(obs, m_)
            assert ((got >= 0) & (got < 7)).all()
            assert (m_[rows, got] == 1).all(), f"step {step}"
        actions = np.zeros((n, 2), dtype=np.int64)
        actions[rows, seat] = rand.act(obs, mask) if step % 2 else search.act(obs, mask)
        game.step(actions)


ORDER = (3, 2, 4, 1, 5, 0, 6)


def py_evaluate(board, me: int) -> int:
    """The evaluation of the module docstring, written with numpy."""
    from agents.search_connect4 import WINDOWS

    cells = board[WINDOWS[..., 0], WINDOWS[..., 1]]          # (69, 4)
    own, opp = (cells == me).sum(1), ((cells != me) & (cells != 0)).sum(1)
    weights = np.array([0, 0, 2, 5, 0])
    centre = board[:, 3]
    return int(weights[own][opp == 0].sum() - weights[opp][own == 0].sum()
               + 3 * ((centre == me).sum() - ((centre != me) & (centre != 0)).sum()))


def py_drop(board, c: int) -> int:
    return max(r for r in range(6) if board[r, c] == 0)


def py_wins(board, me: int) -> bool:
    from arenas.connect4.nb import makes_four_nb

    return any(board[0, c] == 0 and makes_four_nb(board, py_drop(board, c), c, me) for c in range(7))


def py_negamax(board, me: int, depth: int, ply: int) -> int:
    """Plain negamax, no pruning: the score the kernel's alpha-beta must reproduce."""
    if (board != 0).all():
        return 0
    if py_wins(board, me):
        return 1000 - (ply + 1)
    if depth == 0:
        return py_evaluate(board, me)
    best = -10**6
    for c in ORDER:
        if board[0, c] == 0:
            r = py_drop(board, c)
            board[r, c] = me
            best = max(best, -py_negamax(board, 3 - me, depth - 1, ply + 1))
            board[r, c] = 0
    return best


def py_search(board, depth: int) -> int:
    """The column the agent must pick for piece 1 on ``board``."""
    from arenas.connect4.nb import makes_four_nb

    legal = [c for c in ORDER if board[0, c] == 0]
    for c in legal:
        if makes_four_nb(board, py_drop(board, c), c, 1):
            return c
    blocks = [c for c in legal if makes_four_nb(board, py_drop(board, c), c, 2)]
    best, choice = None, None
    for c in blocks or legal:
        r = py_drop(board, c)
        board[r, c] = 1
        score = -py_negamax(board, 2, depth - 1, 1)
        board[r, c] = 0
        if best is None or score > best:
            best, choice = score, c
    return choice


def test_alpha_beta_agrees_with_plain_negamax():
    n = 16
    game = Connect4(num_matches=n)
    game.reset(seed=5)
    rand = RandomAgent(game, seed=5)
    rows = np.arange(n)
    agents = {d: Connect4Search(game, depth=d) for d in (1, 2, 3)}
    checked = 0
    for step in range(24):
        seat = game.to_move.astype(np.int64)
        obs, mask = game.obs[rows, seat], game.action_mask[rows, seat]
        if step % 3 == 2:
            for d, agent in agents.items():
                got = agent.act(obs, mask)
                for m in range(n):
                    board = (obs[m, :, :, 0] + 2 * obs[m, :, :, 1]).astype(np.int8)
                    assert got[m] == py_search(board, d), f"match {m}, step {step}, depth {d}"
                    checked += 1
        actions = np.zeros((n, 2), dtype=np.int64)
        actions[rows, seat] = rand.act(obs, mask)
        game.step(actions)
    assert checked == 3 * 8 * n


def first_results(depth: int, seat: int, n: int = 128, opening: int = 4, seed: int = 0):
    """Search in ``seat`` against greedy in the first game of ``n`` matches whose first ``opening`` moves
    are random (two deterministic agents alone would play the same game in every match)."""
    from agents.greedy_connect4 import Connect4Greedy

    game = Connect4(num_matches=n)
    game.reset(seed=seed)
    search, greedy, rand = Connect4Search(game, depth=depth), Connect4Greedy(game), RandomAgent(game, seed=seed)
    winners = np.full(n, -2)
    rows = np.arange(n)
    step = 0
    while (winners == -2).any():
        mover = game.to_move.astype(np.int64)
        obs, mask = game.obs[rows, mover], game.action_mask[rows, mover]
        if step < opening:
            act = rand.act(obs, mask)
        else:
            act = np.where(mover == seat, search.act(obs, mask), greedy.act(obs, mask))
        actions = np.zeros((n, 2), dtype=np.int64)
        actions[rows, mover] = act
        game.step(actions)
        step += 1
        first = game.episode_done & (winners == -2)
        winners[first] = game.episode_winner[first]
    return (winners == seat).sum(), (winners == 1 - seat).sum()


@pytest.mark.parametrize("seat", [0, 1])
def test_depth_two_beats_greedy_from_random_openings(seat):
    wins, losses = first_results(2, seat)
    assert wins > 4 * losses, (wins, losses)


def play(names_or_agents, n: int, seed: int = 0):
    """``n`` matches through the engine (seats alternate per slot); the totals of the first agent."""
    game = arenas.make("connect4", num_matches=n, seed=seed)
    agents = [make_agent(a, game) if isinstance(a, str) else a(game) for a in names_or_agents]
    runner = MatchRunner(game, agents, ["a", "b"])
    runner.reset(seed)
    runner.play()
    first, second = runner.totals
    assert first.wins + first.losses + first.draws == n and first.forfeits == second.forfeits == 0
    return first


def test_depth_two_beats_greedy_through_the_engine():
    # both agents are deterministic: the 200 matches are the same two games, one per seat
    t = play([lambda g: Connect4Search(g, depth=2), "greedy"], 200)
    assert t.wins > 2 * t.losses + 20, (t.wins, t.losses, t.draws)


def test_depth_four_crushes_random():
    t = play([lambda g: Connect4Search(g, depth=4), "random"], 200, seed=1)
    assert t.wins >= 0.95 * 200, (t.wins, t.losses, t.draws)


def test_passes_check_agent():
    from agents.check import check_agent

    game = arenas.make("connect4", num_matches=32, seed=0)
    check_agent(make_agent("search", game, depth=2), game, steps=60)


def test_registry_and_options():
    game = arenas.make("connect4", num_matches=2, seed=0)
    agent = make_agent("search", game, depth=3)
    assert isinstance(agent, Connect4Search) and agent.name == "search" and agent.depth == 3
    assert make_agent("search", game).depth == 4
    assert Connect4Search(depth=np.int64(8)).depth == 8
    for bad in (0, 9, 99, -1, "x", "4", 2.0, True, None):
        with pytest.raises(ValueError, match=r"depth must be an integer from 1 to 8.*got"):
            Connect4Search(game, depth=bad)
    with pytest.raises(TypeError, match="breadth"):
        Connect4Search(game, breadth=3)
    battle = arenas.make("battle", num_matches=1, seed=0)
    with pytest.raises(UnknownAgent, match="agent 'search' does not play 'battle'"):
        make_agent("search", battle)


def test_agent_arg_reaches_the_constructor():
    from agents.loader import load_agent, split_agent_args

    game = arenas.make("connect4", num_matches=2, seed=0)
    args = split_agent_args(["search.depth=3"], ["search", "greedy"])
    assert args == {"search": {"depth": 3}, "greedy": {}}
    assert load_agent("search", game, args=args["search"]).depth == 3
