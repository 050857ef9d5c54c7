"""Azure VM sizes an image template's build may ask for (vmProfile.vmSize), and what each gives it.

Azure Image Builder customizes in a build VM of `vmProfile.vmSize` (Standard_D1_v2 when the
template names none). Galley customizes in a sandbox on the server instead, and the size sets
that sandbox's limits:

    memory      the size's memory (no swap); past it the kernel's OOM killer kills, in the
                sandbox only, and the build fails naming the limit
    CPU         the size's vCPUs (the caller caps them at the server's own CPUs)
    processes   2048 + 1024 per vCPU, threads included, but at most 2 per MiB of memory (so that
                a fork bomb meets this limit before the memory one); reaching it fails the build

Only sizes in the table below are accepted (a template naming another is refused when it is
submitted): the common general-purpose (A v2, B, D v2 to v5), memory-optimized (E v3 to v5) and
compute-optimized (F v2) sizes of up to 16 vCPUs. Names are matched without regard to case.
Plain data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_VM_SIZE = "Standard_D1_v2"  # Image Builder's default build VM size
PIDS_BASE = 2048
PIDS_PER_VCPU = 1024
PIDS_PER_MIB = 2
MIB = 1024 * 1024


@dataclass(frozen=True)
class VmSize:
    name: str           # as Azure spells it
    vcpus: int
    memory_mib: int

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB

    @property
    def pids(self) -> int:
        """Processes and threads a build of this size may have at once."""
        return min(PIDS_BASE + PIDS_PER_VCPU * self.vcpus, PIDS_PER_MIB * self.memory_mib)

    def describe(self) -> str:
        return f"{self.name} ({self.vcpus} vCPU{'s' if self.vcpus != 1 else ''}, {format_memory(self.memory_mib)})"


class UnknownVmSize(ValueError):
    """A vmSize that is not in the table."""


def _family(pattern: str, memory_per_vcpu_mib: int, vcpus: tuple[int, ...]) -> list[tuple[str, int, int]]:
    """`pattern` with {n} for the vCPU count, e.g. "Standard_D{n}s_v3"."""
    return [(pattern.format(n=n), n, n * memory_per_vcpu_mib) for n in vcpus]


_GIB = 1024


def _table() -> list[tuple[str, int, int]]:
    table = [
        # B-series (burstable): memory does not follow the vCPU count
        ("Standard_B1ls", 1, 512), ("Standard_B1s", 1, 1 * _GIB), ("Standard_B1ms", 1, 2 * _GIB),
        ("Standard_B2s", 2, 4 * _GIB), ("Standard_B2ms", 2, 8 * _GIB), ("Standard_B4ms", 4, 16 * _GIB),
        ("Standard_B8ms", 8, 32 * _GIB), ("Standard_B12ms", 12, 48 * _GIB), ("Standard_B16ms", 16, 64 * _GIB),
        *_family("Standard_A{n}_v2", 2 * _GIB, (1, 2, 4, 8)),
        *_family("Standard_A{n}m_v2", 8 * _GIB, (2, 4, 8)),
        *_family("Standard_F{n}s_v2", 2 * _GIB, (2, 4, 8, 16)),
    ]
    # D v2 and DS v2: 3.5 GiB per vCPU, numbered 1 to 5 for 1 to 16 vCPUs
    for number, vcpus in ((1, 1), (2, 2), (3, 4), (4, 8), (5, 16)):
        table += [(f"Standard_D{number}_v2", vcpus, vcpus * 3584), (f"Standard_DS{number}_v2", vcpus, vcpus * 3584)]
    # D v3 to v5: 4 GiB per vCPU; E v3 to v5: 8 GiB per vCPU
    for letter, per_vcpu in (("D", 4 * _GIB), ("E", 8 * _GIB)):
        for suffix in ("_v3", "s_v3", "_v4", "s_v4", "d_v4", "ds_v4", "as_v4",
                       "_v5", "s_v5", "d_v5", "ds_v5", "as_v5", "ads_v5"):
            table += _family(f"Standard_{letter}{{n}}{suffix}", per_vcpu, (2, 4, 8, 16))
    return table


SIZES: dict[str, VmSize] = {name.lower(): VmSize(name, vcpus, memory) for name, vcpus, memory in _table()}
EXAMPLES = ("Standard_B1s", "Standard_B2s", "Standard_D1_v2", "Standard_D2s_v3", "Standard_D4s_v5",
            "Standard_E4s_v5", "Standard_F8s_v2")


def vm_size(name: str | None) -> VmSize:
    """The size called `name` (the default size when None or empty); UnknownVmSize otherwise."""
    if name is None or not name.strip():
        name = DEFAULT_VM_SIZE
    found = SIZES.get(name.strip().lower())
    if found is None:
        raise UnknownVmSize(
            f"vmSize '{name}' is not a VM size Galley can build with: use one of the A v2, B, D v2 to v5, "
            f"E v3 to v5 or F v2 sizes of up to 16 vCPUs, for example {', '.join(EXAMPLES)} "
            f"(default {DEFAULT_VM_SIZE}).")
    return found


def format_memory(mib: int) -> str:
    if mib < _GIB:
        return f"{mib} MiB"
    gib = mib / _GIB
    return f"{gib:g} GiB" if gib == round(gib, 1) else f"{gib:.2f} GiB"
