//! ns per alloc/free pair under `MemScope`: statistics only without
//! `MEMSCOPE_OUT`, the full stream with it (`MEMSCOPE_STACKS=0` for none).
include!("pair_cost.inc");

#[global_allocator]
static GLOBAL: memscope_std::MemScope = memscope_std::MemScope::system();

fn main() {
    let mode = match std::env::var("MEMSCOPE_OUT") {
        Ok(_) => match std::env::var("MEMSCOPE_STACKS").as_deref() {
            Ok("0") => "stream",
            _ => "stream+stacks",
        },
        Err(_) => "stats-only",
    };
    run_pairs(mode);
    let s = memscope_std::stats();
    println!(
        "events={} lost={}",
        s.allocs + s.deallocs + s.reallocs,
        s.lost
    );
}
