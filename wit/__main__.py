"""``python -m wit`` runs the ``wit`` command (for environments without the console script)."""

import sys

from wit.cli import main

sys.exit(main())
