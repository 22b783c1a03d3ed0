"""server.league: the self-play league (reserved: matchmaker, ratings, snapshot pool, SQLite store).

In: finished matches and learners' snapshots. Out: who plays whom next, ratings, the leaderboard.
"""
