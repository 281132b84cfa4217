"""The kernel levels CI runs the numeric tests under: torch's ATen CPU capability and numpy's SIMD dispatch.

  python .ci/kernel_levels.py env LEVEL       shell exports for LEVEL (best, avx2 or default)
  python .ci/kernel_levels.py describe LEVEL  one log line: the CPU and the kernels torch and numpy use now
  python .ci/kernel_levels.py same LEVEL      exit 0 when LEVEL runs the very kernels of best on this machine
                                              (a CPU without AVX-512 at avx2), so CI need not repeat it

best is the machine's own (nothing set); avx2 is torch's AVX2 kernels with numpy's dispatch cut to x86-64-v3
(what a CPU without AVX-512 runs); default is torch's scalar kernels with numpy at its compiled baseline.
Burn's kernels pick their own SIMD at run time; only a machine of another kind changes those.
"""

from __future__ import annotations

import platform
import shlex
import sys
from pathlib import Path

# numpy's dispatch targets above each level (numpy 2.x names; constraints.txt pins the minor version).
ABOVE = {"best": (), "avx2": ("X86_V4", "AVX512_ICL", "AVX512_SPR"), "default": None}
TORCH = {"best": None, "avx2": "avx2", "default": "default"}


def _numpy_disable(level: str) -> list[str]:
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    wanted = __cpu_dispatch__ if ABOVE[level] is None else ABOVE[level]
    # numpy refuses to disable a feature the machine lacks; those are off anyway.
    return [f for f in wanted if __cpu_features__.get(f)]


def env(level: str) -> str:
    lines = []
    if TORCH[level]:
        lines.append(f"export ATEN_CPU_CAPABILITY={TORCH[level]}")
    disable = _numpy_disable(level)
    if disable:
        lines.append(f"export NPY_DISABLE_CPU_FEATURES={shlex.quote(' '.join(disable))}")
    return "\n".join(lines)


def describe(level: str) -> str:
    import numpy as np
    import torch
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    cpu = "unknown CPU"
    flags: set[str] = set()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown CPU":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    has = ",".join(f for f in ("avx2", "fma", "avx512f") if f in flags) or platform.machine()
    simd = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)] or ["baseline only"]
    return (
        f"kernel level {level}: {cpu} ({has}); torch {torch.__version__} ATen {torch.backends.cpu.get_cpu_capability()};"
        f" numpy {np.__version__} SIMD {' '.join(simd)}"
    )


def same_as_best(level: str) -> bool:
    """True when LEVEL changes nothing here: torch's best capability is LEVEL's and numpy has nothing to cut."""
    import os

    import torch

    if os.environ.get("ATEN_CPU_CAPABILITY") or os.environ.get("NPY_DISABLE_CPU_FEATURES"):
        return False
    best = torch.backends.cpu.get_cpu_capability().lower()
    return TORCH[level] in (None, best) and not _numpy_disable(level)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("env", "describe", "same") or argv[1] not in TORCH:
        print(__doc__.strip().splitlines()[1], file=sys.stderr)
        return 2
    if argv[0] == "same":
        return 0 if same_as_best(argv[1]) else 1
    print(env(argv[1]) if argv[0] == "env" else describe(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
