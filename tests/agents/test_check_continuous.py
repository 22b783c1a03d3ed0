"""``validate_actions`` for continuous (Box) action spaces, the discrete rules unchanged beside them, and
``check_agent`` asking each team of ``tag`` for its own rows."""
import gymnasium
import numpy as np
import pytest

from agents import make_agent
from agents.check import AgentFault, check_agent, neutral_action, validate_actions
from arenas.tag.game import Tag

BOX = gymnasium.spaces.Box(0.0, 1.0, (5,), np.float32)
NAN_REASON = "returned NaN or infinity (in float32)"


def _mask(rows, k=5):
    return np.ones((rows, k), dtype=np.int8)


def test_a_float_vector_per_row_is_taken_in_the_box_dtype():
    out = np.random.default_rng(0).random((6, 5))                  # float64
    actions, bad = validate_actions(out, _mask(6), BOX)
    assert bad == {} and actions.dtype == np.float32 and actions.shape == (6, 5)
    np.testing.assert_array_equal(actions, out.astype(np.float32))
    ints, bad = validate_actions([[0, 1, 0, 0, 1]] * 3, _mask(3), BOX)
    assert bad == {} and ints.dtype == np.float32 and ints.tolist() == [[0, 1, 0, 0, 1]] * 3


def test_values_outside_the_box_are_allowed_the_game_clips_them():
    out = np.array([[-3.0, 7.0, 0.5, 1e6, -1e-3]], dtype=np.float32)
    actions, bad = validate_actions(out, _mask(1), BOX)
    assert bad == {}
    np.testing.assert_array_equal(actions, out)


def test_nan_and_infinite_rows_are_faults_and_get_the_neutral_action():
    out = np.full((5, 5), 0.5)
    out[1, 3] = np.nan
    out[3, 0] = -np.inf
    out[4, 2] = 1e300                  # finite in float64, infinite in the Box's float32
    actions, bad = validate_actions(out, _mask(5), BOX)
    assert list(bad) == [NAN_REASON]
    assert bad[NAN_REASON].tolist() == [False, True, False, True, True]
    assert (actions[[1, 3, 4]] == 0).all(), "bad rows hold a harmless stand-in"
    assert (actions[[0, 2]] == 0.5).all()
    assert not np.isfinite(out[1]).all(), "the agent's own array is not written"


def test_neutral_action_is_zero_clipped_into_the_box():
    assert neutral_action(BOX).tolist() == [0.0] * 5 and neutral_action(BOX).dtype == np.float32
    shifted = gymnasium.spaces.Box(np.array([0.2, -1.0]), np.array([1.0, -0.5]), dtype=np.float64)
    assert neutral_action(shifted).tolist() == [0.2, -0.5]


@pytest.mark.parametrize("out, message", [
    (np.zeros(4), r"returned shape \(4,\); expected \(4, 5\)"),
    (np.zeros((4, 6)), r"returned shape \(4, 6\); expected \(4, 5\)"),
    (np.zeros((5, 4)), r"returned shape \(5, 4\); expected \(4, 5\)"),
    (np.zeros((4, 5), dtype=bool), r"returned dtype bool; continuous actions must be numbers \(float32\)"),
    (np.array([["a"] * 5] * 4), r"returned dtype <U1"),
    ([[0.1, 0.2], [0.3]], r"not an array|dtype object"),
])
def test_an_unusable_answer_is_a_fault_of_the_whole_batch(out, message):
    with pytest.raises(AgentFault, match=message):
        validate_actions(out, _mask(4), BOX)


def test_the_discrete_rules_are_unchanged():
    mask = np.ones((6, 4), dtype=np.int8)
    mask[5, 2] = 0
    out = np.array([0, np.nan, 1.5, 7, -1, 2])
    for space in (None, gymnasium.spaces.Discrete(4)):
        actions, bad = validate_actions(out, mask, space)
        assert actions.dtype == np.int64
        assert {k: v.tolist() for k, v in bad.items()} == {
            "returned NaN or infinity": [False, True, False, False, False, False],
            "returned a fractional action": [False, False, True, False, False, False],
            "returned an action out of range 0..3": [False, False, False, True, True, False],
            "chose a masked (illegal) action": [False, False, False, False, False, True],
        }
    with pytest.raises(AgentFault, match=r"expected \(6,\)"):
        validate_actions(np.zeros((6, 4)), mask)


# -- check_agent on tag ------------------------------------------------------------------------------
class Widths:
    """Records the width of the rows it is asked for; answers with a fixed action."""

    def __init__(self, game, answer):
        self.game, self.answer, self.widths = game, answer, []

    def act(self, obs, mask):
        self.widths.append(obs.shape[1])
        return self.answer(obs)


@pytest.mark.parametrize("continuous", [False, True])
def test_each_team_is_asked_for_its_own_rows_cut_to_its_space(continuous):
    game = Tag(num_matches=4, continuous_actions=continuous)
    adv, good = (sp.shape[0] for sp in game.team_observation_spaces)
    answer = (lambda o: np.full((len(o), 5), 0.25, np.float32)) if continuous else (lambda o: np.zeros(len(o), int))
    agent = Widths(game, answer)
    check_agent(agent, game, steps=5)
    assert (adv, good) == (16, 14) and agent.widths == [16, 14] * 5, "one ask per team and step"
    check_agent(make_agent("greedy", game), game, steps=30)    # greedy tells the sides apart by the width
    check_agent(make_agent("random", game, seed=1), game, steps=30)


def test_a_game_whose_teams_see_alike_is_asked_once_per_step():
    import arenas

    game = arenas.make("battle", num_matches=2, team_size=2, map_size=10)
    agent = Widths(game, lambda o: np.zeros(len(o), int))
    check_agent(agent, game, steps=3)
    assert agent.widths == [game.obs_shape[0]] * 3


def test_out_of_box_continuous_actions_pass_and_the_game_clips_them():
    game = Tag(num_matches=2, continuous_actions=True)
    check_agent(Widths(game, lambda o: np.tile([[-5, 9, 0, 0, 3]], (len(o), 1))), game, steps=3)
    assert np.isfinite(game.obs).all()


def test_check_agent_names_the_team_and_the_fault():
    game = Tag(num_matches=3, continuous_actions=True)

    def nan_for_good_agents(obs):
        out = np.full((len(obs), 5), 0.5, np.float32)
        if obs.shape[1] == 14:
            out[-1, 2] = np.nan
        return out

    with pytest.raises(AssertionError, match=r"act returned NaN or infinity \(in float32\) at step 0 "
                                             r"\(team 1's rows\): row 2 got"):
        check_agent(Widths(game, nan_for_good_agents), game, steps=2)
    with pytest.raises(AssertionError, match=r"returned shape \(9,\); expected \(9, 5\).* at step 0 \(team 0's rows\)"):
        check_agent(Widths(game, lambda o: np.zeros(len(o))), game, steps=2)
    discrete = Tag(num_matches=3)
    with pytest.raises(AssertionError, match=r"out of range 0\.\.4 at step 0 \(team 0's rows\)"):
        check_agent(Widths(discrete, lambda o: np.full(len(o), 5)), discrete, steps=2)
