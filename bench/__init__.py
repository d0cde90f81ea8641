"""The closeloop benchmark: the IMAP+SMTP floor, intake to acknowledgement, latency, dispatch at scale, memory.

Run it with ``python -m bench.run`` (see ``bench/run.py`` and ``docs/performance.md``). It reuses the test
harness's servers (``tests/servers``) and mails (``tests/support``), so ``tests`` goes on the import path here.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
