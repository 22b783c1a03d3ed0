"""# Tag

| Creation           | `arenas.make("tag", num_matches=N)`; one match: `arenas.make_pettingzoo("tag")` (Parallel) |
|--------------------|---------------------------------------------------------------------------------------------|
| Class              | `arenas.tag.Tag` (batched), `arenas.tag.pettingzoo_env.parallel_env` (Parallel)            |
| Rules              | those of mpe2's `simple_tag_v3` (mpe2 1.1), cross-checked against it: `arenas.tag.crosscheck` |
| Turn based         | No: every agent acts every step                                                             |
| Agents             | `num_adversaries + num_good` (default 3 + 1): seats `adversary_0..` (team 0), then `agent_0..` (team 1) |
| Actions            | Discrete(5) (default), or Box(0, 1, (5,)) float32 with `continuous_actions=True`           |
| Observations       | float32, Box(-inf, inf): adversaries (16,), good agents (14,) with the defaults (`team_observation_spaces`); `obs` rows are (16,), good agents' zero-padded |
| Episode            | always `max_cycles` (default 25) steps, then every seat is truncated                       |
| Outcome            | adversaries (team 0) win if any adversary touched a good agent during the episode, else the good agents (team 1) win; never a draw |
| Episode stats      | `return` (mean episode return per agent of the team), `touches` (adversary-good contacts summed over the steps; the same in both rows) |

A predator-prey game on the plane. Slower adversaries (red, radius 0.075, accel 3, max speed 1) chase
faster good agents (green, radius 0.05, accel 4, max speed 1.3) around `num_obstacles` fixed landmarks
(radius 0.2). Nothing dies; every body pushes every other through soft contact forces.

## Start

Each match draws from its own random stream (`simcore.rng`): every agent's x then y uniform in
[-1, 1], then every landmark's in [-0.9, 0.9] (mpe2's ranges; mpe2 draws them from NumPy's generator,
so a seed here does not give mpe2's positions for the same seed). Velocities start at 0.

## Actions

| action | Discrete(5)  | continuous: component k of the Box(0, 1, (5,)) vector |
|--------|--------------|------------------------------------------------------|
| 0      | no action    | unused                                                 |
| 1, 2   | move -x, +x  | force x = (a[2] - a[1]) * accel                        |
| 3, 4   | move -y, +y  | force y = (a[4] - a[3]) * accel                        |

Discrete moves give a force of +-accel along one axis. Continuous components are clipped to [0, 1]
(mpe2's `ClipOutOfBoundsWrapper`); `a[2] - a[1]` is taken in float32, as mpe2 subtracts two float32
components. Out-of-range discrete actions count as 0 (mpe2 asserts); NaN components count as 0.
`action_mask` is all ones.

## One step (mpe2's `World.step`, in float64, in mpe2's order)

1. Force of each agent = its action force (+ 0.0, mpe2's absent noise).
2. Contact forces, pair by pair for entities a < b (agents, then landmarks): with d = p_a - p_b,
   dist = sqrt(d0^2 + d1^2), penetration = logaddexp(0, -(dist - (r_a + r_b)) / 0.001) * 0.001, force
   = 100 * d / dist * penetration, added to a and subtracted from b (landmarks do not move). The soft
   penetration is never exactly 0, so bodies a little apart still push each other slightly.
3. Each agent: position += velocity * 0.1 (the velocity *before* this step's force); velocity =
   velocity * (1 - 0.25) + force * 0.1 (mass 1); if its speed exceeds max speed it is scaled to it.

## Rewards (after the step, from the new positions)

- A contact is an adversary and a good agent closer than the sum of their radii (0.125).
- Every adversary gets +10 per contact of *any* adversary with any good agent (a shared reward).
- A good agent gets -10 per adversary touching it, minus `bound(|x|) + bound(|y|)` of its own
  position, where bound(v) = 0 below 0.9, 10 (v - 0.9) below 1, else min(exp(2v - 2), 10).
- mpe2's optional reward shaping is off (`shape = False` in mpe2), so there is no distance term.

Rewards are computed in float64 and stored as float32.

## Observations

Agent i sees, in this order (all 2-vectors, float64 values rounded to float32):
`[own velocity, own position, each landmark's position - own, each other agent's position - own
(seat order), each other *good* agent's velocity]`. An adversary thus sees 4 + 2L + 2(A-1) + 2G numbers
and a good agent 2 fewer; `game.obs[m, s]` is the adversaries' length and a good agent's last two
entries are 0 (see `simcore.game` for `team_observation_spaces` and `team_obs_index`).

## mpe2 quirks kept (checked by the cross-check)

| quirk | kept as |
|-------|---------|
| position integrates the old velocity, before damping and force | yes |
| softplus contact force acts at any distance (tiny, down to subnormal numbers) | yes, down to 1e-300; smaller ones are dropped (`nb.FORCE_CUTOFF`): they cannot change a float32 observation or a reward, and subnormal arithmetic is ~100x slower |
| force sums in pair order: other entity j ascending, action force first | yes (same float64 rounding) |
| speed cap rescales v / |v| * max_speed | yes |
| adversary reward shared: every adversary is paid for every contact | yes |
| good agents see other good agents' velocities but never adversaries' | yes |
| continuous force difference taken in float32 | yes |
| bound penalty uses exp(2x - 2), capped at 10 | yes |
| rewards float64 in mpe2 | float32 here (error < 1e-5 x max(1, |r|)) |
| out-of-range discrete action: assertion in mpe2 | no-op here |
| `terminate_on_success`, `curriculum`, partial observability, `dynamic_rescaling`, rendering | not offered |

## Ending and auto-reset

Every match lasts exactly `max_cycles` steps: then `truncations` is True for every seat, `episode_done`
is set, `episode_winner` is 0 when `touches > 0` else 1, and (with `auto_reset=True`, the default) the
slot starts a new match in the same step (Gymnasium's SAME_STEP mode, see `simcore.game`). With
`auto_reset=False` the match keeps its final state, its seats turn inactive, and later steps report
nothing for it until `reset()`.

## Options

| option               | default | meaning (range) |
|----------------------|---------|-----------------|
| `num_good`           | 1       | good agents (1..64) |
| `num_adversaries`    | 3       | adversaries (1..64) |
| `num_obstacles`      | 2       | landmarks (0..64) |
| `max_cycles`         | 25      | steps per episode |
| `continuous_actions` | False   | Box(0, 1, (5,)) float32 actions instead of Discrete(5) |

`Tag(..., damping=0.25)` is a constructor argument, not a game option: mpe2 has no such option; it exists
so that tests can show the cross-check failing on a wrong variant.

## Snapshot

`game.snapshot(m)`: `pos`, `vel` (A, 2) float64, `landmarks` (L, 2), `size` (A + L,) radii, `team` (A,),
`step`, `touches`. `game.set_state(m, agent_pos, agent_vel, landmark_pos)` puts a match in a chosen state.

## Version history

| version | change |
|---------|--------|
| v0      | first release: rules of mpe2 1.1's `simple_tag_v3` |
"""
from __future__ import annotations

from arenas.registry import ArenaSpec

from .game import DEFAULTS, Tag


def _parallel_env(**options):
    from .pettingzoo_env import parallel_env

    return parallel_env(**options)


SPEC = ArenaSpec(
    name="tag",
    game=Tag,
    pettingzoo=_parallel_env,
    description="predator-prey on a plane, adversaries chase good agents; the rules of mpe2's simple_tag_v3",
    defaults=dict(DEFAULTS),
)

__all__ = ["SPEC", "Tag"]
