"""The entry point of every child process we start: ``python -m server.net.child PARENT_PID MODULE ARGS...``.

It asks the kernel to kill this process when its parent dies (``proc.die_with_parent``: a SIGKILLed
``arena`` leaves no worker, learner or rollout worker behind), then runs ``MODULE`` as
``python -m MODULE ARGS...`` would. When the module is done it runs the ``atexit`` handlers, flushes
stdout and stderr and leaves with ``os._exit``, as ``multiprocessing`` children do: tearing down the
interpreter's modules (torch's above all) takes most of a second of CPU, and a child told to stop
should be gone within seconds. Build the command with ``proc.child_cmd``.
"""
from __future__ import annotations

import atexit
import os
import runpy
import sys
import traceback

from server.net.proc import die_with_parent


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def main(argv: list[str]) -> None:
    parent, module, args = int(argv[0]), argv[1], argv[2:]
    die_with_parent(parent)
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
