"""Loading user code named as ``package.module:Attr`` or ``path/to/file.py:Attr``.

Shared by the agent and arena loaders. A spec whose part before the last ``:`` ends in ``.py`` or
contains a path separator is a file; anything else with a ``:`` is an importable module.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any


class PluginError(Exception):
    """User code that cannot be found or imported; the message says which and why."""


def is_file_spec(spec: str) -> bool:
    target = spec.rpartition(":")[0]
    return bool(target) and (target.endswith(".py") or "/" in target or os.sep in target)


def _getattr(module, attr: str, spec: str) -> Any:
    obj = module
    for part in attr.split("."):
        if not part or not hasattr(obj, part):
            raise PluginError(f"cannot load {spec!r}: {getattr(module, '__name__', module)} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def load_file_attr(spec: str) -> Any:
    """Import ``path/to/file.py:Attr`` as a module of its own (once per path) and return ``Attr``."""
    path_text, _, attr = spec.rpartition(":")
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise PluginError(f"cannot load {spec!r}: no such file {path_text!r}")
    name = "arena_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module = sys.modules.get(name)
    if module is None:
        mod_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        try:
            mod_spec.loader.exec_module(module)
        except BaseException as exc:
            del sys.modules[name]
            raise PluginError(f"cannot load {spec!r}: importing {path.name} raised {type(exc).__name__}: {exc}") from None
    return _getattr(module, attr, spec)


def load_module_attr(spec: str) -> Any:
    """Import ``package.module:Attr`` and return ``Attr``."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:
        raise PluginError(f"cannot load {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}") from None
    return _getattr(module, attr, spec)


def load_attr(spec: str) -> Any:
    return load_file_attr(spec) if is_file_spec(spec) else load_module_attr(spec)
