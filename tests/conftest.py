import os
import sys

import pytest
import torch


# Without a GPU, Triton kernels run under the interpreter on CPU tensors. Triton picks the
# interpreter when a kernel is decorated, so set it before anything imports mlmetrics.ops.triton.
# (backend="auto" never picks Triton for CPU tensors, so other tests are unaffected.)
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    if not torch.cuda.is_available():
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)
