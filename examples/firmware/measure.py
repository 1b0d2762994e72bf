#!/usr/bin/env python3
"""What memscope costs on the QEMU Cortex-M4 and Cortex-M0 firmware.

    python3 examples/firmware/measure.py            # sizes and instructions
    python3 examples/firmware/measure.py --no-qemu  # sizes only

Builds each firmware three ways (bare LlffHeap; memscope tracking; tracking
with r7 call sites) and reports

- flash: .text + .rodata (and .data's load image), RAM: .data + .bss + .uninit,
  and what memscope adds to each over the bare build. The bare build has no
  memscope RTT buffer, so the RAM delta is that buffer plus memscope's state.
- instructions per heap event on the target, counted by QEMU (one log line per
  executed instruction with -singlestep -d exec,nochain): the workload runs
  once and twice, and the per-event cost is
  ((tracked twice - tracked once) - (bare twice - bare once)) / events per run,
  which cancels one-time work (boot, header, printing) and the inner
  allocator's own cost. QEMU does not model DWT CYCCNT, so the Cortex-M4
  figure excludes the counter read a real core does (a load and a compare).

RTT bytes per event come from the end-to-end test, which decodes the real
stream drained over GDB:

    cargo test -p memscope-tests --test qemu_firmware -- --nocapture

Needs cargo with the thumbv7em-none-eabihf and thumbv6m-none-eabi targets and,
for instruction counts, qemu-system-arm (7.x: the -singlestep option).
"""

import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

FIRMWARE = [
    # package, target, machine, cpu
    ("qemu-m4", "thumbv7em-none-eabihf", "mps2-an386", "cortex-m4"),
    ("qemu-m0", "thumbv6m-none-eabi", "microbit", "cortex-m0"),
]

VARIANTS = [
    ("bare", ["--no-default-features"]),
    ("tracking", ["--no-default-features", "--features", "tracking"]),
    ("tracking+stacks", []),
]


def sections(path):
    """Section name -> size of a 32-bit little-endian ELF (allocated sections only)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 1:
        raise SystemExit(f"{path}: not a 32-bit ELF")
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    headers = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_off = headers[shstrndx][4]
    out = {}
    for name_off, _type, flags, _addr, _off, size, *_ in headers:
        if not flags & 0x2:  # SHF_ALLOC
            continue
        end = data.index(b"\0", strtab_off + name_off)
        out[data[strtab_off + name_off:end].decode()] = size
    return out


def build(target_dir, package, target, features, env_extra=None):
    env = dict(os.environ, CARGO_TARGET_DIR=target_dir)
    env.pop("RUSTFLAGS", None)
    env.update(env_extra or {})
    cmd = ["cargo", "build", "--release", "-q", "-p", package, "--target", target] + features
    subprocess.run(cmd, cwd=HERE, env=env, check=True)
    return os.path.join(target_dir, target, "release", package)


def count_instructions(elf, machine, cpu):
    """Instructions QEMU executes from reset to the semihosting exit."""
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "exec.log")
        cmd = [
            "qemu-system-arm", "-machine", machine, "-cpu", cpu, "-nographic",
            "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native",
            "-singlestep", "-d", "exec,nochain", "-D", log, "-kernel", elf,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True).stdout
        n = 0
        with open(log, "rb") as f:
            for line in f:
                if line.startswith(b"Trace "):
                    n += 1
        stats = {}
        for line in out.splitlines():
            if line.startswith("memscope "):
                stats = dict(kv.split("=") for kv in line.split()[1:])
        return n, stats


def main():
    qemu = "--no-qemu" not in sys.argv and shutil.which("qemu-system-arm") is not None
    target_dir = os.environ.get("MEMSCOPE_MEASURE_TARGET_DIR") or os.path.join(HERE, "target", "measure")
    for package, target, machine, cpu in FIRMWARE:
        print(f"== {package} ({target})")
        sizes = {}
        for name, features in VARIANTS:
            elf = build(target_dir, package, target, features)
            s = sections(elf)
            flash = s.get(".text", 0) + s.get(".rodata", 0)
            ram = s.get(".data", 0) + s.get(".bss", 0) + s.get(".uninit", 0)
            sizes[name] = (flash, s.get(".data", 0), ram)
        bare_flash, _, bare_ram = sizes["bare"]
        for name, (flash, data, ram) in sizes.items():
            extra = "" if name == "bare" else f"  (+{flash - bare_flash} B flash, +{ram - bare_ram} B RAM)"
            print(f"  {name:16} .text+.rodata {flash:6} B  .data {data:4} B  RAM {ram:6} B{extra}")
        if not qemu:
            print("  instructions: skipped (no qemu-system-arm or --no-qemu)")
            continue
        counts = {}
        for name, features in VARIANTS:
            for runs in (1, 2):
                elf = build(target_dir, package, target, features,
                            {"MEMSCOPE_WORKLOAD_RUNS": str(runs), "MEMSCOPE_NO_WAIT": "1"})
                counts[(name, runs)] = count_instructions(elf, machine, cpu)
        _, once = counts[("tracking", 1)]
        events = sum(int(once[k]) for k in ("allocs", "deallocs", "reallocs"))
        bare_delta = counts[("bare", 2)][0] - counts[("bare", 1)][0]
        for name in ("tracking", "tracking+stacks"):
            delta = counts[(name, 2)][0] - counts[(name, 1)][0]
            per_event = (delta - bare_delta) / events
            print(f"  {name:16} {per_event:7.1f} instructions per heap event on top of LlffHeap "
                  f"({events} events per workload run)")
        # Restore the ordinary builds for `cargo run`.
        build(target_dir, package, target, [])


if __name__ == "__main__":
    main()
