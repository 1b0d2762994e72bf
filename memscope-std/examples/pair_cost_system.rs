//! ns per alloc/free pair on the system allocator (baseline for `pair_cost`).
include!("pair_cost.inc");

fn main() {
    run_pairs("system");
}
