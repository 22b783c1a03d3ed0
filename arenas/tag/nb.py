"""Numba kernels of the tag arena (arrays and scalars in, no Python objects).

State of match ``m`` (allocated by ``game.Tag``), with ``A`` agents (adversaries first, as in mpe2's
``world.agents``), ``L`` landmarks and ``E = A + L`` entities:

- ``pos[m]`` ``(E, 2)`` float64: positions, agents ``0..A-1`` then landmarks (they never move).
- ``vel[m]`` ``(A, 2)`` float64: agent velocities.
- ``force[m]`` ``(A, 2)`` float64: scratch for the forces of one step.
- ``ep_return[m]`` ``(A,)`` float64 and ``ep_touches[m]`` int64: what the current episode has earned.
- ``finished[m]``: the match ended with ``auto_reset`` off and waits for ``reset``.

Per-entity constants: ``size`` ``(E,)``, ``accel`` and ``max_speed`` ``(A,)`` float64.

Every float operation of mpe2's ``World.step`` and ``Scenario.reward`` is done in float64 and in the
same order (see the package docstring for the list), so that states stay bit-for-bit those of mpe2
as far as the C library's ``exp``/``log1p`` agree with NumPy's, with one exception: contact forces
under 1e-300 are dropped (``FORCE_CUTOFF``), which can only change velocities by less than that.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from simcore.rng import rand_float

NUM_ACTIONS = 5          # no_action, move_left, move_right, move_down, move_up
DT = 0.1                 # World.dt
DAMPING = 0.25           # World.damping
CONTACT_FORCE = 1e2      # World.contact_force
CONTACT_MARGIN = 1e-3    # World.contact_margin
MASS = 1.0               # Entity.initial_mass
ADVERSARY_SIZE, GOOD_SIZE, LANDMARK_SIZE = 0.075, 0.05, 0.2
ADVERSARY_ACCEL, GOOD_ACCEL = 3.0, 4.0
ADVERSARY_MAX_SPEED, GOOD_MAX_SPEED = 1.0, 1.3
TOUCH_REWARD = 10.0
LOGE2 = 0.693147180559945309417232121458176568  # NumPy's NPY_LOGE2
#: below this softplus argument ``-(dist - dist_min) / margin`` a contact force is dropped: it is under
#: 1e-300 (the penetration ``exp(y) * 0.001`` would soon be a subnormal number, ~100x slower to
#: compute), far below what could change a float32 observation or any reward. mpe2 adds it.
FORCE_CUTOFF = -690.0
#: ``exp(y) < 2**-54`` below this: ``log1p(exp(y))`` is exactly ``exp(y)`` (the C library returns tiny
#: arguments unchanged)
_LOG1P_IDENTITY = -38.0


@nb.njit(cache=True, inline="always")
def logaddexp0_nb(y):
    """``np.logaddexp(0.0, y)`` computed as NumPy's ``npy_logaddexp`` does."""
    if y < _LOG1P_IDENTITY:
        return math.exp(y)
    if y == 0.0:
        return LOGE2
    tmp = -y
    if tmp > 0:
        return math.log1p(math.exp(-tmp))
    if tmp <= 0:
        return y + math.log1p(math.exp(tmp))
    return tmp  # NaN


@nb.njit(cache=True, inline="always")
def bound_nb(x):
    """The good agents' penalty for straying, of ``x = |coordinate|`` (mpe2's ``bound``)."""
    if x < 0.9:
        return 0.0
    if x < 1.0:
        return (x - 0.9) * 10
    return min(math.exp(2 * x - 2), 10.0)


@nb.njit(cache=True, inline="always")
def clip01_nb(v):
    """A continuous action component clipped to the Box [0, 1] (float32); NaN counts as 0."""
    if v > np.float32(1.0):
        return np.float32(1.0)
    if v >= np.float32(0.0):
        return v
    return np.float32(0.0)


@nb.njit(cache=True, inline="always")
def write_obs_nb(m, num_adv, pos, vel, obs):
    """Every agent's observation of match ``m``, in mpe2's order:
    ``[self_vel, self_pos, landmark_rel_pos..., other_agent_rel_pos..., other_good_agent_vel...]``,
    float64 values rounded to float32, the rest of the row zero."""
    a_n = vel.shape[1]
    e_n = pos.shape[1]
    for i in range(a_n):
        o = obs[m, i]
        px = pos[m, i, 0]
        py = pos[m, i, 1]
        o[0] = vel[m, i, 0]
        o[1] = vel[m, i, 1]
        o[2] = px
        o[3] = py
        k = 4
        for e in range(a_n, e_n):
            o[k] = pos[m, e, 0] - px
            o[k + 1] = pos[m, e, 1] - py
            k += 2
        for j in range(a_n):
            if j != i:
                o[k] = pos[m, j, 0] - px
                o[k + 1] = pos[m, j, 1] - py
                k += 2
        for j in range(num_adv, a_n):
            if j != i:
                o[k] = vel[m, j, 0]
                o[k + 1] = vel[m, j, 1]
                k += 2
        while k < o.shape[0]:
            o[k] = 0.0
            k += 1


@nb.njit(cache=True, inline="always")
def reset_match_nb(m, rng_states, match_rng, num_adv, pos, vel, ep_return, ep_touches, finished, obs, active,
                   step_count):
    """Start a new match in slot ``m``: agents uniform in [-1, 1]^2, landmarks in [-0.9, 0.9]^2 (mpe2's
    ranges, drawn from ``rng_states[m]``: x then y of each agent, then of each landmark), at rest.

    ``match_rng[m]`` keeps the stream's state before the draws: a replay restarts the match from it."""
    match_rng[m] = rng_states[m]
    a_n = vel.shape[1]
    for e in range(pos.shape[1]):
        half = 1.0 if e < a_n else 0.9
        for d in range(2):
            pos[m, e, d] = -half + 2.0 * half * rand_float(rng_states, m)
    for i in range(a_n):
        vel[m, i, 0] = 0.0
        vel[m, i, 1] = 0.0
        ep_return[m, i] = 0.0
        active[m, i] = True
    ep_touches[m] = 0
    step_count[m] = 0
    finished[m] = False
    write_obs_nb(m, num_adv, pos, vel, obs)


@nb.njit(cache=True)
def reset_all_nb(rng_states, match_rng, num_adv, pos, vel, ep_return, ep_touches, finished, obs, active,
                 step_count):
    """``reset_match_nb`` for every match, on the calling thread (well under a microsecond a match; the
    per-step auto-resets happen inside the step kernel)."""
    for m in range(pos.shape[0]):
        reset_match_nb(m, rng_states, match_rng, num_adv, pos, vel, ep_return, ep_touches, finished, obs,
                       active, step_count)


@nb.njit(cache=True)
def reset_some_nb(which, rng_states, match_rng, num_adv, pos, vel, ep_return, ep_touches, finished, obs,
                  active, step_count, rewards, terminations, truncations):
    """``reset_match_nb`` for the matches where ``which`` is True, clearing their rewards and flags."""
    for m in range(pos.shape[0]):
        if which[m]:
            reset_match_nb(m, rng_states, match_rng, num_adv, pos, vel, ep_return, ep_touches, finished, obs,
                           active, step_count)
            for i in range(rewards.shape[1]):
                rewards[m, i] = 0.0
                terminations[m, i] = False
                truncations[m, i] = False


@nb.njit(cache=True)
def refresh_obs_nb(which, num_adv, pos, vel, obs):
    """Rewrite the observations of the matches where ``which`` is True (after a state was set by hand)."""
    for m in range(pos.shape[0]):
        if which[m]:
            write_obs_nb(m, num_adv, pos, vel, obs)


@nb.njit(cache=True, inline="always")
def physics_nb(m, actions_d, actions_c, continuous, pos, vel, force, size, accel, max_speed, damping):
    """mpe2's ``World.step`` for match ``m``: action forces, contact forces, integration."""
    a_n = vel.shape[1]
    e_n = pos.shape[1]
    # action forces (SimpleEnv._set_action): u = direction * accel, float64
    for i in range(a_n):
        ux = 0.0
        uy = 0.0
        if continuous:
            # float32 differences of the clipped Box components, as mpe2 subtracts np.float32 scalars
            ux = np.float64(clip01_nb(actions_c[m, i, 2]) - clip01_nb(actions_c[m, i, 1]))
            uy = np.float64(clip01_nb(actions_c[m, i, 4]) - clip01_nb(actions_c[m, i, 3]))
        else:
            act = actions_d[m, i]
            if act == 1:
                ux = -1.0
            elif act == 2:
                ux = 1.0
            elif act == 3:
                uy = -1.0
            elif act == 4:
                uy = 1.0
        force[m, i, 0] = ux * accel[i]
        force[m, i, 1] = uy * accel[i]
    # contact forces, pair by pair in mpe2's order (a < b over agents then landmarks); landmark pairs
    # move nothing. Each entity's sum is taken in the same order as mpe2's.
    for a in range(a_n):
        for b in range(a + 1, e_n):
            dx = pos[m, a, 0] - pos[m, b, 0]
            dy = pos[m, a, 1] - pos[m, b, 1]
            dist_min = size[a] + size[b]
            d2 = dx * dx + dy * dy
            reach = dist_min - FORCE_CUTOFF * CONTACT_MARGIN + 0.01
            if d2 > reach * reach:
                continue  # far apart: y is well below FORCE_CUTOFF, skip the square root
            dist = math.sqrt(d2)
            y = -(dist - dist_min) / CONTACT_MARGIN
            if y < FORCE_CUTOFF:
                continue  # a force under 1e-300, see FORCE_CUTOFF
            penetration = logaddexp0_nb(y) * CONTACT_MARGIN
            fx = CONTACT_FORCE * dx / dist * penetration
            fy = CONTACT_FORCE * dy / dist * penetration
            force[m, a, 0] += fx
            force[m, a, 1] += fy
            if b < a_n:
                force[m, b, 0] -= fx
                force[m, b, 1] -= fy
    # integrate (World.integrate_state): position with the old velocity, then damping, force, speed cap
    keep = 1 - damping
    for i in range(a_n):
        pos[m, i, 0] += vel[m, i, 0] * DT
        pos[m, i, 1] += vel[m, i, 1] * DT
        vx = vel[m, i, 0] * keep
        vy = vel[m, i, 1] * keep
        vx += (force[m, i, 0] / MASS) * DT
        vy += (force[m, i, 1] / MASS) * DT
        speed = math.sqrt(vx * vx + vy * vy)
        if speed > max_speed[i]:
            vx = vx / speed * max_speed[i]
            vy = vy / speed * max_speed[i]
        vel[m, i, 0] = vx
        vel[m, i, 1] = vy


@nb.njit(cache=True, inline="always")
def rewards_nb(m, num_adv, pos, size, rewards, ep_return):
    """mpe2's rewards after the world step; returns the adversary-good contacts of this step."""
    a_n = rewards.shape[1]
    touches = 0
    for g in range(num_adv, a_n):
        hits = 0
        for j in range(num_adv):
            dx = pos[m, g, 0] - pos[m, j, 0]
            dy = pos[m, g, 1] - pos[m, j, 1]
            if math.sqrt(dx * dx + dy * dy) < size[g] + size[j]:
                hits += 1
        touches += hits
        rew = 0.0 - TOUCH_REWARD * hits  # mpe2 starts from the integer 0: never -0.0
        rew -= bound_nb(abs(pos[m, g, 0]))
        rew -= bound_nb(abs(pos[m, g, 1]))
        rewards[m, g] = rew
        ep_return[m, g] += rew
    rew = TOUCH_REWARD * touches
    for j in range(num_adv):
        rewards[m, j] = rew
        ep_return[m, j] += rew
    return touches


@nb.njit(cache=True, inline="always")
def step_match_nb(m, actions_d, actions_c, continuous, rng_states, match_rng, num_adv, pos, vel, force, size,
                  accel, max_speed, damping, max_cycles, auto_reset, ep_return, ep_touches, finished, obs,
                  active, rewards, terminations, truncations, episode_done, episode_winner, episode_length,
                  episode_stats, step_count):
    """One step of match ``m``: physics, rewards, the step limit, auto-reset, observations."""
    a_n = vel.shape[1]
    episode_done[m] = False
    for i in range(a_n):
        rewards[m, i] = 0.0
        terminations[m, i] = False
        truncations[m, i] = False
    if finished[m]:  # ended with auto_reset off: untouched until reset()
        return
    physics_nb(m, actions_d, actions_c, continuous, pos, vel, force, size, accel, max_speed, damping)
    ep_touches[m] += rewards_nb(m, num_adv, pos, size, rewards, ep_return)
    step_count[m] += 1
    if step_count[m] >= max_cycles:
        for i in range(a_n):
            truncations[m, i] = True
        episode_done[m] = True
        episode_winner[m] = 0 if ep_touches[m] > 0 else 1
        episode_length[m] = step_count[m]
        adv_sum = 0.0
        good_sum = 0.0
        for i in range(a_n):
            if i < num_adv:
                adv_sum += ep_return[m, i]
            else:
                good_sum += ep_return[m, i]
        episode_stats[m, 0, 0] = adv_sum / num_adv
        episode_stats[m, 1, 0] = good_sum / (a_n - num_adv)
        episode_stats[m, 0, 1] = ep_touches[m]
        episode_stats[m, 1, 1] = ep_touches[m]
        if auto_reset:
            reset_match_nb(m, rng_states, match_rng, num_adv, pos, vel, ep_return, ep_touches, finished, obs,
                           active, step_count)
            return
        finished[m] = True
        for i in range(a_n):
            active[m, i] = False
    write_obs_nb(m, num_adv, pos, vel, obs)


@nb.njit(cache=True, parallel=True)
def step_nb(actions_d, actions_c, continuous, rng_states, match_rng, num_adv, pos, vel, force, size, accel,
            max_speed, damping, max_cycles, auto_reset, ep_return, ep_touches, finished, obs, active, rewards,
            terminations, truncations, episode_done, episode_winner, episode_length, episode_stats, step_count):
    """``step_match_nb`` on every match, spread over threads."""
    for m in nb.prange(pos.shape[0]):
        step_match_nb(m, actions_d, actions_c, continuous, rng_states, match_rng, num_adv, pos, vel, force, size,
                      accel, max_speed, damping, max_cycles, auto_reset, ep_return, ep_touches, finished, obs,
                      active, rewards, terminations, truncations, episode_done, episode_winner, episode_length,
                      episode_stats, step_count)


@nb.njit(cache=True)
def step_serial_nb(actions_d, actions_c, continuous, rng_states, match_rng, num_adv, pos, vel, force, size,
                   accel, max_speed, damping, max_cycles, auto_reset, ep_return, ep_touches, finished, obs, active,
                   rewards, terminations, truncations, episode_done, episode_winner, episode_length,
                   episode_stats, step_count):
    """``step_nb`` on the calling thread, for a few matches (no thread wake-ups)."""
    for m in range(pos.shape[0]):
        step_match_nb(m, actions_d, actions_c, continuous, rng_states, match_rng, num_adv, pos, vel, force, size,
                      accel, max_speed, damping, max_cycles, auto_reset, ep_return, ep_touches, finished, obs,
                      active, rewards, terminations, truncations, episode_done, episode_winner, episode_length,
                      episode_stats, step_count)
