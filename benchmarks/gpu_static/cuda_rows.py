"""Static cost of the CUDA v2 rows kernel (csrc/cuda/topk_v2_rows.cuh: a row read once into registers).

The kernel has no loop over the logits: a thread's row is straight-line code plus three short
data-dependent loops. Its cost per thread is

* the cheapest entry -> EXIT path through two waypoints: the one-candidate-per-lane ranking loop
  (the common selection) and the finite-row statistics (the float64 log and divisions; the cheapest
  path would skip them as if every row were non-finite);
* the candidate loop: per warp, as many trips as its busiest lane has candidate vectors (a trip
  reads one vector again and appends its candidates), each trip at the cost of a trip that appends
  nothing, plus one append per element position that any lane of the warp appends in that trip;
* the ranking loop: as many trips as the warp's longest candidate list (two rows per warp);
* the rarer paths, at their probability: more candidates than lanes (the multi-slot ranking loop, at
  its full capacity) and a flooded buffer (k fallback rounds over the whole row).

The expectations come from simulating the kernel's rule on i.i.d. standard normal rows rounded to
the dtype (fixed seed): per-lane vector maxima, the k-th largest lane maximum as the threshold,
candidates = elements >= it. Sorted or adversarial rows produce more candidates.
"""
from __future__ import annotations

import functools

import numpy as np

from . import sass

ROWS_SIMULATED = 4096
CAND_PER_LANE = 4  # kRowCand in topk_v2_rows.cuh


@functools.lru_cache(maxsize=None)
def simulate(c: int, lanes: int, slots: int, v: int, k: int, dtype: str, rows: int = ROWS_SIMULATED) -> dict:
    """Expected per-warp counts of the rows kernel on i.i.d. normal rows (aligned rows, no head)."""
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, c, generator=g).to(getattr(torch, dtype)).float().numpy()
    nv = slots // v  # vector slots per lane
    width = nv * lanes * v
    full = np.full((rows, width), -np.inf, dtype=np.float32)
    full[:, :c] = x
    # vector slot t of lane l is row vector t * lanes + l
    xs = full.reshape(rows, nv, lanes, v)
    vm = xs.max(axis=3)                      # [rows, nv, lanes]
    lm = vm.max(axis=1)                      # [rows, lanes]
    thr = -np.sort(-lm, axis=1)[:, k - 1]    # k-th largest lane maximum
    valid = (np.arange(width) < c).reshape(1, nv, lanes, v)
    cand = (xs >= thr[:, None, None, None]) & valid
    n = cand.sum(axis=(1, 2, 3))
    cvec = cand.any(axis=3)                  # [rows, nv, lanes]: candidate vectors
    per_warp = max(1, 32 // lanes)
    w = rows // per_warp
    cw = cand[: w * per_warp].reshape(w, per_warp, nv, lanes, v).transpose(0, 2, 1, 3, 4).reshape(w, nv, 32, v)
    vw = cw.any(axis=3)                      # [warps, nv, 32 lanes]
    trips = vw.sum(axis=1).max(axis=1)       # the busiest lane's candidate vectors
    appends = 0
    for i in range(w):                       # trip j of lane l handles lane l's j-th candidate vector
        order = [np.flatnonzero(vw[i, :, l]) for l in range(32)]
        for j in range(int(trips[i])):
            pos = np.zeros(v, dtype=bool)
            for l in range(32):
                if j < len(order[l]):
                    pos |= cw[i, order[l][j], l]
            appends += int(pos.sum())
    nmax = n[: w * per_warp].reshape(w, per_warp).max(axis=1)
    cap = CAND_PER_LANE * lanes
    return dict(trips=float(trips.mean()), appends=appends / w, candidates=float(n.mean()),
                rank_trips=float(nmax.mean()), p_multi=float(((n > lanes) & (n <= cap)).mean()),
                p_flood=float((n > cap).mean()))


def _through(blocks, waypoints, is_end):
    """Cheapest forward path from block 0 through the waypoints (in block order) to an end block."""
    total, src, seen = 0, 0, set()
    for wp in list(waypoints) + [None]:
        end = (lambda b, t=wp: b == t) if wp is not None else is_end
        p = sass._path(blocks, 0, len(blocks) - 1, src, end)
        if p is None:
            raise RuntimeError(f"no path from block {src} to {wp}")
        total += sum(blocks[b].end - blocks[b].start for b in p if b not in seen)
        seen.update(p)
        src = p[-1]
    return total


def _ops(instrs, blocks, ids):
    return [instrs[i] for b in ids for i in range(blocks[b].start, blocks[b].end)]


def analyze_rows_kernel(instrs, labels) -> dict:
    """Path and loop sizes of the rows kernel from its SASS (see the module doc)."""
    blocks = sass.build_cfg(instrs, labels)
    reach = sass._reachable(blocks)
    lps = sass.loops(blocks, reach)
    body = {}
    for lp in lps:
        p = sass._path(blocks, lp.header, lp.latch, lp.header, lambda b, lp=lp: b == lp.latch)
        if p:
            body[(lp.header, lp.latch)] = p
    has = lambda ids, op: any(i.op == op for i in _ops(instrs, blocks, ids))  # noqa: E731
    # the ranking loops: shared-memory reads, no appends, no global loads; the single-slot one is the smaller
    rank = sorted((len(_ops(instrs, blocks, p)), lp) for lp, p in body.items()
                  if has(p, "LDS") and not has(p, "ATOMS") and not has(p, "LDG") and not has(p, "SHFL"))
    if len(rank) < 2:
        raise RuntimeError("rows kernel: ranking loops not found")
    (rank1, rank1_lp), (rank_n, _) = rank[0], rank[-1]
    # the candidate loop: global loads and a shared atomic in some trip
    cand_lp = None
    for (h, l) in body:
        if any(instrs[i].op == "ATOMS" for b in range(h, l + 1) for i in range(blocks[b].start, blocks[b].end)):
            cand_lp = (h, l)
    if cand_lp is None:
        raise RuntimeError("rows kernel: candidate loop not found")
    h, l = cand_lp
    loads = [b for b in range(h, l + 1) if any(instrs[i].op == "LDG" for i in range(blocks[b].start, blocks[b].end))]
    atoms = [b for b in range(h, l + 1) if any(instrs[i].op == "ATOMS" for i in range(blocks[b].start, blocks[b].end))]

    def trip(via):
        best = None
        for b in via:
            a = sass._path(blocks, h, l, h, lambda x, b=b: x == b)
            z = sass._path(blocks, h, l, b, lambda x: x == l)
            if a and z:
                n = sum(blocks[x].end - blocks[x].start for x in set(a) | set(z))
                best = n if best is None else min(best, n)
        return best

    trip_plain = trip(loads)
    trip_one = trip(atoms)
    # the fallback round: the loop that shuffles (a segment arg-max) and loads the row
    fallback = max((len(_ops(instrs, blocks, p)) for p in body.values() if has(p, "SHFL")), default=0)
    # the finite-row statistics: the block with the most float64 instructions
    f64 = max(reach, key=lambda b: sum(1 for i in range(blocks[b].start, blocks[b].end) if instrs[i].op.startswith("D")))
    exits = lambda b: blocks[b].exits and b in reach  # noqa: E731
    typical = _through(blocks, sorted([rank1_lp[0], f64]), exits)
    return dict(typical=typical, rank1=rank1, rank_n=rank_n, trip_plain=trip_plain,
                append=trip_one - trip_plain, fallback_round=fallback)


def cost_per_thread(parts: dict, sim: dict, k: int, lanes: int) -> dict:
    """Expected instructions one thread issues per row, by part."""
    cap = CAND_PER_LANE * lanes
    out = dict(
        typical=parts["typical"],
        candidates=sim["trips"] * parts["trip_plain"] + sim["appends"] * parts["append"],
        ranking=max(sim["rank_trips"] - 1.0, 0.0) * parts["rank1"],
        rare=sim["p_multi"] * cap * parts["rank_n"] + sim["p_flood"] * k * parts["fallback_round"],
    )
    out["total"] = sum(out.values())
    return out
