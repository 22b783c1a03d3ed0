"""``python -m server.cli``: the ``arena`` command (what child processes start)."""
import sys

from server.cli import main

sys.exit(main())
