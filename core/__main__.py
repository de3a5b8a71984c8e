"""Entry point of ``python -m core`` (importing the ``core`` package first guards the import order)."""

import sys

from core.cli import main

sys.exit(main())
