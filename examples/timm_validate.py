"""mlmetrics in timm's validate loop: swap ``RealLabelsImagenet`` by changing the import, or score
every metric from the same logits with ``ClassificationMetrics``.

    python examples/timm_validate.py
"""
import timm
import torch
from timm.utils import accuracy

from mlmetrics import ClassificationMetrics
from mlmetrics.compat.timm import RealLabelsImagenet  # was: from timm.data import RealLabelsImagenet
from mlmetrics.data.real import real_index, real_label_sets

# a stand-in for timm's ImageNet val loader (unshuffled): images, targets and the file names
files = [f"val/ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(64)]
g = torch.Generator().manual_seed(0)
images, targets = torch.randn(64, 3, 64, 64, generator=g), torch.randint(0, 1000, (64,), generator=g)
loader = [(images[b:b + 16], targets[b:b + 16]) for b in range(0, 64, 16)]

model = timm.create_model("resnet18", num_classes=1000).eval()
real = RealLabelsImagenet(files, topk=(1, 5))          # timm's constructor, methods and percent
metrics = ClassificationMetrics(1000, topk=(1, 5), label_sets=real_label_sets(files))
top1 = []
with torch.inference_mode():
    for b, (x, t) in enumerate(loader):
        logits = model(x)
        real.add_result(logits)
        metrics.update(logits, t, sample_index=torch.arange(16 * b, 16 * b + 16))
        top1.append(accuracy(logits, t, topk=(1,))[0].item())

out = metrics.compute()
print("ReaL top-1 / top-5 (%):", real.get_accuracy())
print(f"top-1 {out['top1']:.4f}  ReaL top-1 {out['real_top1']:.4f}  ECE {out['ece']:.4f}  NLL {out['nll']:.3f}")
assert abs(real.get_accuracy(k=1) - 100 * out["real_top1"]) < 1e-9
assert abs(sum(top1) / len(top1) - 100 * out["top1"]) < 1e-4
assert real_index(files[3]) == 3  # the ReaL row of a val file name
