"""The matchmaker's branches (by sampling), the exploiters, and the snapshot and reset rules."""
from collections import Counter

import numpy as np
import pytest

from server.league import FIXED, LEAGUE_EXPLOITER, MAIN, MAIN_EXPLOITER, SNAPSHOT, LeagueError, Member
from server.league.matchmaking import (BEATS, EXPLOITER_TOO_WEAK, FORGOTTEN_BELOW, LEAGUE_EXPLOITER_RESET,
                                       PFSP_ALL, SELF_PLAY, VERIFICATION, Matchmaker, SnapshotRule,
                                       current_opponents, steps_since_snapshot)
from server.league.payoff import Payoff

#: binomial standard deviations a count may stray (seeded rngs: deterministic)
Z = 5.0


def assert_frequency(count: int, n: int, p: float, what: str) -> None:
    sd = np.sqrt(n * p * (1 - p))
    assert abs(count - n * p) <= Z * sd, f"{what}: {count} of {n}, expected {n * p:.1f} ± {sd:.1f}"


def member(name, kind, parent=None, steps=0, active=True):
    return Member(name=name, kind=kind, parent=parent, steps=steps, active=active)


def set_rate(payoff: Payoff, a: str, b: str, wins: int, games: int) -> None:
    """Make ``a``'s win rate against ``b`` wins/games (the test payoffs do not decay)."""
    for i in range(games):
        payoff.update(a, b, 1.0 if i < wins else 0.0)


def hard(rates):
    w = (1 - np.asarray(rates)) ** 2
    return w / w.sum()


@pytest.fixture
def league():
    return [member("M", MAIN, steps=5000), member("E", MAIN_EXPLOITER, steps=3000),
            member("random", FIXED), member("greedy", FIXED),
            member("M@1", SNAPSHOT, "M", 1000), member("M@2", SNAPSHOT, "M", 2000), member("E@1", SNAPSHOT, "E", 1000)]


@pytest.fixture
def payoff():
    p = Payoff(decay=1.0)
    set_rate(p, "M", "random", 19, 20)   # 0.95: beaten
    set_rate(p, "M", "greedy", 16, 20)   # 0.8
    set_rate(p, "M", "M@1", 18, 20)      # 0.9: beaten, so not in the verification set
    set_rate(p, "M", "M@2", 10, 20)      # 0.5: not beaten
    set_rate(p, "M", "E@1", 15, 20)      # 0.75: beaten, but a main exploiter's snapshot stays in verification
    return p


def test_constants_are_alphastars():
    assert (SELF_PLAY, PFSP_ALL, VERIFICATION) == (0.35, 0.50, 0.15)
    assert SELF_PLAY + PFSP_ALL + VERIFICATION == pytest.approx(1.0)
    assert FORGOTTEN_BELOW == BEATS == 0.7
    assert EXPLOITER_TOO_WEAK == 0.1 and LEAGUE_EXPLOITER_RESET == 0.25


def test_main_agent_branches(league, payoff):
    mm = Matchmaker(np.random.default_rng(2024))
    n = 20_000
    picks = [mm.pick("M", league, payoff) for _ in range(n)]
    branches = Counter(p.branch for p in picks)
    assert_frequency(branches["self_play"], n, 0.35, "self-play")
    assert_frequency(branches["pfsp"], n, 0.50, "PFSP over the frozen members")
    assert_frequency(branches["verification"], n, 0.15, "verification")
    assert all(p.opponent == "M" for p in picks if p.branch == "self_play")

    # each opponent's frequency is the mixture of the three branches
    frozen = ["random", "greedy", "M@1", "M@2", "E@1"]
    all_rates = payoff.win_rates("M", frozen)
    verification = ["M@2", "E@1"]              # M@1 is beaten (0.9 >= 0.7); E@1 is an exploiter's
    ver_p = dict(zip(verification, hard(payoff.win_rates("M", verification))))
    expected = {name: 0.50 * q + 0.15 * ver_p.get(name, 0.0) for name, q in zip(frozen, hard(all_rates))}
    expected["M"] = 0.35
    opponents = Counter(p.opponent for p in picks)
    assert set(opponents) <= set(expected)
    for name, p in expected.items():
        assert_frequency(opponents[name], n, p, f"opponent {name}")
    assert_frequency(sum(1 for p in picks if p.branch == "verification" and p.opponent == "E@1"), n,
                     0.15 * ver_p["E@1"], "E@1 through verification")


def test_main_agent_verification_falls_back_to_pfsp(payoff):
    league = [member("M", MAIN), member("random", FIXED), member("M@1", SNAPSHOT, "M")]
    mm = Matchmaker(np.random.default_rng(7))
    n = 5000
    branches = Counter(mm.pick("M", league, payoff).branch for _ in range(n))
    assert branches["verification"] == 0
    assert_frequency(branches["pfsp"], n, 0.65, "PFSP with an empty verification set")


def test_self_play_before_anything_is_frozen():
    league = [member("M", MAIN), member("M2", MAIN), member("E", MAIN_EXPLOITER), member("L", LEAGUE_EXPLOITER),
              member("old", FIXED, active=False)]
    mm = Matchmaker(np.random.default_rng(11))
    n = 4000
    picks = [mm.pick("M", league, Payoff()) for _ in range(n)]
    assert {p.branch for p in picks} == {"self_play"}
    assert_frequency(sum(p.opponent == "M" for p in picks), n, 0.5, "itself among two main agents")
    assert {mm.opponent("L", league, Payoff()) for _ in range(50)} == {"M", "M2"}


def test_main_exploiter(league):
    mm = Matchmaker(np.random.default_rng(3))
    payoff = Payoff(decay=1.0)
    # a new exploiter (0.5 against M) plays the main agent
    assert {mm.pick("E", league, payoff) for _ in range(100)} == {("M", "exploit_main")}
    # one that wins < 0.1 against M plays M's snapshots, weighted by variance
    set_rate(payoff, "E", "M", 1, 20)
    set_rate(payoff, "E", "M@1", 1, 2)       # 0.5: weight 0.25
    set_rate(payoff, "E", "M@2", 1, 5)       # 0.2: weight 0.16
    n = 8000
    picks = [mm.pick("E", league, payoff) for _ in range(n)]
    assert {p.branch for p in picks} == {"exploit_snapshots"}
    assert_frequency(sum(p.opponent == "M@1" for p in picks), n, 0.25 / 0.41, "M@1 by variance")
    assert {p.opponent for p in picks} == {"M@1", "M@2"}
    # exactly 0.1 is not below it; and a main agent without snapshots is played anyway
    payoff2 = Payoff(decay=1.0)
    set_rate(payoff2, "E", "M", 1, 10)
    assert mm.opponent("E", league, payoff2) == "M"
    bare = [m for m in league if m.kind != SNAPSHOT]
    assert mm.opponent("E", bare, payoff) == "M"


def test_league_exploiter_plays_frozen_members(league, payoff):
    league = league + [member("L", LEAGUE_EXPLOITER), member("gone", FIXED, active=False)]
    mm = Matchmaker(np.random.default_rng(5), pfsp="linear")
    n = 5000
    picks = [mm.pick("L", league, payoff) for _ in range(n)]
    assert {p.branch for p in picks} == {"pfsp"}
    assert {p.opponent for p in picks} == {"random", "greedy", "M@1", "M@2", "E@1"}
    for name in ("random", "E@1"):          # all unplayed by L: uniform under any weighting
        assert_frequency(sum(p.opponent == name for p in picks), n, 0.2, name)


def test_bad_requests(league, payoff):
    mm = Matchmaker(np.random.default_rng(0))
    with pytest.raises(LeagueError, match="not a member"):
        mm.opponent("nobody", league, payoff)
    with pytest.raises(LeagueError, match="only learning members"):
        mm.opponent("M@1", league, payoff)
    with pytest.raises(LeagueError, match="no active main agent"):
        mm.opponent("E", [member("E", MAIN_EXPLOITER)], payoff)
    with pytest.raises(LeagueError, match="PFSP weighting"):
        Matchmaker(np.random.default_rng(0), pfsp="softmax")
    with pytest.raises(LeagueError, match="unknown league member kind"):
        member("x", "wizard")


# -- snapshots -----------------------------------------------------------------------------------------
def first_due(rule: SnapshotRule, win_rates, stop=3000, tick=100):
    """The first step count, on a clock ticking ``tick`` steps, at which the rule says to snapshot."""
    return next((s for s in range(0, stop + 1, tick) if rule.due(s, win_rates)), None)


def test_snapshot_rule_on_a_clock():
    rule = SnapshotRule(steps=1000)
    assert first_due(rule, [0.9, 0.7, 0.75]) == 1000          # beats everyone at >= 0.7: due at N
    assert first_due(rule, [0.9, 0.69]) == 2000               # one opponent not beaten: due at 2N
    assert first_due(rule, [0.0]) == 2000
    assert first_due(rule, []) == 1000                        # nobody to beat
    assert not rule.due(999, [1.0]) and rule.due(1000, np.array([1.0]))
    with pytest.raises(LeagueError, match="positive"):
        SnapshotRule(steps=0)


def test_snapshot_rule_reads_the_league(league, payoff):
    rule = SnapshotRule(steps=1000)
    # M: 5000 steps, newest snapshot at 2000; it must beat every frozen member, and M@2 is at 0.5
    assert steps_since_snapshot("M", league) == 3000
    assert current_opponents("M", league) == ["random", "greedy", "M@1", "M@2", "E@1"]
    assert rule.ready("M", league, payoff)                    # 3000 >= 2N
    young = [m if m.name != "M" else member("M", MAIN, steps=3500) for m in league]
    assert not rule.ready("M", young, payoff)                 # 1500 steps, not beating M@2 (0.5)
    set_rate(payoff, "M", "M@2", 40, 40)                      # 50 of 60
    assert payoff.win_rates("M", current_opponents("M", league)).min() >= 0.7
    assert rule.ready("M", young, payoff)
    # a main exploiter must beat the main agents; it has no snapshot before E@1
    assert current_opponents("E", league) == ["M"]
    assert steps_since_snapshot("E", league) == 2000


def test_resets_after_snapshot():
    rule = SnapshotRule(steps=10, rng=np.random.default_rng(99))
    assert all(rule.resets_after_snapshot(MAIN_EXPLOITER) for _ in range(20))
    assert not any(rule.resets_after_snapshot(MAIN) for _ in range(20))
    n = 8000
    assert_frequency(sum(rule.resets_after_snapshot(LEAGUE_EXPLOITER) for _ in range(n)), n, 0.25,
                     "league exploiter resets")
    for kind in (SNAPSHOT, FIXED):
        with pytest.raises(LeagueError, match="never snapshotted"):
            rule.resets_after_snapshot(kind)
    with pytest.raises(LeagueError, match="unknown league member kind"):
        rule.resets_after_snapshot("wizard")
