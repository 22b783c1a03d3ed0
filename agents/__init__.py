"""agents: the batched Agent protocol, the built-in agents and loading agents by name."""
from .base import Agent
from .registry import UnknownAgent, make_agent, names

__all__ = ["Agent", "UnknownAgent", "make_agent", "names"]
