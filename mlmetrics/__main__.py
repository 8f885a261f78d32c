"""``python -m mlmetrics eval ...`` (same as the ``mlmetrics`` console script)."""
import sys

from .cli import main

sys.exit(main())
