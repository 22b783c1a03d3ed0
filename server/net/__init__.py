"""server.net: the wire, below every process.

Holds the one protocol module (a msgpack header plus raw array frames, validated before use), endpoints
and CURVE keys (loopback checks, key files, authenticators) and child-process helpers (environment, stop
flag). In: bytes from sockets. Out: validated ``Message`` objects; nothing here knows a game or a policy.
"""
