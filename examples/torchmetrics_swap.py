"""mlmetrics next to (or instead of) torchmetrics: the same numbers from one fused pass.

    python examples/torchmetrics_swap.py
"""
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

from mlmetrics.metrics import TorchMetricsAdapter

C = 100
g = torch.Generator().manual_seed(0)
logits, target = torch.randn(512, C, generator=g) * 2, torch.randint(0, C, (512,), generator=g)
logits[torch.arange(512), target] += 4  # a classifier that is often right

theirs = MetricCollection({
    "top1": MulticlassAccuracy(num_classes=C, top_k=1, average="micro"),
    "top5": MulticlassAccuracy(num_classes=C, top_k=5, average="micro"),
    "ece": MulticlassCalibrationError(num_classes=C, n_bins=15),
})
ours = MetricCollection({  # one value each (key=): what self.log / self.log_dict take
    "top1": TorchMetricsAdapter(C, top_k=(1, 5), key="top1"),
    "top5": TorchMetricsAdapter(C, top_k=(1, 5), key="top5"),
    "ece": TorchMetricsAdapter(C, top_k=(1, 5), n_bins=15, key="ece"),
})
everything = TorchMetricsAdapter(C, top_k=(1, 5))  # or every metric at once: {name: 0-dim tensor}

for b in range(0, 512, 128):
    x, t = logits[b:b + 128], target[b:b + 128]
    theirs.update(x.softmax(1), t)
    ours.update(x, t)
    everything.update(x, t)

a, b = theirs.compute(), ours.compute()
for k in a:
    print(f"{k}: torchmetrics {float(a[k]):.6f}  mlmetrics {float(b[k]):.6f}")
    assert abs(float(a[k]) - float(b[k])) < 1e-5
print(sorted(everything.compute())[:6], "...")
