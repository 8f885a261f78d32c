"""examples/lightning_ddp.py under Lightning: 1 process, 2-process ``ddp`` and ``ddp_spawn`` on CPU
(gloo). The deduped metrics equal one process exactly (DistributedSampler padding counts once);
the plain sums (which count the padded duplicate) agree between ddp and ddp_spawn (no state shared
between the spawned processes)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "lightning_ddp.py"


def _launch(tmp_path, name, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONWARNINGS="ignore")
    out = tmp_path / f"{name}.json"
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--out", str(out), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, out


def _result(proc, out):
    log, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, log[-3000:]
    return json.loads(out.read_text())


@pytest.mark.distributed
def test_lightning_ddp_and_ddp_spawn_equal_one_process(tmp_path):
    runs = {name: _launch(tmp_path, name, *args) for name, args in
            (("one", ()), ("ddp", ("--devices", "2", "--strategy", "ddp")),
             ("spawn", ("--devices", "2", "--strategy", "ddp_spawn")))}
    res = {name: _result(*r) for name, r in runs.items()}
    one, ddp, spawn = res["one"], res["ddp"], res["spawn"]
    assert one["all/num_samples"] == ddp["all/num_samples"] == spawn["all/num_samples"] == 101
    for k, v in one.items():
        if k.startswith("all/"):
            assert ddp[k] == pytest.approx(v, abs=1e-12), k
            assert spawn[k] == pytest.approx(v, abs=1e-12), k
    assert one["val/top1"] == one["all/top1"]
    assert one["val/rows"] == 101 and ddp["val/rows"] == spawn["val/rows"] == 102  # each rank counted once
    for k in ("val/top1", "val/ece", "val/nll"):  # plain sums: the padded duplicate counts twice
        assert ddp[k] == pytest.approx(spawn[k], abs=1e-12), k
        assert ddp[k] == pytest.approx(one[k], abs=0.02), k
    assert {"all/subgroup_accuracy/2", "all/real_top5", "all/asma"} <= set(one)
