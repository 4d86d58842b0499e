"""``python -m lstmkit.cli ...``: the same as the ``lstmkit`` command."""

import sys

from . import main

sys.exit(main())
