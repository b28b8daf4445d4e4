"""``python -m atp_viz``: the command line (``cli``)."""

import sys

from .cli import main

sys.exit(main())
