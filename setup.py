"""Builds the extension mlmetrics._C from csrc/ (C++ CPU kernels always; CUDA kernels when nvcc is found).

MLMETRICS_CUDA=0 forces the CUDA build off, MLMETRICS_CUDA=1 forces it on (an error without nvcc).
TORCH_CUDA_ARCH_LIST defaults to "8.0;9.0" (Ampere + Hopper). Install with
    pip install --no-build-isolation -e .
so the build uses the torch already installed.
"""
import glob
import os
import shutil

from setuptools import setup


def _cuda_home():
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if not home and os.path.exists("/usr/local/cuda"):
        home = "/usr/local/cuda"
    if not home and shutil.which("nvcc"):
        home = os.path.dirname(os.path.dirname(shutil.which("nvcc")))
    if home and os.path.exists(os.path.join(home, "bin", "nvcc")):
        return home
    return None


def _pip_cuda_header_dirs(cuda_home):
    """Header dirs of the pip CUDA packages torch depends on (nvidia/*/include), for headers that a
    minimal toolkit lacks (torch's CUDA headers include cusparse.h, cublas_v2.h, ...)."""
    if os.path.exists(os.path.join(cuda_home, "include", "cusparse.h")):
        return []
    try:
        import nvidia
    except ImportError:
        return []
    dirs = []
    for root in getattr(nvidia, "__path__", []):
        dirs += sorted(glob.glob(os.path.join(root, "*", "include")))
    return [d for d in dirs if os.path.exists(os.path.join(d, "cusparse.h"))]


def _extensions():
    flag = os.environ.get("MLMETRICS_CUDA", "").strip()
    cuda_home = _cuda_home()
    if cuda_home is not None:
        # torch.utils.cpp_extension reads CUDA_HOME once, at import: set it first, or it guesses
        # from the nvcc on PATH (e.g. /usr/local/bin/nvcc -> /usr/local, without lib64/).
        os.environ["CUDA_HOME"] = cuda_home
    import torch
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    if flag == "1" and cuda_home is None:
        raise RuntimeError("MLMETRICS_CUDA=1 but nvcc was not found (set CUDA_HOME)")
    with_cuda = flag != "0" and cuda_home is not None and torch.version.cuda is not None
    if flag == "1" and torch.version.cuda is None:
        raise RuntimeError("MLMETRICS_CUDA=1 but the installed torch is a CPU-only build")

    sources = ["csrc/ops.cpp", "csrc/checks.cpp"] + sorted(glob.glob("csrc/cpu/*.cpp"))
    include_dirs = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "include")]
    # torch picks the C++ standard its headers need. -fopenmp: at::parallel_for is an OpenMP
    # pragma inlined from ATen's headers; without it the CPU kernel runs on one thread. The
    # libgomp.so.1 that torch loads first is the one the extension then uses.
    cxx = ["-O3", "-fvisibility=hidden", "-fopenmp"]
    link = ["-fopenmp"]
    if os.environ.get("MLMETRICS_NATIVE", "0") == "1":
        cxx.append("-march=native")
    define_macros = []  # py_limited_api=True makes torch define Py_LIMITED_API
    if with_cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        define_macros.append(("MLMETRICS_WITH_CUDA", None))
        extra_headers = []
        for d in _pip_cuda_header_dirs(cuda_home):  # searched after the toolkit's own headers
            extra_headers += ["-isystem", d]
        return [
            CUDAExtension(
                "mlmetrics._C",
                sources,
                include_dirs=include_dirs,
                define_macros=define_macros,
                extra_link_args=link,
                extra_compile_args={"cxx": cxx + extra_headers,
                                    "nvcc": ["-O3", "--use_fast_math", "-DMLMETRICS_WITH_CUDA"] + extra_headers},
                py_limited_api=True,
            )
        ]
    return [CppExtension("mlmetrics._C", sources, include_dirs=include_dirs, define_macros=define_macros,
                         extra_compile_args={"cxx": cxx}, extra_link_args=link, py_limited_api=True)]


def _build_ext():
    from torch.utils.cpp_extension import BuildExtension

    return BuildExtension.with_options(use_ninja=True)


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": _build_ext()},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
