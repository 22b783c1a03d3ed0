"""PFSP weightings (against their formulas, and by sampling) and the payoff table they read."""
import numpy as np
import pytest

from server.league import LeagueError
from server.league.payoff import DECAY, Counts, Payoff
from server.league.pfsp import probabilities, sample

#: how many binomial standard deviations a count may stray from its expectation (seeded: deterministic;
#: a correct sampler fails this with probability ~1e-6 per category)
Z = 5.0
RATES = np.array([0.0, 0.2, 0.5, 0.7, 0.95, 1.0])
FORMULAS = {
    "hard": lambda x: (1 - x) ** 2,
    "variance": lambda x: x * (1 - x),
    "linear": lambda x: 1 - x,
}


def assert_frequencies(counts: np.ndarray, expected: np.ndarray, n: int) -> None:
    """Each count within Z binomial standard deviations of n * p (and exactly 0 where p is 0)."""
    for i, (count, p) in enumerate(zip(counts, expected)):
        sd = np.sqrt(n * p * (1 - p))
        assert abs(count - n * p) <= Z * sd, f"category {i}: {count} draws of {n}, expected {n * p:.1f} ± {sd:.1f}"


@pytest.mark.parametrize("kind", list(FORMULAS))
def test_probabilities_follow_the_formula(kind):
    w = FORMULAS[kind](RATES)
    np.testing.assert_allclose(probabilities(RATES, kind), w / w.sum(), rtol=1e-12)
    assert probabilities(RATES, kind).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("kind", list(FORMULAS))
def test_sampling_frequencies_match_the_formula(kind):
    rng = np.random.default_rng(1234)
    names = [f"o{i}" for i in range(len(RATES))]
    n = 20_000
    draws = [sample(rng, names, RATES, kind) for _ in range(n)]
    counts = np.array([draws.count(name) for name in names])
    w = FORMULAS[kind](RATES)
    assert_frequencies(counts, w / w.sum(), n)
    # an opponent of weight 0 (always beaten; with variance, also never beaten) is never drawn
    for name, weight in zip(names, w):
        if weight == 0:
            assert draws.count(name) == 0


def test_hard_exponent():
    np.testing.assert_allclose(probabilities(RATES, "hard", p=1.0), probabilities(RATES, "linear"))
    w = (1 - RATES) ** 3
    np.testing.assert_allclose(probabilities(RATES, "hard", p=3.0), w / w.sum())


@pytest.mark.parametrize("kind,rates", [("hard", [1.0, 1.0, 1.0]), ("linear", [1.0, 1.0, 1.0]),
                                        ("variance", [0.0, 1.0, 1.0])])
def test_all_weights_zero_is_uniform(kind, rates):
    np.testing.assert_allclose(probabilities(np.array(rates), kind), [1 / 3] * 3)
    rng = np.random.default_rng(5)
    n = 6000
    draws = [sample(rng, ["a", "b", "c"], np.array(rates), kind) for _ in range(n)]
    assert_frequencies(np.array([draws.count(x) for x in "abc"]), np.full(3, 1 / 3), n)


@pytest.mark.parametrize("kind", list(FORMULAS))
def test_unplayed_opponents_are_even(kind):
    payoff = Payoff()
    rates = payoff.win_rates("me", ["a", "b", "c"])
    np.testing.assert_array_equal(rates, [0.5, 0.5, 0.5])
    np.testing.assert_allclose(probabilities(rates, kind), [1 / 3] * 3)


def test_bad_input_is_refused():
    with pytest.raises(LeagueError, match="unknown PFSP weighting"):
        probabilities(RATES, "cubic")
    with pytest.raises(LeagueError, match=r"\[0, 1\]"):
        probabilities(np.array([0.5, 1.2]), "hard")
    with pytest.raises(LeagueError, match="p must be > 0"):
        probabilities(RATES, "hard", p=0)
    with pytest.raises(LeagueError, match="at least one opponent"):
        sample(np.random.default_rng(0), [], np.zeros(0))
    assert probabilities(np.zeros(0), "hard").shape == (0,)


# -- the payoff table ---------------------------------------------------------------------------------
def reference_rates(results, decay):
    """A plain-Python AlphaStar payoff: wins and games per ordered pair, both decayed at each game."""
    wins, games = {}, {}
    for a, b, s in results:
        for pair, won in (((a, b), s), ((b, a), 1 - s)):
            wins[pair] = decay * wins.get(pair, 0.0) + won
            games[pair] = decay * games.get(pair, 0.0) + 1
    return {pair: wins[pair] / games[pair] for pair in games}


def some_results(n=300, seed=3):
    rng = np.random.default_rng(seed)
    names = ["m", "e", "s1", "s2", "random"]
    out = []
    for _ in range(n):
        a, b = rng.choice(names, 2, replace=False)
        out.append((str(a), str(b), float(rng.choice([0.0, 0.5, 1.0]))))
    return out


def test_payoff_decays_as_alphastar():
    results = some_results()
    payoff = Payoff()
    for a, b, s in results:
        payoff.update(a, b, s)
    assert payoff.decay == DECAY == 0.99
    for (a, b), rate in reference_rates(results, DECAY).items():
        assert payoff.win_rate(a, b) == pytest.approx(rate, rel=1e-12)
        assert payoff.win_rate(a, b) + payoff.win_rate(b, a) == pytest.approx(1.0)   # both sides kept


def test_decay_follows_recent_results():
    payoff = Payoff()
    for _ in range(200):
        payoff.update("a", "b", 0.0)
    for _ in range(200):
        payoff.update("a", "b", 1.0)
    # undecayed this is 0.5; decayed, the last 200 wins dominate (1 - 0.99**200 ~ 0.87)
    assert payoff.win_rate("a", "b") == pytest.approx(1 / (1 + 0.99 ** 200), rel=1e-9)
    assert payoff.counts("a", "b") == Counts(games=400, wins=200, draws=0, losses=200)
    assert payoff.counts("b", "a") == Counts(games=400, wins=200, draws=0, losses=200)


def test_payoff_counts_matrix_and_rebuild():
    results = some_results(200, seed=9)
    payoff = Payoff.from_matches(results)
    incremental = Payoff()
    for r in results:
        incremental.update(*r)
    names = payoff.names()
    np.testing.assert_array_equal(payoff.matrix(names), incremental.matrix(names))
    m = payoff.matrix(names)
    np.testing.assert_array_equal(np.diag(m), 0.5)
    np.testing.assert_allclose(m + m.T, 1.0)
    a, b = names[0], names[1]
    c = payoff.counts(a, b)
    played = [(x, y, s) for x, y, s in results if {x, y} == {a, b}]
    assert c.games == len(played) == c.wins + c.draws + c.losses
    assert c.wins == sum(1 for x, y, s in played if (x == a and s == 1) or (y == a and s == 0))
    assert payoff.counts(b, a).wins == c.losses
    lines = payoff.to_csv().splitlines()
    assert lines[0] == "a,b,games,wins,draws,losses,win_rate"
    assert len(lines) == 1 + sum(1 for x in names for y in names if payoff.counts(x, y).games)
    assert Payoff().matrix([]).shape == (0, 0)


def test_self_play_and_bad_scores():
    payoff = Payoff()
    payoff.update("m", "m", 1.0)
    assert payoff.win_rate("m", "m") == 0.5
    assert payoff.counts("m", "m") == Counts(1, 1, 0, 0)
    with pytest.raises(LeagueError, match="score"):
        payoff.update("a", "b", 2)
    with pytest.raises(LeagueError, match="decay"):
        Payoff(decay=0.0)
