#!/usr/bin/env python
"""Turn pytest-benchmark JSON from ``benchmarks/`` into a markdown report and a speedup plot.

    pytest benchmarks/ --benchmark-only --benchmark-json benchmarks/results/cpu-intel-xeon-2core.json
    python benchmarks/report.py benchmarks/results/cpu-intel-xeon-2core.json \
        --md benchmarks/results/cpu-intel-xeon-2core.md --png benchmarks/results/cpu-intel-xeon-2core-speedup.png

Everything is computed from the JSON alone: each benchmark's ``extra_info`` carries op,
role (ours / peer / bound), impl, backend, device, n, c, k, dtype, bytes_read and
peak_extra_bytes (see benchmarks/benchutil.py). For every group (same op, device, shape,
dtype, k; same data, same process) the report gives medians, bytes-read throughput
(GB/s = bytes_read / median), peak extra memory, and ratios against mlmetrics:

  speedup   = peer median / ours median   (how many times faster mlmetrics is)
  ours/peer = ours median / peer median   (= 1 / speedup; for the "bound" amax pass this
                                           is how far mlmetrics is from one read of the logits)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import OrderedDict, defaultdict
from pathlib import Path

OP_TITLES = OrderedDict([
    ("softmax_topk", "softmax_topk: top-k softmax probabilities"),
    ("label_hits", "label_hits: top-k membership in ReaL-sized label sets"),
    ("real_accuracy", "ReaL accuracy (top-1 + top-5), 50,000 x 1,000"),
    ("classification_metrics", "top-1/top-5 accuracy + ECE + NLL together"),
])

# (op, shape filter, peer impls (best of them is used), kind, threshold, description)
TARGETS = [
    ("softmax_topk", dict(n=8192, c=1000, k=5, dtype="float32"), ["torch-softmax-topk"], "speedup", 3.0,
     "softmax_topk 8192x1000 fp32 k=5: >= 3x faster than torch.softmax(x,-1).topk(5)"),
    ("label_hits", dict(n=8192, c=1000, k=5, dtype="float32"), ["torch-softmax-topk-gather"], "speedup", 3.0,
     "topk_label_hits 8192x1000 fp32 k=5 (ReaL sets): >= 3x faster than torch softmax+topk+membership"),
    ("label_hits", dict(n=8192, c=1000, k=5, dtype="float32"), ["torch-amax"], "bound", 2.0,
     "topk_label_hits 8192x1000 fp32 k=5: within 2x of one x.amax(dim=1) pass"),
    ("real_accuracy", dict(n=50000, c=1000, dtype="float32"), ["timm-RealLabelsImagenet"], "speedup", 30.0,
     "ReaL accuracy 50,000x1,000: >= 30x faster than timm RealLabelsImagenet"),
    ("real_accuracy", dict(n=50000, c=1000, dtype="float32"), ["timm-RealLabelsImagenet-b256"], "speedup", 30.0,
     "(same, timm driven as its validate.py does: add_result per batch of 256)"),
    ("real_accuracy", dict(n=50000, c=1000, dtype="float32"),
     ["torch-topk-multihot-gather", "torch-topk-padded-eq"], "speedup", 3.0,
     "ReaL accuracy 50,000x1,000: >= 3x faster than the best vectorised pure-torch version"),
    ("classification_metrics", dict(), ["torchmetrics"], "speedup", 3.0,
     "ClassificationMetrics (top-1/5 + ECE + NLL): >= 3x faster than torchmetrics"),
]


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------
def load(paths):
    """-> (rows, machine_infos). One row per benchmark with the fields the report needs."""
    rows, machines = [], []
    for p in paths:
        with open(p) as f:
            data = json.load(f)
        mi = data.get("machine_info", {}) or {}
        mi = dict(mi, _file=str(p), _datetime=data.get("datetime"),
                  _commit=(data.get("commit_info") or {}).get("id"))
        machines.append(mi)
        for b in data.get("benchmarks", []):
            e = b.get("extra_info") or {}
            st = b.get("stats") or {}
            if "op" not in e or "median" not in st:
                continue
            device = e.get("device", "cpu")
            rows.append(dict(
                group=b.get("group") or f"{e['op']}|{device}|N={e.get('n')}|C={e.get('c')}|k={e.get('k')}|{e.get('dtype')}",
                name=b.get("name", ""),
                op=e["op"], role=e.get("role", "peer"), impl=e.get("impl", b.get("name", "?")),
                backend=e.get("backend", e.get("impl")), device=device,
                device_name=e.get("device_name") or ("CPU" if device == "cpu" else device),
                n=e.get("n"), c=e.get("c"), k=e.get("k"), dtype=e.get("dtype"),
                bytes_read=e.get("bytes_read"), peak=e.get("peak_extra_bytes"),
                other_load=e.get("other_load"),
                median=float(st["median"]), min=float(st.get("min", st["median"])),
                iqr=st.get("iqr"), rounds=st.get("rounds"),
                source=str(p),
            ))
    return rows, machines


def groups(rows):
    g = OrderedDict()
    for r in sorted(rows, key=lambda r: (list(OP_TITLES).index(r["op"]) if r["op"] in OP_TITLES else 99,
                                         r["device"], r["n"] or 0, r["c"] or 0, r["k"] or 0, r["dtype"] or "")):
        g.setdefault((r["source"], r["group"]), []).append(r)
    return g


# ---------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------
def fmt_time(s):
    if s is None or not math.isfinite(s):
        return "—"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms" if s * 1e3 < 100 else f"{s * 1e3:.0f} ms"
    return f"{s * 1e6:.3g} µs"


def fmt_bytes(b):
    if b is None:
        return "—"
    b = float(b)
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


def gbps(r):
    if not r.get("bytes_read") or not r["median"]:
        return None
    return r["bytes_read"] / r["median"] / 1e9


def fmt_gbps(v):
    return "—" if v is None else f"{v:.3g}"


def fmt_ratio(v):
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:.3g}×" if v < 100 else f"{v:.0f}×"


NOISY_LOAD = 0.25


def fmt_load(v):
    if v is None:
        return "—"
    return f"{v * 100:.0f}%" + (" ⚠" if v > NOISY_LOAD else "")


def group_load(rows):
    vals = [r["other_load"] for r in rows if r.get("other_load") is not None]
    return max(vals) if vals else None


def dtype_short(d):
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(d, d or "—")


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def machine_lines(machines):
    out = []
    for mi in machines:
        mb = mi.get("mlmetrics_bench", {}) or {}
        cpu = mb.get("cpu_model") or (mi.get("cpu") or {}).get("brand_raw") or mi.get("processor") or "?"
        parts = [f"CPU: {cpu}", f"{mb.get('cpu_count', (mi.get('cpu') or {}).get('count', '?'))} cores"]
        if mb.get("mem_total_gib"):
            parts.append(f"{mb['mem_total_gib']} GiB RAM")
        parts.append(f"GPU: {mb.get('gpu') or 'none'}")
        for key in ("torch", "triton", "timm", "torchmetrics", "sklearn"):
            if mb.get(key):
                parts.append(f"{key} {mb[key]}")
        if "torch_threads" in mb:
            parts.append(f"torch threads {mb['torch_threads']}")
        if "mlmetrics_extension" in mb:
            parts.append(f"mlmetrics extension {'loaded' if mb['mlmetrics_extension'] else 'MISSING'}")
        if mb.get("mlmetrics_backends_cpu"):
            parts.append(f"CPU backends {mb['mlmetrics_backends_cpu']}")
        if mb.get("mlmetrics_cpu_isa"):
            parts.append(f"CPU kernel ISA {mb['mlmetrics_cpu_isa']}")
        if mb.get("mlmetrics_backends_cuda"):
            parts.append(f"CUDA backends {mb['mlmetrics_backends_cuda']}")
        if mb.get("bench_full_grid"):
            parts.append("full grid")
        if mb.get("bench_data"):
            parts.append(f"{mb['bench_data']} logits")
        when = mi.get("_datetime") or "?"
        commit = (mi.get("_commit") or "")[:10]
        out.append(f"- `{Path(mi['_file']).name}` ({when}{', commit ' + commit if commit else ''}): " + ", ".join(parts))
    return out


# ---------------------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------------------
def split(group_rows):
    ours = [r for r in group_rows if r["role"] == "ours"]
    peers = [r for r in group_rows if r["role"] == "peer"]
    bounds = [r for r in group_rows if r["role"] == "bound"]
    return ours, peers, bounds


def best(rows):
    return min(rows, key=lambda r: r["median"]) if rows else None


def shape_cells(r):
    return [r["device_name"] if r["device"] != "cpu" else "cpu", f"{r['n']:,}", f"{r['c']:,}",
            str(r["k"]), dtype_short(r["dtype"])]


def summary_table(op, glist):
    """One row per (group, ours impl); a column per peer / bound impl: speedup (peer time)."""
    peer_names, bound_names = [], []
    for _, rows in glist:
        for r in rows:
            if r["role"] == "peer" and r["impl"] not in peer_names:
                peer_names.append(r["impl"])
            if r["role"] == "bound" and r["impl"] not in bound_names:
                bound_names.append(r["impl"])
    header = (["device", "N", "C", "k", "dtype", "mlmetrics", "median", "GB/s", "peak extra mem"]
              + [f"speedup vs {p}" for p in peer_names] + [f"ours/{b} (time)" for b in bound_names]
              + ["other load (max)"])
    table = []
    for _, rows in glist:
        ours, peers, bounds = split(rows)
        by_impl = {r["impl"]: r for r in peers + bounds}
        for o in (ours or [None]):
            ref = o or rows[0]
            cells = shape_cells(ref)
            if o is None:
                cells += ["(not run)", "—", "—", "—"]
            else:
                cells += [o["backend"], fmt_time(o["median"]), fmt_gbps(gbps(o)), fmt_bytes(o["peak"])]
            for p in peer_names:
                pr = by_impl.get(p)
                if pr is None:
                    cells.append("—")
                elif o is None:
                    cells.append(fmt_time(pr["median"]))
                else:
                    cells.append(f"**{fmt_ratio(pr['median'] / o['median'])}** ({fmt_time(pr['median'])}, {fmt_bytes(pr['peak'])})")
            for b in bound_names:
                br = by_impl.get(b)
                if br is None or o is None:
                    cells.append("—" if br is None else fmt_time(br["median"]))
                else:
                    cells.append(f"{fmt_ratio(o['median'] / br['median'])} ({fmt_time(br['median'])})")
            cells.append(fmt_load(group_load(rows)))
            table.append(cells)
    return md_table(header, table)


def detail_table(glist):
    header = ["device", "N", "C", "k", "dtype", "impl", "role", "median", "min", "IQR", "rounds", "GB/s",
              "peak extra mem", "ours/this (time)", "speedup", "speedup (min)", "other load"]
    table = []
    for _, rows in glist:
        ours = best([r for r in rows if r["role"] == "ours"])
        for r in sorted(rows, key=lambda r: r["median"]):
            ratio = ours["median"] / r["median"] if ours else None
            table.append(shape_cells(r) + [
                r["impl"], r["role"], fmt_time(r["median"]), fmt_time(r["min"]), fmt_time(r["iqr"]),
                r["rounds"] or "—", fmt_gbps(gbps(r)), fmt_bytes(r["peak"]),
                "—" if ratio is None or r is ours else f"{ratio:.3g}",
                "—" if ratio is None or r is ours else fmt_ratio(1 / ratio),
                "—" if ours is None or r is ours else fmt_ratio(r["min"] / ours["min"]),
                fmt_load(r.get("other_load"))])
    return md_table(header, table)


def evaluate_targets(g):
    """-> list of (description, device, shape text, measured text, ok or None)."""
    out = []
    for op, filt, peer_impls, kind, thr, desc in TARGETS:
        for (_, _), rows in g.items():
            r0 = rows[0]
            if r0["op"] != op or r0["device"] != "cpu":
                continue
            if any(r0.get(key) != val for key, val in filt.items()):
                continue
            ours = best([r for r in rows if r["role"] == "ours"])
            peer = best([r for r in rows if r["impl"] in peer_impls])
            shape = f"{r0['n']:,}×{r0['c']:,} k={r0['k']} {dtype_short(r0['dtype'])}"
            if ours is None or peer is None:
                missing = "mlmetrics" if ours is None else "/".join(peer_impls)
                out.append((desc, r0["device"], shape, f"not measured ({missing} missing)", None))
                continue
            if kind == "speedup":
                v = peer["median"] / ours["median"]
                vmin = peer["min"] / ours["min"]
                ok = v >= thr
                txt = f"{v:.2f}× ({ours['backend']} {fmt_time(ours['median'])} vs {peer['impl']} {fmt_time(peer['median'])})"
            else:
                v = ours["median"] / peer["median"]
                vmin = ours["min"] / peer["min"]
                ok = v <= thr
                txt = f"{v:.2f}× the amax time ({ours['backend']} {fmt_time(ours['median'])} vs amax {fmt_time(peer['median'])})"
            txt += f"; from minima {vmin:.2f}×"
            load = group_load([ours, peer])
            if load is not None:
                txt += f"; other load ≤ {fmt_load(load)}"
            out.append((desc, r0["device"], shape, txt, ok))
    return out


def render_markdown(rows, machines, title=None, command=None):
    g = groups(rows)
    lines = [f"# {title or 'mlmetrics benchmarks'}", ""]
    lines += machine_lines(machines) + [""]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    lines += ["Medians of pytest-benchmark rounds (the targets table also gives the ratio of minima, "
              "less sensitive to other load on a shared machine); all implementations of a row ran on the same tensor "
              "in the same process. speedup = peer median ÷ mlmetrics median; ours/amax = mlmetrics "
              "median ÷ one `x.amax(dim=1)` pass (the cost of reading the logits once). GB/s = logits "
              "(+ labels/targets) bytes ÷ median. Peak extra memory: CPU = peak RSS delta (glibc mmap "
              "threshold lowered to 128 KiB while measuring) or tracemalloc peak, whichever is larger; "
              "GPU = `torch.cuda.max_memory_allocated` delta. Other load = mean share of the cores used by "
              f"other processes while a row was timed (⚠ above {NOISY_LOAD:.0%}: treat its ratios with care).", ""]
    targets = evaluate_targets(g)
    if targets:
        lines += ["## Targets (CPU, ratios from the same run)", ""]
        lines.append(md_table(["target", "shape", "measured", "status"],
                              [[d, s, m, "—" if ok is None else ("✅ met" if ok else "❌ missed")]
                               for d, _, s, m, ok in targets]))
        lines.append("")
    by_op = defaultdict(list)
    for key, rows_ in g.items():
        by_op[rows_[0]["op"]].append((key, rows_))
    ops = [o for o in OP_TITLES if o in by_op] + [o for o in by_op if o not in OP_TITLES]
    for op in ops:
        lines += [f"## {OP_TITLES.get(op, op)}", "", summary_table(op, by_op[op]), ""]
    lines += ["## All measurements", ""]
    for op in ops:
        lines += [f"### {op}", "", detail_table(by_op[op]), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Plot
# ---------------------------------------------------------------------------------------
PLOT_PEERS = {
    "softmax_topk": ["torch-softmax-topk", "torch-topk-lse"],
    "label_hits": ["torch-softmax-topk-gather", "torch-topk-gather"],
}


def speedup_series(rows):
    """{(op, peer, device, backend, n, k, dtype): [(c, speedup), ...]} for the plot."""
    series = defaultdict(list)
    for (_, _), grp in groups(rows).items():
        op = grp[0]["op"]
        if op not in PLOT_PEERS:
            continue
        ours_rows = [r for r in grp if r["role"] == "ours"]
        for o in ours_rows:
            for p in grp:
                if p["impl"] in PLOT_PEERS[op]:
                    key = (op, p["impl"], o["device_name"], o["backend"], o["n"], o["k"], o["dtype"])
                    series[key].append((o["c"], p["median"] / o["median"]))
    return {k: sorted(v) for k, v in series.items()}


def plot(rows, path, title=None):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # pragma: no cover
        print(f"report.py: matplotlib unavailable ({e}); no plot written", file=sys.stderr)
        return False
    # lines only: a shape family needs >= 2 values of C to say anything about "vs C"
    series = {k: v for k, v in speedup_series(rows).items() if len({c for c, _ in v}) >= 2}
    ops = [op for op in PLOT_PEERS if any(k[0] == op for k in series)]
    if not ops:
        print("report.py: no softmax_topk/label_hits shape family with mlmetrics at >= 2 values of C: "
              "no plot written", file=sys.stderr)
        return False
    fig, axes = plt.subplots(1, len(ops), figsize=(7 * len(ops), 5), squeeze=False)
    for ax, op in zip(axes[0], ops):
        for key, pts in sorted(series.items(), key=lambda kv: str(kv[0])):
            if key[0] != op:
                continue
            _, peer, dev, backend, n, k, dtype = key
            xs, ys = zip(*pts)
            style = "-o" if peer == PLOT_PEERS[op][0] else "--s"
            ax.plot(xs, ys, style, label=f"{backend} vs {peer}, N={n:,} k={k} {dtype_short(dtype)}"
                    + ("" if dev == "CPU" else f" [{dev}]"), markersize=4)
        ax.axhline(1.0, color="grey", lw=0.8)
        if op in ("softmax_topk", "label_hits"):
            ax.axhline(3.0, color="red", lw=0.8, ls=":", label="3× target")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("classes C")
        ax.set_ylabel("speedup (peer time ÷ mlmetrics time)")
        ax.set_title(OP_TITLES.get(op, op), fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="pytest-benchmark JSON file(s) (--benchmark-json)")
    ap.add_argument("--md", help="write the markdown here (default: stdout)")
    ap.add_argument("--png", help="write the speedup-vs-C plot here")
    ap.add_argument("--title", help="report title (e.g. the machine: 'CPU, 2 cores')")
    ap.add_argument("--command", help="the benchmark command to quote in the report")
    ap.add_argument("--compact-json", metavar="PATH",
                    help="also write the (first) input JSON here without the raw per-round timings "
                         "(stats.data), small enough to commit")
    args = ap.parse_args(argv)
    if args.compact_json:
        with open(args.json[0]) as f:
            data = json.load(f)
        for b in data.get("benchmarks", []):
            (b.get("stats") or {}).pop("data", None)
        Path(args.compact_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.compact_json).write_text(json.dumps(data, indent=1) + "\n")
    rows, machines = load(args.json)
    if not rows:
        print("report.py: no mlmetrics benchmark rows in the input", file=sys.stderr)
        return 1
    md = render_markdown(rows, machines, title=args.title, command=args.command)
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(md + "\n")
    else:
        print(md)
    if args.png:
        plot(rows, args.png, title=args.title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
