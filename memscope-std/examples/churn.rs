//! The churn workload under `MemScope`. Without `MEMSCOPE_OUT` it measures
//! live statistics only; with it, the full event stream (`MEMSCOPE_STACKS=0`
//! for none). Prints the elapsed time and the process's allocator totals.
include!("churn_workload.inc");

#[global_allocator]
static GLOBAL: memscope_std::MemScope = memscope_std::MemScope::system();

fn main() {
    run_churn("memscope");
    let s = memscope_std::stats();
    println!(
        "events={} lost={}",
        s.allocs + s.deallocs + s.reallocs,
        s.lost
    );
}
