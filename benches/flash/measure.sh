#!/usr/bin/env bash
# Flash cost of memscope-core's record path on thumbv7em-none-eabihf.
#
# Builds the same tiny firmware four ways (src/bin/*.rs) at opt-level "s" and
# "z" (LTO, panic=abort) and prints .text + .rodata of each, and the difference
# to the untracked image. Needs: rustup target thumbv7em-none-eabihf, and
# llvm-size (Debian: llvm) or rust-size (cargo-binutils) on PATH.
set -euo pipefail
cd "$(dirname "$0")"
target_dir="${CARGO_TARGET_DIR:-target}"
size_tool="$(command -v llvm-size || command -v rust-size || true)"
if [ -z "$size_tool" ]; then
    echo "measure.sh: needs llvm-size (apt-get install llvm) or rust-size (cargo install cargo-binutils)" >&2
    exit 1
fi
bins="none stats_only stream stream_drain"
for profile in release release-z; do
    cargo build --quiet --profile "$profile" --bins --target thumbv7em-none-eabihf
    dir="$target_dir/thumbv7em-none-eabihf/$profile"
    echo "profile $profile:"
    printf '  %-14s %7s %7s %7s %9s\n' image .text .rodata total "vs none"
    base=""
    for b in $bins; do
        read -r text rodata < <("$size_tool" -A "$dir/$b" | awk '$1==".text"{t=$2} $1==".rodata"{r=$2} END{print t+0, r+0}')
        total=$((text + rodata))
        [ -z "$base" ] && base=$total
        printf '  %-14s %7d %7d %7d %+9d\n' "$b" "$text" "$rodata" "$total" $((total - base))
    done
done
# Whether the record path keeps any panic branch (it must never take one).
if command -v llvm-nm >/dev/null; then
    n=$(llvm-nm -C "$target_dir/thumbv7em-none-eabihf/release/stream" | grep -c -i panic || true)
    echo "panic-related symbols in the stream image (release): $n"
fi
