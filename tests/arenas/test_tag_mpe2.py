"""Tag against mpe2's simple_tag_v3 itself: whole seeded episodes from mpe2's own start states, the same
random actions, every observation, reward and flag compared (``arenas.tag.crosscheck``)."""
from __future__ import annotations

import pytest

from arenas.tag.crosscheck import TOLERANCE, crosscheck

pytest.importorskip("mpe2")


@pytest.mark.parametrize("continuous", [False, True])
def test_a_thousand_episodes_agree_with_mpe2(continuous):
    report = crosscheck(episodes=1000, continuous=continuous, seed=0)
    assert report.ok, str(report)
    assert report.episodes == 1000 and report.steps == 25_000 and report.tolerance == TOLERANCE
    assert report.max_abs_error["obs"] <= 1e-6, "observations are float32 rounding of the same float64 state"
    assert report.max_abs_error["rewards"] <= TOLERANCE


@pytest.mark.parametrize("options", [dict(num_good=2, num_adversaries=2, num_obstacles=3, max_cycles=30),
                                     dict(num_good=3, num_adversaries=1, num_obstacles=0, max_cycles=10,
                                          continuous=True)])
def test_other_sizes_agree_with_mpe2(options):
    report = crosscheck(episodes=100, seed=7, **options)
    assert report.ok, str(report)


@pytest.mark.parametrize("continuous", [False, True])
def test_a_wrong_damping_is_caught(continuous):
    report = crosscheck(episodes=50, continuous=continuous, seed=0, damping=0.26)
    assert not report.ok
    first = report.first_mismatch
    assert first["episode"] == 0 and first["field"] == "obs" and first["step"] <= 3, str(report)
    assert report.mismatched_episodes > 40 and report.max_abs_error["obs"] > 1e-3
    assert "MISMATCH" in str(report) and "damping 0.26" in str(report)
