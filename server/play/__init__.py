"""server.play: matches and acting.

``MatchRunner`` steps a batched game and asks agents for actions, one call per agent per step; the game
server does the same over ZeroMQ, grouping observation rows per agent for the policy workers; isolated
agents run untrusted code in a process of their own. In: a game, agents, worker replies. Out: actions
applied, results and forfeits counted, summaries.
"""
