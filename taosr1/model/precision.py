"""Which floating-point type to compute in, from what the CPU can do.

bf16 is 3-5x faster than fp32 where the CPU has bf16 instructions (avx512_bf16, AMX) and tens of times *slower*
where it has not (plain AVX2 emulates it). So ``auto`` picks bf16 only on such CPUs (and on CUDA), and asking for
bf16 on a CPU without them works but warns, naming the flag that is missing.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Literal

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bf16(flags: frozenset[str] | None = None) -> bool:
    """True where the CPU computes bf16 natively."""
    return bool(set(BF16_FLAGS) & (cpu_flags() if flags is None else flags))


def resolve_dtype(requested: str, device: str = "cpu", flags: frozenset[str] | None = None) -> str:
    """``auto`` → bfloat16 on CUDA or a bf16-capable CPU, else float32; an explicit choice is kept (bf16 on a CPU
    without bf16 instructions warns)."""
    on_cpu = not device.startswith("cuda")
    if requested == "auto":
        return "bfloat16" if (not on_cpu or cpu_has_bf16(flags)) else "float32"
    if requested == "bfloat16" and on_cpu and not cpu_has_bf16(flags):
        warnings.warn("bfloat16 was asked for on a CPU without bf16 instructions (no avx512_bf16 or amx_bf16): "
                      "it runs emulated, often 10-80x slower than float32; use --dtype auto or float32",
                      RuntimeWarning, stacklevel=2)
    return requested
