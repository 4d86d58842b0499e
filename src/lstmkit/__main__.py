"""``python -m lstmkit ...`` and ``torchrun ... -m lstmkit train ...``: the same as the ``lstmkit`` command."""

import sys

from .cli import main

sys.exit(main())
