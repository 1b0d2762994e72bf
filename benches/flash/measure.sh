#!/usr/bin/env bash
# Flash cost of memscope-core's record path on a Cortex-M4F
# (thumbv7em-none-eabihf, the figure of issue 2) and a Cortex-M0
# (thumbv6m-none-eabi: no CAS, portable-atomic's critical-section counters).
#
# Builds the same tiny firmware four ways (src/bin/*.rs) at opt-level "s" and
# "z" (LTO, panic=abort) and prints .text + .rodata of each, and the difference
# to the untracked image. Needs: rustup targets thumbv7em-none-eabihf and
# thumbv6m-none-eabi, and llvm-size (Debian: llvm) or rust-size
# (cargo-binutils) on PATH. Usage: ./measure.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
target_dir="${CARGO_TARGET_DIR:-target}"
size_tool="$(command -v llvm-size || command -v rust-size || true)"
if [ -z "$size_tool" ]; then
    echo "measure.sh: needs llvm-size (apt-get install llvm) or rust-size (cargo install cargo-binutils)" >&2
    exit 1
fi
bins="none stats_only stream stream_drain"
targets="${*:-thumbv7em-none-eabihf thumbv6m-none-eabi}"
for target in $targets; do
for profile in release release-z; do
    cargo build --quiet --profile "$profile" --bins --target "$target"
    dir="$target_dir/$target/$profile"
    echo "$target, profile $profile:"
    printf '  %-14s %7s %7s %7s %9s\n' image .text .rodata total "vs none"
    base=""
    for b in $bins; do
        read -r text rodata < <("$size_tool" -A "$dir/$b" | awk '$1==".text"{t=$2} $1==".rodata"{r=$2} END{print t+0, r+0}')
        total=$((text + rodata))
        [ -z "$base" ] && base=$total
        printf '  %-14s %7d %7d %7d %+9d\n' "$b" "$text" "$rodata" "$total" $((total - base))
    done
done
done
# What the stream image adds over none, symbol by symbol (release profile):
# the code to look at first when the record path's flash cost must come down.
if command -v llvm-nm >/dev/null && command -v python3 >/dev/null; then
    for target in $targets; do
        dir="$target_dir/$target/release"
        echo "$target, release: stream minus none by symbol (llvm-nm -S, changes over 40 B):"
        python3 - "$dir/none" "$dir/stream" <<'PY'
import collections, re, subprocess, sys

def demangle(sym):
    """Legacy Rust mangling (_ZN<len><part>...E) to a::b::c, without the hash."""
    if not sym.startswith("_ZN"):
        return sym
    parts, i = [], 3
    while i < len(sym) and sym[i].isdigit():
        j = i
        while sym[j].isdigit():
            j += 1
        n = int(sym[i:j])
        parts.append(sym[j:j + n])
        i = j + n
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    name = "::".join(parts)
    for code, text in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$C$", ","),
                       ("$RF$", "&"), ("..", "::"), ("$u7b$", "{"), ("$u7d$", "}")):
        name = name.replace(code, text)
    return name

def symbols(elf):
    out = subprocess.run(["llvm-nm", "-S", "--defined-only", elf],
                         capture_output=True, text=True, check=True).stdout
    sizes = collections.Counter()
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4 and p[2] in "tTrR":
            sizes[demangle(p[3])] += int(p[1], 16)
    return sizes

none, stream = symbols(sys.argv[1]), symbols(sys.argv[2])
diff = sorted(((stream[k] - none[k], k) for k in set(none) | set(stream)), reverse=True)
for d, k in diff:
    if abs(d) > 40:
        print(f"  {d:+6d}  {k}")
print(f"  {sum(d for d, _ in diff):+6d}  all symbols")
PY
    done
fi
# Whether the record path keeps any panic branch (it must never take one).
if command -v llvm-nm >/dev/null; then
    for target in $targets; do
        echo "panic symbols linked into the $target stream image (release):" \
            $(llvm-nm -C "$target_dir/$target/release/stream" | awk '/panic|index_fail/ {print $3}')
    done
fi
