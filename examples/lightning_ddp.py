"""mlmetrics in a LightningModule: log one value, a MetricCollection, and every metric at once;
dedupe the samples a DistributedSampler repeats to pad the last batch.

    python examples/lightning_ddp.py --devices 2 --strategy ddp   # 2 CPU processes (gloo)
"""
import argparse
import json

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from torchmetrics import MetricCollection

from mlmetrics import LabelSets
from mlmetrics.metrics import TorchMetricsAdapter

N, C, D = 101, 10, 16  # 101 samples: 2 ranks see 102 rows, one of them twice


class Data(Dataset):
    """(features, target, index): the index lets the metric match label sets and drop duplicates."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(N, D, generator=g)
        self.t = (self.x[:, :C].argmax(1) + (torch.rand(N, generator=g) < 0.3)) % C
        self.sets = LabelSets.from_lists([sorted({int(t), (int(t) + 1) % C}) for t in self.t], C)

    def __len__(self):
        return N

    def __getitem__(self, i):
        return self.x[i], self.t[i], i


class Model(L.LightningModule):
    def __init__(self, sets: LabelSets):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(D, C)
        self.top1 = TorchMetricsAdapter(C, top_k=1, key="top1")              # self.log("val/top1", ...)
        self.collection = MetricCollection({                                  # self.log_dict(collection)
            "ece": TorchMetricsAdapter(C, top_k=1, key="ece"),
            "nll": TorchMetricsAdapter(C, top_k=1, key="nll"),
            "rows": TorchMetricsAdapter(C, top_k=1, key="num_samples"),     # rows seen, padding included
        }, prefix="val/")
        # every metric, one record per sample: DistributedSampler padding counts once
        self.all = TorchMetricsAdapter(C, top_k=(1, 5), label_sets=sets, dedupe=True)

    def validation_step(self, batch, batch_idx):
        x, t, index = batch
        logits = self.net(x)
        self.top1.update(logits, t)
        self.collection.update(logits, t)
        self.all.update(logits, t, sample_index=index)
        self.log("val/top1", self.top1)
        self.log_dict(self.collection)

    def on_validation_epoch_end(self):
        self.log_dict({f"all/{k}": v for k, v in self.all.compute().items()})  # flat: scalars only
        self.all.reset()


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--strategy", default="auto")
    p.add_argument("--out", help="write the logged metrics (rank 0) as JSON here")
    a = p.parse_args(argv)
    data = Data()
    trainer = L.Trainer(accelerator="cpu", devices=a.devices, strategy=a.strategy, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    (logged,) = trainer.validate(Model(data.sets), DataLoader(data, batch_size=16), verbose=False)
    if trainer.is_global_zero:
        logged = {k: float(v) for k, v in logged.items()}
        print(json.dumps({k: round(v, 4) for k, v in logged.items() if k.startswith("val/")}))
        if a.out:
            with open(a.out, "w") as f:
                json.dump(logged, f)


if __name__ == "__main__":
    main()
