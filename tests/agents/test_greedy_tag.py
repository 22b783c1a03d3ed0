"""The greedy tag agent: its rules on hand-made observations, and that it plays both sides better than
random; the random agent on tag, discrete and continuous."""
from __future__ import annotations

import numpy as np
import pytest

import arenas
from agents import make_agent
from agents.check import check_agent
from agents.greedy_tag import TagGreedy, continuous_moves, discrete_moves
from arenas.tag import Tag

NOOP, LEFT, RIGHT, DOWN, UP = range(5)


def rows_of(game: Tag, team: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Team ``team``'s seats, their observation rows cut to the team's space, and their masks."""
    seats = np.flatnonzero(game.seat_team == team)
    width = game.team_observation_spaces[team].shape[0]
    obs = game.obs[:, seats, :width].reshape(-1, width)
    return seats, obs, game.action_mask[:, seats].reshape(obs.shape[0], -1)


def play(adversaries: str, good: str, matches: int = 256, seed: int = 0, **options) -> dict:
    """Play two episodes per slot, each side's agent asked once per step for its team's rows."""
    game = arenas.make("tag", num_matches=matches, seed=seed, **options)
    agents = [make_agent(adversaries, game, seed=seed + 1), make_agent(good, game, seed=seed + 2)]
    wins = np.zeros(2)
    touches = 0.0
    for _ in range(2 * game.options["max_cycles"]):
        for team, agent in enumerate(agents):
            seats, obs, mask = rows_of(game, team)
            game.actions[:, seats] = agent.act(obs, mask).reshape(game.actions[:, seats].shape)
        game.step(game.actions)
        done = game.episode_done
        wins += np.bincount(game.episode_winner[done], minlength=2)
        touches += game.episode_stats[done, 0, 1].sum()
    return {"adversary_wins": wins[0] / wins.sum(), "touches": touches / wins.sum()}


def game_and_greedy(**options) -> tuple[Tag, TagGreedy]:
    game = Tag(num_matches=1, **options)
    return game, make_agent("greedy", game)


def test_registry():
    game = Tag(num_matches=2)
    agent = make_agent("greedy", game)
    assert isinstance(agent, TagGreedy) and agent.name == "greedy"
    with pytest.raises(ValueError, match="needs the tag game"):
        TagGreedy(arenas.make("battle", num_matches=1))


def test_adversary_chases_the_nearest_good_agent():
    game, agent = game_and_greedy(num_good=2, num_adversaries=2, num_obstacles=1)
    # adversary 0 at the origin; good agent 2 far to the right, good agent 3 a little below
    game.set_state(0, [[0, 0], [0.5, 0.5], [0.9, 0.1], [0.05, -0.3]], None, [[-0.5, -0.5]])
    _, obs, mask = rows_of(game, 0)
    assert agent.act(obs, mask)[0] == DOWN
    game.set_state(0, [[0, 0], [0.5, 0.5], [0.2, 0.1], [0.05, -0.3]], None, [[-0.5, -0.5]])
    assert agent.act(rows_of(game, 0)[1], mask)[0] == RIGHT


def test_good_agent_flees_the_nearest_adversary_and_turns_back_at_the_edge():
    game, agent = game_and_greedy()
    game.set_state(0, [[0.3, 0.1], [-0.5, 0.5], [-0.6, -0.6], [0.0, 0.0]])
    _, obs, mask = rows_of(game, 1)
    assert agent.act(obs, mask).tolist() == [LEFT]     # adversary 0 is to the right: flee left
    game.set_state(0, [[-0.6, 0.85], [-0.5, 0.5], [-0.6, -0.6], [-0.85, 0.85]])
    # the nearest adversary is to the right: fleeing is left, but x < -0.8 turns it back (+x), and y > 0.8
    # turns it down: |x| == |y| heading, x first
    assert agent.act(rows_of(game, 1)[1], mask).tolist() == [RIGHT]


def test_headings_to_actions():
    heading = np.array([[0.5, -0.2], [0.1, -0.3], [0.0, 0.0], [-0.4, 0.4]])
    assert discrete_moves(heading).tolist() == [RIGHT, DOWN, NOOP, LEFT]
    np.testing.assert_allclose(continuous_moves(heading), [[0, 0, 1, 0.4, 0], [0, 0, 1 / 3, 1, 0],
                                                           [0, 0, 0, 0, 0], [0, 1, 0, 0, 1]], rtol=1e-6)


def test_continuous_greedy_gives_actions_in_the_box():
    game, agent = game_and_greedy(continuous_actions=True)
    for team in (0, 1):
        _, obs, mask = rows_of(game, team)
        out = agent.act(obs, mask)
        assert out.shape == (obs.shape[0], 5) and out.dtype == np.float32
        assert game.single_action_space.contains(out[0]) and out.max() == 1.0


def test_wrong_rows_are_refused():
    _, agent = game_and_greedy()
    with pytest.raises(ValueError, match="rows of one team"):
        agent.act(np.zeros((3, 15), np.float32), np.ones((3, 5), np.int8))


@pytest.mark.parametrize("continuous", [False, True])
def test_greedy_plays_both_sides_better_than_random(continuous):
    base = play("random", "random", continuous_actions=continuous)
    chase = play("greedy", "random", continuous_actions=continuous)
    flee = play("greedy", "greedy", continuous_actions=continuous)
    # greedy adversaries catch random good agents far more often than random adversaries do
    assert chase["adversary_wins"] > 0.8 and base["adversary_wins"] < 0.4, (base, chase)
    # greedy good agents escape greedy adversaries more often, and are touched less, than random ones
    assert flee["adversary_wins"] < chase["adversary_wins"] - 0.15, (chase, flee)
    assert flee["touches"] < chase["touches"] / 2, (chase, flee)


def test_random_agent_on_tag():
    game = Tag(num_matches=8)
    check_agent(make_agent("random", game), game, steps=30)
    cgame = Tag(num_matches=8, continuous_actions=True)
    agent = make_agent("random", cgame, seed=3)
    _, obs, mask = rows_of(cgame, 1)
    out = agent.act(obs, mask)
    assert out.shape == (8, 5) and out.dtype == np.float32 and (out >= 0).all() and (out < 1).all()
    agent.reset(3)
    np.testing.assert_array_equal(agent.act(obs, mask), out)
