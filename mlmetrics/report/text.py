"""The text rendering of a report (what ``mlmetrics eval`` prints)."""
from __future__ import annotations

from typing import Callable

from ..stats.report import INTERVAL_KEYS, interval_header, interval_suffix


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, list):
        return f"[{len(v)} values]"
    return str(v)


def format_text(rep: dict, *, namer: Callable[[int], str] | None = None, max_images: int = 50) -> str:
    """A human-readable rendering of :func:`build_report`'s dict."""
    m, t = rep.get("model", {}), rep.get("timings", {})
    lines = [
        f"model    {m.get('model', '?')}  weights: {m.get('weights', '?')}"
        + (f" (keys matched {m['key_matching']})" if m.get("key_matching") else ""),
        f"data     {rep.get('dataset', {}).get('root', '?')}  layout: {rep.get('dataset', {}).get('layout', '?')}"
        f"  labels: {rep.get('dataset', {}).get('labels', '?')}",
        f"images   {rep['num_images']} found, {rep['num_scored']} scored, {rep['num_skipped']} skipped (undecodable)",
    ]
    if t.get("images_per_s") is not None:
        lines.append(f"speed    {t['images_per_s']:.1f} images/s over {t.get('loop_s', 0):.2f} s "
                     f"on {rep.get('config', {}).get('device', '?')}")
    for s in rep["skipped"][:10]:
        lines.append(f"  skipped {s['image']}: {s['error'][:120]}")
    lines.append("")
    lines.append("metrics")
    w = max([len(k) for k in rep["metrics"]] + [6])
    ivs = rep["metrics"].get("intervals") or {}  # from mlmetrics.stats.Bootstrap (eval --intervals)
    if interval_header(rep["metrics"]):
        lines[-1] += f"  {interval_header(rep['metrics'])}"
    for k, v in rep["metrics"].items():
        if k not in INTERVAL_KEYS:
            lines.append(f"  {k:<{w}}  {_fmt(v)}{interval_suffix(ivs.get(k))}")
    rows = rep.get("subgroups", [])
    if rows:
        cols = [c for c in rows[0] if c not in ("group", "intervals")]
        for r in rows[1:]:
            cols += [c for c in r if c not in ("group", "intervals") and c not in cols]
        gw = max([len(r["group"]) for r in rows] + [5])
        lines += ["", "subgroups", "  " + f"{'group':<{gw}}  " + "  ".join(f"{c:>10}" for c in cols)]
        for r in rows:
            lines.append("  " + f"{r['group']:<{gw}}  " + "  ".join(f"{_fmt(r.get(c)):>10}" for c in cols))
    if rep.get("per_image"):
        lines += ["", "per image (top-5; * = in the image's label set)"]
        for r in rep["per_image"][:max_images]:
            labels = set(r.get("labels") or [])
            tops = ", ".join(f"{'*' if e['index'] in labels else ''}{e['name'].split(',')[0]} "
                             f"{(e['prob'] or 0):.2f}" for e in r["top5"])
            lab = ", ".join((namer(c).split(",")[0] if namer else str(c)) for c in sorted(labels))
            tgt = f"  |  target: {namer(r['target']).split(',')[0] if namer else r['target']}" if "target" in r else ""
            lines.append(f"  {r['image']}: {tops}")
            lines.append(f"  {'':<{len(r['image'])}}  labels: {lab or '-'}{tgt}")
        if len(rep["per_image"]) > max_images:
            lines.append(f"  ... {len(rep['per_image']) - max_images} more in the JSON report")
    if rep.get("outputs"):
        lines += [""] + [f"wrote {k}: {v}" for k, v in rep["outputs"].items()]
    return "\n".join(lines)
