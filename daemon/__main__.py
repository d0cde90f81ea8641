"""``python -m daemon`` is ``closeloop``."""

import sys

from daemon.cli import main

sys.exit(main())
