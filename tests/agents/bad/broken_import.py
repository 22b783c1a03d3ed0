"""Cannot even be imported."""
import this_module_does_not_exist  # noqa: F401


class Bot:
    pass
