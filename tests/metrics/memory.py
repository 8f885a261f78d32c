"""Peak extra tensor memory of a call: every storage a torch op allocates while the call runs is
counted until it is freed (torch's allocations are invisible to tracemalloc)."""
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class _PeakBytes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.live = self.peak = 0

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            st = t.untyped_storage()
            if st.data_ptr() in inputs or getattr(st, "_mlm_counted", False):
                continue  # an in-place result or a view of an input: nothing new allocated
            st._mlm_counted = True
            self.live += st.nbytes()
            self.peak = max(self.peak, self.live)
            weakref.finalize(st, self._free, st.nbytes())
        return out


def peak_extra_bytes(fn):
    """``(peak bytes of the tensors allocated and still alive while fn runs, fn's result)``."""
    mode = _PeakBytes()
    with mode:
        out = fn()
    return mode.peak, out
