"""``python -m workbench.labs``: list the labs, or run one (or all) headless and print what each measured."""

import sys

from workbench.labs.cli import main

sys.exit(main())
