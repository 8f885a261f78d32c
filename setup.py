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


def _extensions():
    import torch
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    flag = os.environ.get("MLMETRICS_CUDA", "").strip()
    cuda_home = _cuda_home()
    if flag == "1" and cuda_home is None:
        raise RuntimeError("MLMETRICS_CUDA=1 but nvcc was not found (set CUDA_HOME)")
    with_cuda = flag != "0" and cuda_home is not None and torch.version.cuda is not None
    if flag == "1" and torch.version.cuda is None:
        raise RuntimeError("MLMETRICS_CUDA=1 but the installed torch is a CPU-only build")

    sources = ["csrc/ops.cpp"] + sorted(glob.glob("csrc/cpu/*.cpp"))
    cxx = ["-O3", "-fvisibility=hidden"]  # torch picks the C++ standard its headers need
    if os.environ.get("MLMETRICS_NATIVE", "0") == "1":
        cxx.append("-march=native")
    define_macros = [("Py_LIMITED_API", "0x03090000")]
    if with_cuda:
        os.environ["CUDA_HOME"] = cuda_home
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        define_macros.append(("MLMETRICS_WITH_CUDA", None))
        return [
            CUDAExtension(
                "mlmetrics._C",
                sources,
                define_macros=define_macros,
                extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "--use_fast_math",
                                                          "-DMLMETRICS_WITH_CUDA"]},
                py_limited_api=True,
            )
        ]
    return [CppExtension("mlmetrics._C", sources, define_macros=define_macros,
                         extra_compile_args={"cxx": cxx}, py_limited_api=True)]


def _build_ext():
    from torch.utils.cpp_extension import BuildExtension

    return BuildExtension.with_options(use_ninja=True)


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": _build_ext()},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
