"""Tries to read the file ``path`` (a root-only system file, or one in the user's home) on its first
call, and says what happened by raising: ``outcome=read:<first bytes>`` or ``outcome=<error>``."""


class Evil:
    def __init__(self, game=None, seed=0, path=""):
        self.path = path

    def act(self, obs, mask):
        try:
            with open(self.path) as fh:
                outcome = "read:" + fh.read(40)
        except OSError as exc:
            outcome = type(exc).__name__
        raise RuntimeError(f"outcome={outcome}")
