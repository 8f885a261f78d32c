"""Static (no-GPU) cost of the GPU kernels on the benchmark shapes, from their sm_90 SASS.

``python -m benchmarks.gpu_static [--shape NxC:dtype:k] [--backend ...] [--json out.json] [--md out.md]``
"""
