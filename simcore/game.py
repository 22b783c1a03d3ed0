"""The contract every batched arena implements.

A ``BatchedGame`` holds ``num_matches`` independent matches of one game, each with ``num_agents`` seats
split into ``num_teams`` teams. All state is struct-of-arrays with the match axis first, and every
buffer below is allocated once in ``__init__``; ``reset`` and ``step`` only write into them::

    game = arenas.make("battle", num_matches=4096, seed=0)
    game.reset(seed=0)
    while True:
        game.actions[...] = policy(game.obs, game.action_mask) # (N, A) integers (or floats, below)
        game.step(game.actions)                                 # kernels write the buffers in place
        finished = game.episode_done                            # (N,) matches that ended this step
        ...  # read game.episode_winner / episode_length / episode_stats for those rows

Buffers (N = num_matches, A = num_agents, T = num_teams, K = len(stat_names)):

================== ============================ ====================================================
name               shape, dtype                 meaning
================== ============================ ====================================================
``obs``            (N, A, *obs_shape)           each seat's observation for the coming step
                                                (zero-padded when teams see different shapes, below)
``action_mask``    (N, A, num_actions) int8     1 where the action is legal for that seat
                                                (continuous actions: 1 for each component it reads)
``actions``        (N, A) int64, or             the action buffer ``step`` reads (pass it back to
                   (N, A, *action_shape)        ``step`` to avoid a copy); the second form for a
                   with the Box's dtype         continuous (``Box``) action space
``active``         (N, A) bool                  seats whose action is read by the next ``step``
                                                (the player to move; the agents still alive)
``rewards``        (N, A) float32               reward each seat got from the last step
``terminations``   (N, A) bool                  the seat's episode ended by the rules last step
``truncations``    (N, A) bool                  the match hit its step limit last step
``episode_done``   (N,) bool                    the match ended last step and was auto-reset
``episode_winner`` (N,) int8                    winning team of that ended match, ``-1`` for a draw
``episode_length`` (N,) int32                   steps the ended match lasted
``episode_stats``  (N, T, K) float32            per-team statistics of the ended match
``step_count``     (N,) int32                   steps played so far in each current match
``match_rng``      (N,) uint64                  the RNG state each current match started from
================== ============================ ====================================================

Spaces. ``single_observation_space`` is the space of one row ``obs[m, s]``. ``team_observation_spaces``
holds one space per team (index = team): what a seat of that team really observes. In most games every
team sees the same thing and it is ``(single_observation_space,) * num_teams``. Where teams differ (in
``tag`` the adversaries see 16 numbers and the good agents 14), every team space has the same ndim and
dtype as ``single_observation_space`` and fits inside it, and a seat's observation is the leading corner
``obs[m, s][game.team_obs_index(team)]`` of its row; the rest of the row is zero. A learner may feed the
padded rows to one network, or cut each team's rows to its own space. A runner asks an agent for one
team's rows at a time, cut to that team's space: so a network sees its team's own input, and a
scripted agent tells the sides apart by the width of the rows (``agents.greedy_tag``).

``single_action_space`` is ``Discrete(n)`` (``num_actions == n``, ``actions`` is ``(N, A)`` int64, the
mask marks legal actions) or a 1-D ``Box`` for continuous actions (``continuous_actions`` is True,
``num_actions`` is the Box's length, ``actions`` is ``(N, A, num_actions)`` with the Box's dtype, and
``action_mask`` is 1 for every component an active seat's action uses). How a game treats values outside
the Box (clipping, say) is part of its rules and its docstring says it.

Auto-reset follows Gymnasium's ``SAME_STEP`` mode: when a match ends inside ``step``, ``rewards``,
``terminations``, ``truncations`` and the ``episode_*`` rows describe the step that ended it, while
``obs``, ``action_mask`` and ``active`` already show the first position of the next match in that slot.

Every match draws its random numbers from its own counter-based stream (``simcore.rng``), so results
depend on the seed alone, never on the number of threads. A reset stores the stream's state in
``match_rng`` before it draws anything: setting ``rng_states[m]`` to that value and calling
``reset_matches([m])`` restarts exactly the same match, so a match can be replayed from its
``match_rng`` and its actions alone.

Where the buffers live. ``obs`` and ``action_mask`` are what other processes read (policy workers on the
same host); inside ``with shared_buffers(allocate):`` a game made there takes those two from
``allocate(name, shape, dtype)`` (zero-filled memory the caller owns, e.g. shared memory in
``server.net.shm``) instead of ``np.zeros``, and the kernels write straight into it. Nothing else changes.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, ClassVar, Iterator

import gymnasium
import numpy as np

from .rng import seed_states

DRAW = -1


#: the allocator of ``obs`` and ``action_mask`` while a ``shared_buffers`` block runs (None: ``np.zeros``)
_allocator: Callable[[str, tuple, np.dtype], np.ndarray] | None = None


@contextlib.contextmanager
def shared_buffers(allocate: Callable[[str, tuple, np.dtype], np.ndarray]) -> Iterator[None]:
    """Games made inside this block take ``obs`` and ``action_mask`` from ``allocate(name, shape, dtype)``,
    which must return a zero-filled, C-contiguous array of exactly that shape and dtype."""
    global _allocator
    before, _allocator = _allocator, allocate
    try:
        yield
    finally:
        _allocator = before


def _zeros(name: str, shape: tuple, dtype) -> np.ndarray:
    if _allocator is None:
        return np.zeros(shape, dtype=dtype)
    out = _allocator(name, tuple(int(d) for d in shape), np.dtype(dtype))
    if out.shape != tuple(shape) or out.dtype != np.dtype(dtype) or not out.flags.c_contiguous:
        raise ValueError(f"shared_buffers: the allocator gave {name} {out.dtype}{out.shape}, "
                         f"not a C-contiguous {np.dtype(dtype)}{tuple(shape)}")
    return out


class BatchedGame:
    """Base class: subclasses set the class attributes, call ``_allocate`` and implement the kernels."""

    #: registry name of the game
    name: ClassVar[str] = ""
    #: names of the per-team statistics in ``episode_stats`` (e.g. ``("kills", "survivors")``)
    stat_names: ClassVar[tuple[str, ...]] = ()
    #: True when only one seat moves per step (connect4); False when all live seats act together
    turn_based: ClassVar[bool] = False

    num_matches: int
    num_agents: int
    num_teams: int
    seat_team: np.ndarray
    single_observation_space: gymnasium.spaces.Box
    single_action_space: gymnasium.spaces.Discrete | gymnasium.spaces.Box
    options: dict[str, Any]
    #: per-team spaces when teams see different shapes; ``None``: every team sees the whole row
    _team_observation_spaces: tuple[gymnasium.spaces.Box, ...] | None = None

    def _allocate(self, num_matches: int, num_agents: int, seat_team: np.ndarray,
                  obs_space: gymnasium.spaces.Box, num_actions: int, *,
                  team_observation_spaces: tuple[gymnasium.spaces.Box, ...] | None = None,
                  action_space: gymnasium.spaces.Box | None = None) -> None:
        """Allocate every buffer of the contract. Called once from a subclass's ``__init__``.

        ``num_actions`` gives a ``Discrete`` action space; pass a 1-D ``Box`` as ``action_space`` instead
        for continuous actions (``num_actions`` is then ignored). ``team_observation_spaces`` (one per
        team) when teams see different shapes: ``obs_space`` must hold each of them (see the module
        docstring).
        """
        if num_matches < 1:
            raise ValueError(f"num_matches must be at least 1, got {num_matches}")
        n, a = int(num_matches), int(num_agents)
        self.num_matches, self.num_agents = n, a
        self.seat_team = np.asarray(seat_team, dtype=np.int64)
        self.num_teams = int(self.seat_team.max()) + 1
        self.single_observation_space = obs_space
        if team_observation_spaces is not None:
            team_observation_spaces = tuple(team_observation_spaces)
            if len(team_observation_spaces) != self.num_teams:
                raise ValueError(f"team_observation_spaces needs one space per team ({self.num_teams}), "
                                 f"got {len(team_observation_spaces)}")
            for t, sp in enumerate(team_observation_spaces):
                if sp.dtype != obs_space.dtype or len(sp.shape) != len(obs_space.shape) or \
                        any(d > e for d, e in zip(sp.shape, obs_space.shape)):
                    raise ValueError(f"team {t}'s observation space {sp} must have the dtype and ndim of "
                                     f"single_observation_space {obs_space} and fit inside it")
        self._team_observation_spaces = team_observation_spaces
        if action_space is None:
            self.single_action_space = gymnasium.spaces.Discrete(num_actions)
            self.actions = np.zeros((n, a), dtype=np.int64)
        else:
            if not isinstance(action_space, gymnasium.spaces.Box) or len(action_space.shape) != 1:
                raise ValueError(f"action_space must be a 1-D gymnasium Box, got {action_space}")
            self.single_action_space = action_space
            self.actions = np.zeros((n, a) + tuple(action_space.shape), dtype=action_space.dtype)
        self.obs = _zeros("obs", (n, a) + tuple(obs_space.shape), obs_space.dtype)
        self.action_mask = _zeros("action_mask", (n, a, self.num_actions), np.int8)
        self.active = np.zeros((n, a), dtype=np.bool_)
        self.rewards = np.zeros((n, a), dtype=np.float32)
        self.terminations = np.zeros((n, a), dtype=np.bool_)
        self.truncations = np.zeros((n, a), dtype=np.bool_)
        self.episode_done = np.zeros(n, dtype=np.bool_)
        self.episode_winner = np.full(n, DRAW, dtype=np.int8)
        self.episode_length = np.zeros(n, dtype=np.int32)
        self.episode_stats = np.zeros((n, self.num_teams, len(self.stat_names)), dtype=np.float32)
        self.step_count = np.zeros(n, dtype=np.int32)
        self.rng_states = seed_states(0, n)
        self.match_rng = np.zeros(n, dtype=np.uint64)

    @property
    def continuous_actions(self) -> bool:
        """True when ``single_action_space`` is a ``Box``: ``actions`` holds floats, one vector per seat."""
        return isinstance(self.single_action_space, gymnasium.spaces.Box)

    @property
    def num_actions(self) -> int:
        """``n`` of a ``Discrete`` action space; the length of a ``Box`` action vector."""
        space = self.single_action_space
        return int(space.shape[0]) if isinstance(space, gymnasium.spaces.Box) else int(space.n)

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one seat's action: ``()`` for ``Discrete``, ``(num_actions,)`` for a ``Box``."""
        return tuple(self.single_action_space.shape)

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.single_observation_space.shape)

    @property
    def team_observation_spaces(self) -> tuple[gymnasium.spaces.Box, ...]:
        """One observation space per team; ``(single_observation_space,) * num_teams`` unless teams differ."""
        if self._team_observation_spaces is None:
            return (self.single_observation_space,) * self.num_teams
        return self._team_observation_spaces

    def team_obs_index(self, team: int) -> tuple[slice, ...]:
        """Index of team ``team``'s observation inside one row: ``obs[m, s][game.team_obs_index(t)]``.

        Rows of many seats of team ``t`` (shape ``(B, *obs_shape)``): ``rows[(slice(None),) + index]``."""
        return tuple(slice(0, d) for d in self.team_observation_spaces[team].shape)

    # -- the two calls of the contract -------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start a fresh match in every slot. ``seed=None`` draws one from the OS. Returns ``obs``."""
        if seed is None:
            seed = int(np.random.SeedSequence().entropy) & 0xFFFFFFFFFFFFFFFF
        self.rng_states[:] = seed_states(seed, self.num_matches)
        self.rewards[:] = 0
        self.terminations[:] = False
        self.truncations[:] = False
        self.episode_done[:] = False
        self.episode_winner[:] = DRAW
        self.episode_length[:] = 0
        self.episode_stats[:] = 0
        self.step_count[:] = 0
        self._reset_all()
        return self.obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Apply one action per seat, then auto-reset. ``actions`` has the shape of ``self.actions``:
        ``(N, A)`` integers, or ``(N, A, num_actions)`` floats for continuous actions; inactive seats are
        ignored.

        Returns the (reused) buffers ``obs, rewards, terminations, truncations``.
        """
        if actions is not self.actions:
            np.copyto(self.actions, actions, casting="unsafe")
        self._step()
        return self.obs, self.rewards, self.terminations, self.truncations

    def reset_matches(self, slots) -> None:
        """Start a fresh match in the given slots only (after a forfeit, say), each from its own RNG
        stream; the other matches are untouched. ``episode_*`` rows are not written for them."""
        slots = np.asarray(slots, dtype=np.int64)
        if slots.size == 0:
            return
        which = np.zeros(self.num_matches, dtype=np.bool_)
        which[slots] = True
        self._reset_some(which)

    # -- what subclasses implement -----------------------------------------------------------------
    def _reset_all(self) -> None:
        raise NotImplementedError

    def _step(self) -> None:
        raise NotImplementedError

    def _reset_some(self, which: np.ndarray) -> None:
        """Reset the matches where ``which`` (``(N,)`` bool) is True: new position, obs, mask,
        active, ``step_count`` 0; rewards and flags of those rows cleared."""
        raise NotImplementedError

    def snapshot(self, match: int) -> dict[str, np.ndarray]:
        """A read-only copy of one match's state, for renderers and tests."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_matches={self.num_matches}, num_agents={self.num_agents}, "
                f"obs={self.obs_shape}:{self.obs.dtype}, "
                f"actions={self.single_action_space if self.continuous_actions else self.num_actions})")
