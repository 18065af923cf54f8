"""``python -m workbench.clients.loadgen URL ...``: the same as ``workbench bench``."""

import sys

from workbench.clients.loadgen.cli import cli_main

sys.exit(cli_main())
