"""What this CPU has, read from Linux's /proc/cpuinfo: the one place that knows.

The instruction-set flags that matter for inference: VNNI (AVX-512 or AVX) and AMX-INT8 make INT8 dot
products single instructions; AVX-512 BF16 and AMX-BF16 give BF16 ones. They say what a CPU CAN do,
not how much faster a variant runs on it: that depends on the model, the cores and the runtime too,
and a flag table once promised INT8 ~1.9x on an AVX2 CPU where it measured 1.1x. So this module
states facts only; speeds come from measurement on the machine itself (runtime/model/speed_record.py,
`bcdeploy bench cpu`). `infer` prints the facts at start and `bench.sysinfo` records them beside every
benchmark. Torch- and numpy-free: it runs at every `infer` start.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

# Names as /proc/cpuinfo spells them: AVX2 (baseline), AVX-512 (FP32 width), VNNI (INT8 dot
# products), AVX-512 BF16 and AMX (BF16/INT8 tiles).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
_INT8_KERNELS = {"amx_int8": "AMX-INT8", "avx512_vnni": "VNNI", "avx_vnni": "VNNI"}  # best first
_BF16_KERNELS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX-512 BF16"}


def read_cpuinfo() -> str:
    """/proc/cpuinfo's text; empty where the platform has none (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return ""


def cpu_model(cpuinfo: str | None = None) -> str:
    for line in (read_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags(cpuinfo: str | None = None) -> dict[str, bool] | None:
    """{flag: present} for CPU_FLAGS, from the first processor's `flags` line; None where the
    platform does not say (no /proc/cpuinfo, no flags line), which is not the same as 'absent'."""
    for line in (read_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return {flag: flag in present for flag in CPU_FLAGS}
    return None


def flags_line(flags: dict[str, bool] | None) -> str:
    if flags is None:
        return "CPU flags unknown"
    have = [f for f, on in flags.items() if on]
    return "CPU flags: " + (" ".join(have) if have else "none of " + " ".join(CPU_FLAGS))


@dataclass(frozen=True)
class CpuAdvice:
    """Why INT8 / BF16 pays on this CPU (the feature's name), or None where it does not or is unknown."""

    int8: str | None = None  # "AMX-INT8", "VNNI" or "AVX2" (INT8 through AVX2, no dot-product instruction)
    bf16: str | None = None  # "AMX-BF16" or "AVX-512 BF16"
    known: bool = True  # False: the platform gave no flags, so nothing is claimed

    def text(self) -> str:
        if not self.known:
            return "no advice (CPU flags unknown)"
        parts = []
        if self.int8 in ("AMX-INT8", "VNNI"):
            parts.append(f"INT8 dot-product instructions ({self.int8})")
        elif self.int8:
            parts.append("no INT8 dot-product instructions (AVX2 only)")
        parts.append(f"BF16 instructions ({self.bf16})" if self.bf16 else "no BF16 instructions")
        if not self.int8 and not self.bf16:
            return "no AVX2, no INT8 or BF16 instructions"
        return ", ".join(parts) + "; speeds are measured, not read from flags (bcdeploy bench cpu)"


def advise(flags: dict[str, bool] | None) -> CpuAdvice:
    """Which precision pays on a CPU with these flags (cpu_flags' result)."""
    if flags is None:
        return CpuAdvice(known=False)
    int8 = next((name for flag, name in _INT8_KERNELS.items() if flags.get(flag)), None)
    if int8 is None and flags.get("avx2"):
        int8 = "AVX2"
    bf16 = next((name for flag, name in _BF16_KERNELS.items() if flags.get(flag)), None)
    return CpuAdvice(int8=int8, bf16=bf16)


def cpu_line(cpuinfo: str | None = None) -> str:
    """`cpu: MODEL, N cores, flags ...; advice` — one line for a command's stderr."""
    text = read_cpuinfo() if cpuinfo is None else cpuinfo
    flags = cpu_flags(text)
    have = "flags unknown" if flags is None else "flags " + (" ".join(f for f, on in flags.items() if on) or "none")
    return f"cpu: {cpu_model(text)}, {os.cpu_count()} cores, {have}; {advise(flags).text()}"
