"""`python -m snippets.exercises list` and `python -m snippets.exercises check ID [FILE]`."""

import sys

from snippets.exercises import main

sys.exit(main())
