"""``python -m photostyle``: the command line, run by the interpreter that runs the workflow."""

import sys

from photostyle.cli import main

sys.exit(main())
