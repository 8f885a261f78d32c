"""``python -m mlmetrics eval ...`` (same as the ``mlmetrics`` console script; also
``torchrun --nproc-per-node N -m mlmetrics eval ...``)."""
import sys

from .cli import main

sys.exit(main())
