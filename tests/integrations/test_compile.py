"""torch.compile(fullgraph=True) of an eval step that updates ClassificationMetrics with label sets
and a class subset: no graph break (torch._dynamo.explain), the same numbers as eager, no
recompile per batch; on CUDA, no host sync per update."""
import pytest
import torch

from mlmetrics import ClassificationMetrics, LabelSets

N, C, W = 32, 20, 40  # batch, scored classes, logits width (with a class subset)


def _data(batches=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batches * N, W, generator=g) * 3
    t = torch.randint(0, C, (batches * N,), generator=g)
    lists = [sorted({int(t[i]), (int(t[i]) * 7 + i) % C}) if i % 5 else [] for i in range(batches * N)]
    return x, t, LabelSets.from_lists(lists, C), torch.arange(0, W, 2)


def _metrics(sets, subset):
    return {
        "label_sets": ClassificationMetrics(C, topk=(1, 5), label_sets=sets),
        "class_subset": ClassificationMetrics(W, topk=(1, 5), class_subset=subset),
        "both": ClassificationMetrics(W, topk=(1, 5), label_sets=sets, class_subset=subset),
    }


def _step_fns(ms):
    def step_index(x, t, idx):
        ms["label_sets"].update(x[:, :C], t, sample_index=idx)

    def step_subset(x, t):
        ms["class_subset"].update(x, t)

    def step_arrival(x, t):  # label sets in arrival order (no sample_index)
        ms["both"].update(x, t)
    return step_index, step_subset, step_arrival


def _close(a, b):
    for k, v in a.items():
        if isinstance(v, torch.Tensor):
            torch.testing.assert_close(b[k], v, equal_nan=True)
        elif isinstance(v, dict):
            assert b[k] == pytest.approx(v)
        elif isinstance(v, float):
            assert b[k] == pytest.approx(v, abs=1e-12, nan_ok=True), k
        else:
            assert b[k] == v, k


def test_explain_finds_no_graph_break():
    x, t, sets, subset = _data()
    ms = _metrics(sets, subset)
    step_index, step_subset, step_arrival = _step_fns(ms)
    idx = torch.arange(N)
    # the first (eager) update checks the class subset once; compiled updates reuse that check
    for name, fn, args in (("index", step_index, (x[:N], t[:N], idx)), ("subset", step_subset, (x[:N], t[:N])),
                           ("arrival", step_arrival, (x[:N], t[:N]))):
        fn(*args)
        e = torch._dynamo.explain(fn)(*args)
        reasons = [str(r.reason).splitlines()[0] for r in e.break_reasons]
        assert e.graph_break_count == 0, (name, reasons)


def test_fullgraph_compiled_step_equals_eager():
    torch._dynamo.reset()
    x, t, sets, subset = _data(batches=4)
    eager, comp = _metrics(sets, subset), _metrics(sets, subset)
    fns = [torch.compile(f, fullgraph=True, backend="aot_eager") for f in _step_fns(comp)]
    e_fns, first = _step_fns(eager), _step_fns(comp)
    torch._dynamo.utils.counters.clear()
    for b in range(4):
        rows = slice(b * N, (b + 1) * N)
        idx = torch.arange(b * N, (b + 1) * N)
        # the first update of `comp` runs eager: it checks the class subset once (a host sync)
        for fs in (e_fns, first if b == 0 else fns):
            fs[0](x[rows], t[rows], idx)
            fs[1](x[rows], t[rows])
            fs[2](x[rows], t[rows])
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    print("graphs", frames)
    assert frames <= 3 * 2, f"{frames} graphs for 3 step functions: recompiling per batch"
    for name in eager:
        _close(eager[name].compute(), comp[name].compute())


@pytest.mark.gpu
def test_cuda_updates_never_sync_the_host():
    x, t, sets, subset = _data()
    ms = _metrics(sets, subset)
    step_index, step_subset, step_arrival = _step_fns(ms)
    xc, tc = x.cuda(), t.cuda()
    step_index(xc[:N], tc[:N], torch.arange(N, device="cuda"))  # warm-up: moves state, checks the subset
    step_subset(xc[:N], tc[:N])
    step_arrival(xc[:N], tc[:N])
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for b in (1, 2):
            rows = slice(b * N, (b + 1) * N)
            step_index(xc[rows], tc[rows], torch.arange(b * N, (b + 1) * N, device="cuda"))
            step_subset(xc[rows], tc[rows])
            step_arrival(xc[rows], tc[rows])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert ms["both"].compute()["num_samples"] == 3 * N
