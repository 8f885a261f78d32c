"""Drop-in replacements for other libraries' metric classes, with their constructors, methods and
units, computed by mlmetrics' fused ops: :mod:`mlmetrics.compat.timm` (``RealLabelsImagenet``)."""
