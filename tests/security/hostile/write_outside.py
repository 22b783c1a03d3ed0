"""Tries to create the file ``path`` (outside its scratch folder), and to write in its scratch folder
(``$HOME``), then says what happened by raising ``outcome=<outside>/<scratch>``."""
import os


class Evil:
    def __init__(self, game=None, seed=0, path=""):
        self.path = path

    def act(self, obs, mask):
        result = []
        for target in (self.path, os.path.join(os.environ.get("HOME", "/nonexistent"), "notes.txt")):
            try:
                with open(target, "w") as fh:
                    fh.write("pwned")
                result.append("wrote")
            except OSError as exc:
                result.append(type(exc).__name__)
        raise RuntimeError(f"outcome={'/'.join(result)}")
