"""``python -m citycredit.cli``: the same as the ``citycredit`` command."""

import sys

from citycredit.cli.main import main

sys.exit(main())
