"""``python -m calibkd.runs``: run, inspect and aggregate batches (``calibkd.runs.runner``)."""

import sys

from calibkd.runs.runner import main

sys.exit(main())
