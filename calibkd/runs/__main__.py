"""``python -m calibkd.runs``: run, inspect and aggregate batches (``calibkd.runs.runner``);
``python -m calibkd.runs readme-table [--check]`` writes the README's verdict
table from the committed batches (``calibkd.runs.readme.readme_main``);
``python -m calibkd.runs batches-table [--check]`` writes docs/batches.md's
table of the committed batches (``calibkd.runs.batch_table.batches_table_main``)."""

import sys

if sys.argv[1:2] == ["readme-table"]:
    from calibkd.runs.readme import readme_main

    sys.exit(readme_main(sys.argv[2:]))

if sys.argv[1:2] == ["batches-table"]:
    from calibkd.runs.batch_table import batches_table_main

    sys.exit(batches_table_main(sys.argv[2:]))

from calibkd.runs.runner import main

sys.exit(main())
