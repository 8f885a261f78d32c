"""GPU check + benchmark of the Triton topk_stats kernels (run on a CUDA machine, no interpreter).

    PYTHONUNBUFFERED=1 python -m benchmarks.gpu.bench_triton [--kernel triton|triton_filtered|both]
                                                             [--quick] [--no-check] [--sweep]

Prints, per kernel and shape, the parity check against the reference, the kernel time, the logits
bandwidth (bytes of logits read / time) and ``torch.softmax(x, -1).topk(k)`` in the same process
for comparison. ``--sweep`` times launch configurations of the "triton" kernel.
"""
from __future__ import annotations

import argparse
import warnings

import torch

warnings.simplefilter("ignore")

from mlmetrics.ops import reference  # noqa: E402
from mlmetrics.ops.triton import filtered  # noqa: E402
from mlmetrics.ops.triton.topk_stats import _torch_order_key  # noqa: E402
from mlmetrics.ops.triton.topk_stats import topk_stats as streaming_topk_stats  # noqa: E402

KERNELS = {"triton": streaming_topk_stats, "triton_filtered": filtered.topk_stats}


def fast_oracle_topk(x, k):
    """Exact rank-order top-k via torch.topk on 64-bit keys (GPU; ties -> lower index)."""
    x32 = x.float()
    ok = _torch_order_key(x32).to(torch.int64)
    low = 0xFFFFFFFF - torch.arange(x.shape[1], device=x.device, dtype=torch.int64)
    top = torch.topk((ok << 32) | low, k, dim=1).values
    return 0xFFFFFFFF - (top & 0xFFFFFFFF)


def check(topk_stats=streaming_topk_stats):
    dev = "cuda"
    g = torch.Generator(device="cpu").manual_seed(0)
    bad = 0
    cases = [(257, 1000, 5, torch.float32), (64, 21841, 5, torch.float16), (33, 100, 100, torch.bfloat16),
             (300, 10, 3, torch.float32), (8, 131072, 5, torch.bfloat16), (17, 1000, 1000, torch.float32),
             (50, 3000, 64, torch.float16)]
    for n, c, k, dt in cases:
        x = torch.randn(n, c, generator=g).to(dt)
        x[0, 5] = float("nan")
        x[1] = float("-inf")
        x[2, 3] = float("inf")
        x[3, : c // 2] = float("-inf")
        x[4] = 0.0
        x[4, ::2] = -0.0
        x[5] = x[5].round()
        tgt = torch.randint(-2, c + 2, (n,), generator=g)
        sizes = torch.randint(0, 4, (n,), generator=g)
        off = torch.zeros(n + 1, dtype=torch.int64)
        off[1:] = sizes.cumsum(0)
        lab = torch.randint(0, c, (int(off[-1]),), generator=g, dtype=torch.int64).to(torch.int32)
        rng = torch.stack([off[:-1], off[1:]], 1)
        sub = None
        if c == 1000 and k == 5:
            sub = torch.randperm(c, generator=g)[:200]
            lab = lab % 200
            tgt = tgt % 200
        ref = reference.topk_stats(x, k, tgt, rng, lab, sub, True)
        for xs in (x.to(dev), x.to(dev).t().contiguous().t()):
            out = topk_stats(xs, k, tgt.to(dev), rng.to(dev), lab.to(dev), None if sub is None else sub.to(dev), True)
            out = [o.cpu() for o in out]
            ok = (torch.equal(out[1], ref[1]) and torch.equal(out[2], ref[2]) and torch.equal(out[4], ref[4])
                  and torch.allclose(out[0], ref[0], rtol=0, atol=0, equal_nan=True))
            ok = ok and torch.allclose(out[3], ref[3], rtol=1e-4, atol=1e-4, equal_nan=True)
            print(f"check n={n} c={c} k={k} {dt} strides={tuple(xs.stride())}: {'OK' if ok else 'MISMATCH'}")
            if not ok:
                bad += 1
                d = (out[3] - ref[3]).abs().nan_to_num(0).max()
                print("   idx eq", torch.equal(out[1], ref[1]), "hits", torch.equal(out[2], ref[2]),
                      "rank", torch.equal(out[4], ref[4]), "stats maxdiff", float(d))
    # large shape: indices vs the fast torch oracle
    for n, c, dt in ((4096, 131072, torch.bfloat16), (65536, 1000, torch.float32)):
        x = torch.randn(n, c, device=dev, dtype=dt)
        out = topk_stats(x, 5, None, None, None, None, True)
        ok = torch.equal(out[1], fast_oracle_topk(x, 5))
        lse = torch.logsumexp(x.float(), 1)
        ok = ok and torch.allclose(out[3][:, 1], lse, rtol=1e-5, atol=1e-4)
        print(f"check big n={n} c={c} {dt}: {'OK' if ok else 'MISMATCH'}")
        bad += not ok
    return bad


def bench(quick=False, topk_stats=streaming_topk_stats):
    from triton.testing import do_bench

    dev = "cuda"
    shapes = [(65536, 1000, torch.float32), (4096, 131072, torch.bfloat16)]
    if not quick:
        shapes += [(4096, 21841, torch.float16), (65536, 100, torch.float32), (65536, 10, torch.float32),
                   (1024, 262144, torch.bfloat16)]
    for n, c, dt in shapes:
        x = torch.randn(n, c, device=dev, dtype=dt)
        nbytes = x.numel() * x.element_size()
        tgt = torch.randint(0, c, (n,), device=dev)
        variants = [("k=5 softmax", dict(k=5)), ("k=5 softmax+target", dict(k=5, target=tgt)),
                    ("k=5 no-softmax", dict(k=5, with_softmax=False))]
        if not quick:
            variants.append(("k=100 softmax", dict(k=min(100, c))))
        for name, kw in variants:
            k = kw.pop("k")
            ws = kw.pop("with_softmax", True)
            t = kw.get("target")
            ms = do_bench(lambda: topk_stats(x, k, t, None, None, None, ws), warmup=10, rep=50)
            print(f"{n}x{c} {str(dt)[6:]} {name}: {ms:.3f} ms  {nbytes / ms / 1e6:.0f} GB/s")
        ms = do_bench(lambda: torch.softmax(x, -1).topk(5), warmup=10, rep=50)
        print(f"{n}x{c} {str(dt)[6:]} torch softmax+topk(5): {ms:.3f} ms  {nbytes / ms / 1e6:.0f} GB/s")
        del x


def sweep():
    from triton.testing import do_bench

    full = (("k5", 5, False, True), ("+tgt", 5, True, True), ("k1", 1, False, True), ("k5 nosm", 5, False, False))
    short = (("k5", 5, False, True), ("+tgt", 5, True, True))
    cfgs = [
        ((65536, 1000, torch.float32), [(4, 256, 1), (2, 512, 1), (8, 128, 1), (1, 1024, 1), (2, 256, 1)], full),
        ((4096, 131072, torch.bfloat16), [(1, 256, 1), (1, 512, 1), (1, 1024, 1), (2, 512, 1)], full),
        ((4096, 21841, torch.float16), [(1, 512, 1), (1, 1024, 1)], short),
        ((65536, 100, torch.float32), [(8, 128, 1), (16, 128, 1)], short),
        ((65536, 10, torch.float32), [(32, 16, 1), (64, 16, 1)], short),
    ]
    for (n, c, dt), cl, variants in cfgs:
        x = torch.randn(n, c, device="cuda", dtype=dt)
        tgt = torch.randint(0, c, (n,), device="cuda")
        nbytes = x.numel() * x.element_size()
        ms = do_bench(lambda: torch.softmax(x, -1).topk(5), warmup=5, rep=30)
        print(f"torch {n}x{c} {str(dt)[6:]} softmax(x,-1).topk(5): {ms:.3f}ms {nbytes / ms / 1e6:.0f}GB/s")
        for br, bc, nw in cl:
            res = []
            for name, k, use_t, sm in variants:
                t = tgt if use_t else None
                ms = do_bench(lambda: streaming_topk_stats(x, k, t, None, None, None, sm, block_r=br, block_c=bc,
                                                 num_warps=nw), warmup=5, rep=30)
                res.append(f"{name} {ms:.3f}ms {nbytes / ms / 1e6:.0f}GB/s")
            print(f"sweep {n}x{c} {str(dt)[6:]} R={br} BC={bc} nw={nw}: " + " | ".join(res))
        del x


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--kernel", choices=[*KERNELS, "both"], default="both")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-check", action="store_true")
    p.add_argument("--sweep", action="store_true")
    a = p.parse_args()
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    import triton

    print("triton", triton.__version__)
    bad = 0
    for name in (KERNELS if a.kernel == "both" else [a.kernel]):
        fn = KERNELS[name]
        print(f"== kernel {name}")
        if not a.no_check:
            m = check(fn)
            bad += m
            print(f"mismatches ({name}):", m)
        if a.sweep and name == "triton":
            sweep()
        else:
            bench(a.quick, fn)
    raise SystemExit(1 if bad else 0)
