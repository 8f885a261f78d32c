"""Smoke test for benchmarks/report.py on a small synthetic pytest-benchmark JSON (no timing)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parents[2] / "benchmarks" / "report.py"


def _load_report():
    spec = importlib.util.spec_from_file_location("mlmetrics_bench_report", REPORT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _bench(op, impl, role, median, *, n=8192, c=1000, k=5, dtype="float32", device="cpu", peak=1 << 20,
           backend=None, other_load=0.05):
    group = f"{op}|{device}|N={n}|C={c}|k={k}|{dtype}"
    return {
        "group": group,
        "name": f"test_{op}[{device}-{impl}]",
        "fullname": f"benchmarks/x.py::test_{op}[{device}-{impl}]",
        "params": None,
        "extra_info": {"op": op, "role": role, "impl": impl, "backend": backend or impl, "device": device,
                       "n": n, "c": c, "k": k, "dtype": dtype, "bytes_read": n * c * 4,
                       "peak_extra_bytes": peak, "other_load": other_load, **({"device_name": "NVIDIA H100"} if device == "cuda" else {})},
        "stats": {"min": median * 0.9, "max": median * 1.2, "mean": median, "stddev": median * 0.05,
                  "median": median, "iqr": median * 0.02, "rounds": 10, "iterations": 1},
    }


def _synthetic():
    b = []
    for c, ours_t in ((10, 1e-4), (1000, 2e-3), (131072, 0.1)):
        n = 8192 if c == 1000 else 1024
        b += [_bench("softmax_topk", "mlmetrics-cpu", "ours", ours_t, n=n, c=c, backend="cpu", peak=4096),
              _bench("softmax_topk", "torch-softmax-topk", "peer", ours_t * 4, n=n, c=c, peak=n * c * 4),
              _bench("softmax_topk", "torch-topk-lse", "peer", ours_t * 2, n=n, c=c),
              _bench("softmax_topk", "torch-amax", "bound", ours_t / 2, n=n, c=c)]
    b += [_bench("label_hits", "mlmetrics-cpu", "ours", 1e-3, backend="cpu"),
          _bench("label_hits", "torch-softmax-topk-gather", "peer", 2e-3),
          _bench("label_hits", "torch-amax", "bound", 0.8e-3)]
    b += [_bench("real_accuracy", "mlmetrics-cpu", "ours", 0.01, n=50000, backend="cpu"),
          _bench("real_accuracy", "timm-RealLabelsImagenet", "peer", 0.5, n=50000, other_load=0.6),
          _bench("real_accuracy", "torch-topk-multihot-gather", "peer", 0.05, n=50000),
          _bench("real_accuracy", "torch-topk-padded-eq", "peer", 0.06, n=50000)]
    b += [_bench("classification_metrics", "torchmetrics", "peer", 0.2, n=1024)]  # ours missing
    b += [_bench("softmax_topk", "mlmetrics-triton", "ours", 1e-5, device="cuda", backend="triton"),
          _bench("softmax_topk", "torch-softmax-topk", "peer", 5e-5, device="cuda")]
    return {"machine_info": {"mlmetrics_bench": {"cpu_model": "Test CPU", "cpu_count": 2, "torch": "2.x",
                                                 "triton": "3.x", "gpu": None}},
            "commit_info": {"id": "0123456789abcdef"}, "datetime": "2026-01-01T00:00:00",
            "benchmarks": b, "version": "5.0"}


def test_report_markdown_and_png(tmp_path):
    report = _load_report()
    src = tmp_path / "bench.json"
    src.write_text(json.dumps(_synthetic()))
    md, png = tmp_path / "out.md", tmp_path / "out.png"
    assert report.main([str(src), "--md", str(md), "--png", str(png), "--title", "synthetic",
                        "--command", "pytest benchmarks/ --benchmark-only"]) == 0
    text = md.read_text()
    assert "# synthetic" in text and "Test CPU" in text and "pytest benchmarks/" in text
    # speedups and the amax-bound ratio, from the JSON alone
    assert "**4×**" in text and "**2×**" in text
    assert "1.25× (800 µs)" in text  # label_hits ours/amax
    # targets: softmax 4x >= 3 met; label_hits 2x < 3 missed; ReaL 50x vs timm met, 5x vs torch met
    assert "4.00× (cpu 2 ms vs torch-softmax-topk 8 ms)" in text
    assert "50.00× (cpu 10 ms vs timm-RealLabelsImagenet 500 ms)" in text
    assert "5.00× (cpu 10 ms vs torch-topk-multihot-gather 50 ms)" in text
    assert text.count("✅ met") == 4 and text.count("❌ missed") == 1
    assert "not measured (mlmetrics missing)" in text
    # GB/s: 8192*1000*4 bytes in 2 ms = 16.4 GB/s
    assert "16.4" in text
    # rows timed while other processes were busy are flagged
    assert "other load ≤ 60% ⚠" in text
    # GPU rows labelled by device
    assert "NVIDIA H100" in text
    assert png.exists() and png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_report_compact_json(tmp_path):
    report = _load_report()
    data = _synthetic()
    data["benchmarks"][0]["stats"]["data"] = [1e-3] * 1000
    src, small = tmp_path / "bench.json", tmp_path / "small.json"
    src.write_text(json.dumps(data))
    assert report.main([str(src), "--md", str(tmp_path / "o.md"), "--compact-json", str(small)]) == 0
    out = json.loads(small.read_text())
    assert "data" not in out["benchmarks"][0]["stats"]
    assert out["benchmarks"][0]["stats"]["median"] == data["benchmarks"][0]["stats"]["median"]


def test_report_cli_stdout(tmp_path):
    src = tmp_path / "bench.json"
    src.write_text(json.dumps(_synthetic()))
    out = subprocess.run([sys.executable, str(REPORT), str(src)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "softmax_topk" in out.stdout and "speedup" in out.stdout


def test_report_rejects_empty(tmp_path):
    report = _load_report()
    src = tmp_path / "empty.json"
    src.write_text(json.dumps({"machine_info": {}, "benchmarks": []}))
    assert report.main([str(src)]) == 1


def test_speedup_series():
    report = _load_report()
    rows, _ = _load_rows(report)
    s = report.speedup_series(rows)
    key = ("softmax_topk", "torch-softmax-topk", "CPU", "cpu", 1024, 5, "float32")
    assert s[key] == [(10, pytest.approx(4.0)), (131072, pytest.approx(4.0))]


def _load_rows(report, tmp=None):
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(_synthetic(), f)
    return report.load([f.name])
