"""Loading agents (and arenas) named on the command line.

An agent spec is one of:

- a built-in name: ``random``, ``greedy``, ``search`` (connect4);
- ``ckpt:PATH`` — a saved neural policy: a checkpoint folder (``agents.checkpoint``: PATH holds
  ``checkpoint.json``, the latest checkpoint is loaded), or the single ``PATH.safetensors`` plus its
  ``.json`` metadata of earlier runs; ``ckpt:builtin/NAME`` is a policy shipped with arena
  (``agents.builtin``: ``ckpt:builtin/connect4``);
- the name of an entry point in the group ``arena.agents`` of any installed package;
- ``path/to/file.py:Attr`` (any spec whose part before the last ``:`` ends in ``.py`` or contains ``/``);
- ``package.module:Attr`` — an importable module.

``Attr`` may be a class (an ``Agent`` subclass or any class with ``act(obs, mask)``), a factory
function, or a ready agent object (anything with ``act``). A class or factory is called with ``game``,
``seed`` and the agent arguments only as far as its signature accepts them (``**kwargs`` accepts all),
so ``class Bot: def act(self, obs, mask): ...`` is simply ``Bot()``. Agent arguments come from
``--agent-arg NAME.key=value``, where NAME is the spec as typed, its ``Attr`` part or the built-in name;
one that the constructor does not accept is refused with one line.
"""
from __future__ import annotations

import inspect
from importlib import metadata
from typing import Any

from simcore.plugins import PluginError, is_file_spec, load_attr

from . import builtin, registry
from .base import Agent
from .registry import UnknownAgent

ENTRY_POINT_GROUP = "arena.agents"


def entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def kind(spec: str) -> str:
    """``builtin``, ``ckpt``, ``entry_point``, ``file`` or ``module``."""
    if spec in registry.names():
        return "builtin"
    if spec.startswith("ckpt:"):
        return "ckpt"
    if spec in entry_points():
        return "entry_point"
    if is_file_spec(spec):
        return "file"
    if ":" in spec:
        return "module"
    raise UnknownAgent(f"unknown agent {spec!r}; choose from: {', '.join(registry.names() + sorted(entry_points()))}, "
                       f"module:Attr, path/to/file.py:Attr or ckpt:PATH")


class DuckAgent(Agent):
    """Gives an object that only has ``act`` the rest of the protocol (each optional method is
    called when the object has it)."""

    def __init__(self, inner: Any):
        self.inner, self.game, self.seed = inner, None, 0

    def __getattr__(self, attr: str):   # anything else (reseed, user extras) is the inner object's
        if attr == "inner":
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def act(self, obs, mask):
        return self.inner.act(obs, mask)

    def reset(self, seed=None):
        if hasattr(self.inner, "reset"):
            self.inner.reset(seed)

    def on_match_start(self, slots):
        if hasattr(self.inner, "on_match_start"):
            self.inner.on_match_start(slots)

    def on_match_end(self, slots, outcomes):
        if hasattr(self.inner, "on_match_end"):
            self.inner.on_match_end(slots, outcomes)

    def close(self):
        if hasattr(self.inner, "close"):
            self.inner.close()


def adapt(agent: Any) -> Agent:
    return agent if isinstance(agent, Agent) else DuckAgent(agent)


def accepted(obj: Any) -> tuple[set[str], bool] | None:
    """The keyword arguments ``obj(...)`` accepts and whether it takes ``**kwargs``; ``None`` when its
    signature cannot be read (some C extension types): then it gets ``game`` and ``seed``."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    names = {p.name for p in sig.parameters.values()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def instantiate(obj: Any, spec: str, game, seed: int, args: dict[str, Any]):
    """Turn a loaded attribute into an agent object.

    A class or factory gets ``game``, ``seed`` and the ``--agent-arg`` values only as far as its
    signature accepts them (``**kwargs`` accepts everything): ``class Bot: def act(self, obs, mask)``
    is called as ``Bot()``. An ``--agent-arg`` it does not accept is refused with one line."""
    if hasattr(obj, "act") and not inspect.isclass(obj):
        if args:
            raise UnknownAgent(f"cannot pass arguments {sorted(args)} to {spec!r}: it is an agent object, not a class")
        return obj
    if not callable(obj):
        raise UnknownAgent(f"cannot load {spec!r}: it is a {type(obj).__name__}, not an agent class or object")
    takes = accepted(obj)
    if takes is None:
        kwargs = {"game": game, "seed": seed, **args}
    else:
        names, var = takes
        unknown = sorted(k for k in args if k not in names and not var)
        if unknown:
            offered = sorted(names - {"game", "seed"})
            raise UnknownAgent(f"cannot pass --agent-arg {', '.join(unknown)} to {spec!r}: its constructor "
                               f"accepts {', '.join(offered) if offered else 'no arguments'}")
        kwargs = {k: v for k, v in (("game", game), ("seed", seed)) if var or k in names}
        kwargs.update(args)
    try:
        agent = obj(**kwargs)
    except TypeError as exc:
        raise UnknownAgent(f"cannot create {spec!r}: {exc}") from None
    except Exception as exc:
        raise UnknownAgent(f"cannot create {spec!r}: its constructor raised {type(exc).__name__}: {exc}") from None
    if not hasattr(agent, "act"):
        raise UnknownAgent(f"cannot load {spec!r}: it made a {type(agent).__name__}, which has no act(obs, mask)")
    return agent


def load_agent(spec: str, game, seed: int = 0, args: dict[str, Any] | None = None):
    """Build the agent ``spec`` (see the module docstring) for ``game``."""
    args = dict(args or {})
    how = kind(spec)
    if how == "builtin":
        try:
            agent = registry.make_agent(spec, game, seed=seed, **args)
        except (TypeError, ValueError) as exc:     # an unknown option, or a bad value for one
            raise UnknownAgent(f"cannot create {spec!r}: {exc}") from None
    elif how == "ckpt":
        from .neural import NeuralAgent
        try:
            agent = NeuralAgent.load(builtin.resolve(spec[len("ckpt:"):]), game=game, seed=seed, **args)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:   # CheckpointError is a ValueError
            raise UnknownAgent(f"cannot load {spec!r}: {exc}") from None
    elif how == "entry_point":
        try:
            obj = entry_points()[spec].load()
        except Exception as exc:
            raise UnknownAgent(f"cannot load entry point {spec!r}: {type(exc).__name__}: {exc}") from None
        agent = instantiate(obj, spec, game, seed, args)
    else:
        try:
            obj = load_attr(spec)
        except PluginError as exc:
            raise UnknownAgent(str(exc)) from None
        agent = instantiate(obj, spec, game, seed, args)
    agent = adapt(agent)
    agent.name = spec
    return agent


def split_agent_args(items: list[str] | None, specs: list[str]) -> dict[str, dict[str, Any]]:
    """``["Sniper.depth=3"]`` -> ``{spec: {"depth": 3}}`` for the spec that NAME designates."""
    from simcore.options import parse_value

    out: dict[str, dict[str, Any]] = {s: {} for s in specs}
    for item in items or []:
        head, sep, value = item.partition("=")
        name, dot, key = head.rpartition(".")
        if not sep or not dot or not name or not key:
            raise ValueError(f"--agent-arg {item!r} must look like NAME.key=value, e.g. Sniper.depth=3")
        matches = [s for s in specs if name in (s, s.rpartition(":")[2], s.split("#")[0])]
        if not matches:
            raise ValueError(f"--agent-arg {item!r}: no agent named {name!r} among {', '.join(specs)}")
        for s in matches:
            out[s][key] = parse_value(value)
    return out
