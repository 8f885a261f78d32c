"""Static cost of the CUDA v2 long-row kernel (csrc/cuda/topk_v2_long.cuh: a block per row, a
warp-wide top-k list per warp, a block-wide bound in shared memory).

Per thread and row:

* the hot loop: its cheapest iteration (no lane reaches the bound) on every tile;
* the exact path on the tiles its warp admits: the cheapest admitted iteration with no candidate,
  plus one trip of the candidate loop per candidate of the warp's busiest lane (a trip that reads
  a candidate vector again) and one trip of the insertion loop (through its shuffle-up: an
  insertion that happens) per candidate of the warp;
  the first tile also runs the seed (the k-th largest lane maximum);
* the fixed cost: the cheapest entry -> EXIT path through the finite-row statistics (the float64
  log and divisions), plus k trips of the warps' merge loop; a partial last tile (C not a multiple
  of the block's tile) as one more admitted tile.

How many tiles a warp admits and how many candidates it inserts comes from simulating the kernel's
rule on i.i.d. standard normal rows rounded to the dtype (fixed seed): per warp tile, the warp's
bound is the larger of its own k-th value (strict) and the largest k-th value any warp had published
by the end of the previous tile (non-strict: the block bound as a warp that lags a step sees it),
seeded on the first tile by the k-th largest lane maximum. The softmax reference never moves after
the first tile on such rows (a tile max 22 nats above it), so it adds nothing.
"""
from __future__ import annotations

import functools

import numpy as np

from . import sass

ROWS_SIMULATED = 48
TOP_PER_WARP_TILE = 32  # candidates per warp tile the simulation tracks (more: saturated, and counted)


@functools.lru_cache(maxsize=None)
def simulate(c: int, threads: int, ul: int, v: int, k: int, dtype: str, rows: int = ROWS_SIMULATED) -> dict:
    """Expected per-warp counts of the long-row kernel on i.i.d. normal rows (aligned rows)."""
    import torch

    warps = threads // 32
    step = ul * threads  # vectors per tile of the block
    nv = c // v
    tiles = nv // step
    if tiles == 0:
        raise ValueError("no full tile")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, tiles * step * v, generator=g).to(getattr(torch, dtype)).float().numpy()
    # vector q = tile * step + t * threads + tid; tid = warp * 32 + lane
    x = x.reshape(rows, tiles, ul, warps, 32, v).transpose(0, 1, 3, 4, 2, 5).reshape(rows, tiles, warps, 32, ul * v)
    lane_max = x.max(axis=4)                                       # [rows, tiles, warps, 32]
    flat = x.reshape(rows, tiles, warps, 32 * ul * v)
    m = TOP_PER_WARP_TILE
    part = np.argpartition(-flat, m - 1, axis=3)[..., :m]
    vals = np.take_along_axis(flat, part, axis=3)
    order = np.argsort(-vals, axis=3)
    vals = np.take_along_axis(vals, order, axis=3)                 # [rows, tiles, warps, m], descending
    lanes = np.take_along_axis(part, order, axis=3) // (ul * v)
    ninf = -np.inf
    own = np.full((rows, warps, k), ninf)                          # each warp's top-k values
    block = np.full(rows, ninf)
    admitted = trips = inserts = saturated = 0.0
    for t in range(tiles):
        prev_block = block.copy()
        for w in range(warps):
            kth = own[:, w, k - 1]
            vv = vals[:, t, w]
            cand = (vv > kth[:, None]) & (vv >= prev_block[:, None])
            if t == 0:
                seed = -np.sort(-lane_max[:, 0, w], axis=1)[:, k - 1]
                cand &= vv >= seed[:, None]
                adm = np.ones(rows, dtype=bool)
            else:
                adm = cand[:, 0]  # the tile max reaches the bound
            cand &= adm[:, None]
            n = cand.sum(axis=1)
            saturated += float((n == m).sum())
            busiest = np.zeros(rows)
            for r in np.flatnonzero(n):
                busiest[r] = np.bincount(lanes[r, t, w][cand[r]]).max()
            admitted += float(adm.sum())
            trips += float(busiest.sum())
            inserts += float(n.sum())
            merged = np.concatenate([own[:, w], np.where(cand, vv, ninf)], axis=1)
            own[:, w] = -np.sort(-merged, axis=1)[:, :k]
        block = np.maximum(block, own[:, :, k - 1].max(axis=1))
    per = rows * warps
    return dict(tiles=tiles, admitted=admitted / per, trips=trips / per, inserts=inserts / per,
                saturated=saturated / per)


def _body(blocks, lp):
    return sass._path(blocks, lp.header, lp.latch, lp.header, lambda b, lp=lp: b == lp.latch)


def _size(blocks, ids):
    return sum(blocks[b].end - blocks[b].start for b in set(ids))


def _has(instrs, blocks, ids, op):
    return any(instrs[i].op == op for b in ids for i in range(blocks[b].start, blocks[b].end))


def _via(blocks, lo, hi, src, dst, waypoints):
    """Cheapest forward path src -> dst through the waypoints (ascending block ids) within [lo, hi]."""
    out, cur = [], src
    for wp in list(waypoints) + [dst]:
        p = sass._path(blocks, lo, hi, cur, lambda b, t=wp: b == t)
        if p is None:
            return None
        out += p if not out else p[1:]
        cur = wp
    return out


def analyze_long_kernel(instrs, labels) -> dict:
    """Loop and path sizes of the long-row kernel from its SASS (see the module doc)."""
    blocks = sass.build_cfg(instrs, labels)
    reach = sass._reachable(blocks)
    lps = [lp for lp in sass.loops(blocks, reach) if _body(blocks, lp)]
    load_bytes = lambda lp: sass.PathCount.of(instrs, blocks, _body(blocks, lp)).load_bytes  # noqa: E731
    hot = max(lps, key=lambda lp: (load_bytes(lp), -lp.header))
    h, l, last = hot.header, hot.latch, len(blocks) - 1
    hot_iter = _size(blocks, _body(blocks, hot))
    ops = lambda b: [instrs[i].opcode for i in range(blocks[b].start, blocks[b].end)]  # noqa: E731
    inner = [lp for lp in lps if h < lp.header <= lp.latch < l]
    # the insertion (a shuffle-up) inside the insertion loop, inside the candidate loop
    up = [b for b in range(h, l + 1) if any(o.startswith("SHFL.UP") for o in ops(b))]
    ins_lp = [lp for lp in inner if any(lp.header <= b <= lp.latch for b in up)]
    if not up or len(ins_lp) < 2:
        raise RuntimeError("long-row kernel: candidate / insertion loops not found")
    ins_lp.sort(key=lambda lp: lp.latch - lp.header)
    il, cl = ins_lp[0], ins_lp[1]  # the insertion loop, the candidate loop around it
    u = min(b for b in up if il.header <= b <= il.latch)
    ins_trip = _size(blocks, _via(blocks, il.header, il.latch, il.header, il.latch, [u]))
    # a trip of the candidate loop that reads a candidate vector again (when it does) and inserts one
    reload = [b for b in range(cl.header, cl.latch + 1) if any(o.startswith("LDG") and ".128" in o for o in ops(b))]
    trip = _via(blocks, cl.header, cl.latch, cl.header, cl.latch, sorted({u, *reload[:1]}))
    cand_trip = _size(blocks, trip if trip else _via(blocks, cl.header, cl.latch, cl.header, cl.latch, [u]))
    one = _via(blocks, h, l, h, l, sorted({u, *reload[:1]})) or _via(blocks, h, l, h, l, [u])
    exact_one = _size(blocks, one)
    exact_zero = exact_one - cand_trip
    # the first tile's seed: the hot-loop block outside the inner loops with the most shuffles
    in_inner = {b for lp in inner for b in range(lp.header, lp.latch + 1)}
    shfl = lambda b: sum(o.startswith("SHFL") for o in ops(b))  # noqa: E731
    seed_b = max((b for b in range(h, l + 1) if b not in in_inner), key=shfl)
    seeded = _via(blocks, h, l, h, l, sorted({seed_b, u}))
    seed = _size(blocks, seeded) - exact_one if seeded else 0
    # the fixed cost: entry -> EXIT through the warps' merge loop and the float64 statistics
    outside = [lp for lp in lps if lp.header > l or lp.latch < h]
    merge = [lp for lp in outside if _has(instrs, blocks, _body(blocks, lp), "SHFL")
             and not _has(instrs, blocks, _body(blocks, lp), "LDG")
             and not _has(instrs, blocks, _body(blocks, lp), "VOTE")]
    merge_lp = min(merge, key=lambda lp: _size(blocks, _body(blocks, lp)), default=None)
    merge_trip = _size(blocks, _body(blocks, merge_lp)) if merge_lp else 0
    f64 = max(reach, key=lambda b: sum(1 for i in range(blocks[b].start, blocks[b].end)
                                       if instrs[i].op.startswith("D")))
    wps = sorted({f64} | ({merge_lp.header} if merge_lp else set()))
    fixed = None
    for e in (b for b in reach if blocks[b].exits):
        p = _via(blocks, 0, last, 0, e, wps)
        if p is not None:
            n = _size(blocks, p) - (hot_iter if h in p else 0)
            fixed = n if fixed is None else min(fixed, n)
    if fixed is None:
        raise RuntimeError("long-row kernel: no path through the statistics")
    return dict(hot=hot_iter, exact_zero=exact_zero, cand_trip=cand_trip - ins_trip, insert_trip=ins_trip,
                seed=seed, fixed=fixed, merge_trip=merge_trip)


def cost_per_thread(parts: dict, sim: dict, k: int, partial: bool = False) -> dict:
    """Expected instructions one thread issues per row, by part (partial: the row ends in a partial
    tile, costed as one more admitted tile)."""
    out = dict(
        hot=sim["tiles"] * parts["hot"] + (parts["exact_zero"] if partial else 0),
        exact=sim["admitted"] * (parts["exact_zero"] - parts["hot"]) + sim["trips"] * parts["cand_trip"]
        + sim["inserts"] * parts["insert_trip"] + parts["seed"],
        fixed=parts["fixed"] + (k - 1) * parts["merge_trip"],
    )
    out["total"] = sum(out.values())
    return out
