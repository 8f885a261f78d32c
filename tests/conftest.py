import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests/parity.py


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    if not torch.cuda.is_available():
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)
