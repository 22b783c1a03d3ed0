"""What a league shows and leaves behind: the leaderboard (live and ``--leaderboard``), ``leaderboard.csv``,
``payoff.csv``/``payoff.png``, ``ratings.png`` and ``league.json`` (each written whole or not at all)."""
from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

from . import FIXED
from .payoff import Payoff
from .store import LeagueStore


REFERENCE = ("random", "greedy", "search")


def leaderboard_rows(store: LeagueStore, payoff: Payoff, rates: dict | None = None) -> list[dict]:
    rows = []
    fixed = {m.name: m.spec.get("agent") for m in store.members() if m.kind == FIXED}
    for s in store.leaderboard():
        row = {"member": s.name, "kind": s.kind, "mu": round(s.mu, 3), "sigma": round(s.sigma, 3),
               "ordinal": round(s.ordinal, 3), "games": s.games, "active": s.active}
        for ref in REFERENCE:
            names = [n for n, a in fixed.items() if a == ref or n == ref]
            row[f"vs_{ref}"] = round(payoff.win_rate(s.name, names[0]), 3) \
                if names and payoff.counts(s.name, names[0]).games else ""
        row["steps_per_s"] = round(rates[s.name]) if rates and s.name in rates and np.isfinite(rates[s.name]) else ""
        rows.append(row)
    return rows


def leaderboard_text(store: LeagueStore, payoff: Payoff, rates: dict | None = None, title: str = "") -> str:
    rows = leaderboard_rows(store, payoff, rates)
    f = lambda v: f"{v:.0%}" if isinstance(v, float) else "-"  # noqa: E731
    lines = [f"league leaderboard{': ' + title if title else ''}",
             f"{'member':<22} {'kind':<16} {'rating':>13} {'games':>8} {'vs rand':>7} {'vs grdy':>7} "
             f"{'vs srch':>7} {'steps/s':>9}"]
    for r in rows:
        lines.append(f"{r['member'][:22]:<22} {r['kind']:<16} {r['mu']:>6.1f} ± {r['sigma']:<4.1f} {r['games']:>8,} "
                     f"{f(r['vs_random']):>7} {f(r['vs_greedy']):>7} {f(r['vs_search']):>7} "
                     f"{(format(r['steps_per_s'], ',') if r['steps_per_s'] != '' else '-'):>9}")
    return "\n".join(lines)


def write_outputs(store: LeagueStore, folder: Path, payoff: Payoff) -> None:
    """leaderboard.csv, payoff.csv, payoff.png and ratings.png in ``folder`` (each written whole)."""
    rows = leaderboard_rows(store, payoff)
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write_text_atomic(folder / "leaderboard.csv", buf.getvalue())
    names = [m.name for m in store.members()]
    write_text_atomic(folder / "payoff.csv", payoff.to_csv(names))
    try:
        plot_payoff(payoff, names, folder / "payoff.png")
        plot_ratings(store, folder / "ratings.png")
    except Exception as exc:  # a plot must not lose a league
        print(f"(no plots: {type(exc).__name__}: {exc})", file=sys.stderr)


def plot_payoff(payoff: Payoff, names: list[str], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = payoff.matrix(names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * len(names), 1.0 + 0.45 * len(names)))
    im = ax.imshow(m, vmin=0, vmax=1, cmap="RdYlGn")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            if payoff.counts(names[i], names[j]).games:
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6)
    ax.set_title("win rate of row vs column (decayed)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Write a figure whole or not at all (a temporary file renamed over ``path``)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_ratings(store: LeagueStore, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    by: dict[str, list] = {}
    for h in store.rating_history():
        by.setdefault(h.name, []).append((h.seq, h.mu))
    for name, pts in by.items():
        pts = pts[:: max(1, len(pts) // 2000)]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, lw=1)
    ax.set_xlabel("matches recorded")
    ax.set_ylabel("rating μ (openskill)")
    ax.grid(alpha=0.3)
    if by:
        ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str))


def show_leaderboard(folder: Path, out=sys.stdout) -> None:
    """``arena league --dir DIR --leaderboard``: the table from the database, without running anything."""
    from .store import arena_of

    store = LeagueStore.open(folder, arena_of(folder))
    try:
        payoff = Payoff.from_matches(store.matches())
        print(leaderboard_text(store, payoff, title=f"{store.match_count():,} matches"), file=out)
    finally:
        store.close()
