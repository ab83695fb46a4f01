"""``python -m calibkd.study``: run the study's notebooks (``calibkd.study.runner``)."""

import sys

from calibkd.study.runner import main

sys.exit(main())
