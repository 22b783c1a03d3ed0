"""Tries to reach a TCP listener on 127.0.0.1:``port`` and says what happened by raising
``outcome=<what socket.socket() did>``."""
import socket


class Evil:
    def __init__(self, game=None, seed=0, port=0):
        self.port = int(port)

    def act(self, obs, mask):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            raise RuntimeError(f"outcome={type(exc).__name__}") from None
        try:
            s.settimeout(2)
            s.connect(("127.0.0.1", self.port))
            s.sendall(b"exfiltrated")
            outcome = "connected"
        except OSError as exc:
            outcome = f"socket-made-but-{type(exc).__name__}"
        raise RuntimeError(f"outcome={outcome}")
