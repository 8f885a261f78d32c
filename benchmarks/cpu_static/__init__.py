"""Static analysis of the CPU kernel's compiled code (x86-64), for CPUs this machine is not.

Two questions, answered from the built extension's machine code without running it:

* hazards.py: does any function hold an instruction that is slow on one x86 vendor and that an
  equivalent sequence avoids on all of them? AMD Zen 4 / Zen 5 run compress to memory
  (``vcompressps``/``vpcompressd`` with a memory destination) as microcode, give the zero-masked
  register form (``{z}``) a false dependency on its destination register, and run gathers and
  scatters far slower than loads and stores. The kernel's rule: none of them anywhere in the
  extension (a CI test, tests/benchmarks/test_cpu_static.py).
* loops.py: the hot loop of each row helper, through ``llvm-mca`` scheduling models of Zen 4,
  Zen 5 and Intel cores (LLVM >= 17 has ``-mcpu=znver4``): cycles per 16 floats, and that as a
  multiple of the read (``x.amax(1)``'s loop: one ``vmaxps`` per 16 floats) on the same core. The
  models miss what the hazard rule covers (they cost compress to memory as a plain store) and
  know nothing of memory bandwidth: a helper below ~1x the read hides under a streamed read.

``python -m benchmarks.cpu_static [--so PATH] [--md FILE] [--json FILE]`` prints both tables.
"""
