"""agents: the batched Agent protocol, the built-in agents, loading agents by name and the one checkpoint
format (``checkpoint``: a numbered folder per save and an atomically switched pointer)."""
from .base import Agent
from .registry import UnknownAgent, make_agent, names

__all__ = ["Agent", "UnknownAgent", "make_agent", "names"]
