"""A run's figures: per-agent totals, the summary of one ``MatchRunner``, and several runners' folded.

``arena run --json`` prints ``summarize``'s dict; the game server folds its match groups' with
``fold_summaries``.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AgentTotals:
    wins: int = 0
    losses: int = 0
    draws: int = 0
    forfeits: int = 0
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def games(self) -> int:
        return self.wins + self.losses + self.draws

    def as_dict(self) -> dict:
        d = {"wins": self.wins, "losses": self.losses, "draws": self.draws, "games": self.games,
             "forfeits": self.forfeits}
        d.update({k: (int(v) if float(v).is_integer() else float(v)) for k, v in self.stats.items()})
        return d


def summarize(runner, arena: str, seconds: float, **extra) -> dict:
    """``MatchRunner.summary``: the figures of one runner."""
    self = runner
    results = {name: t.as_dict() for name, t in zip(self.names, self.totals)}
    pairings = {}
    for (i, j), (w0, w1, d) in sorted(self.pairings.items()):
        pairings[f"{self.names[i]} vs {self.names[j]}"] = {"first_wins": w0, "second_wins": w1, "draws": d}
    # "matches": forfeits among the counted games (in the table's losses); "uncounted": forfeits in
    # games past the stop rule's count (a slot that restarted after its counted game, say)
    forfeits = [{"agent": self.names[i], "arena": arena, "reason": reason,
                 "matches": self.counted_forfeits.get((i, reason), 0),
                 "uncounted": count - self.counted_forfeits.get((i, reason), 0)}
                for (i, reason), count in self.forfeit_log.items()]
    out = {
        "arena": arena,
        "matches": self.games,
        "slots": self.game.num_matches,
        "steps": self.steps,
        "agent_steps": self.agent_steps,
        "seconds": round(seconds, 6),
        "agent_steps_per_s": round(self.agent_steps / seconds, 1) if seconds > 0 else None,
        "results": results,
        "pairings": pairings,
        "forfeits": forfeits,
    }
    out.update(extra)
    return out


def fold_summaries(arena: str, runners: list, seconds: float) -> dict:
    """One summary for several runners playing one run (the game server's match groups): the first
    runner's figures with the others' added in."""
    out = runners[0].summary(arena, seconds)
    for r in runners[1:]:
        s = r.summary(arena, 1.0)
        for name, res in s["results"].items():
            for k, v in res.items():
                out["results"][name][k] += v
        for key, p in s["pairings"].items():
            q = out["pairings"].setdefault(key, {"first_wins": 0, "second_wins": 0, "draws": 0})
            for k in q:
                q[k] += p[k]
        for f in s["forfeits"]:
            same = [g for g in out["forfeits"] if g["agent"] == f["agent"] and g["reason"] == f["reason"]]
            if same:
                for k, v in f.items():
                    if isinstance(v, int) and not isinstance(v, bool):
                        same[0][k] = same[0].get(k, 0) + v
            else:
                out["forfeits"].append(dict(f))
        if "uncounted" in s:
            out["uncounted"] = out.get("uncounted", 0) + s["uncounted"]
    out["matches"] = sum(r.games for r in runners)
    out["slots"] = sum(r.game.num_matches for r in runners)
    out["steps"] = max(r.steps for r in runners)
    out["agent_steps"] = sum(r.agent_steps for r in runners)
    out["agent_steps_per_s"] = round(out["agent_steps"] / out["seconds"], 1) if out["seconds"] > 0 else None
    return out
