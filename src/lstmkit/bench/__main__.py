"""``python -m lstmkit.bench ...``: the same as ``lstmkit bench ...``."""

import sys

from . import main

sys.exit(main())
