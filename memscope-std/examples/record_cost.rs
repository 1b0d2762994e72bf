//! A fixed sequence of allocator calls for counting instructions per event
//! under callgrind (the machine's wall times are too noisy to decide small
//! changes by):
//!
//! ```text
//! valgrind --tool=callgrind --separate-threads=yes target/release/examples/record_cost
//! MEMSCOPE_OUT=/tmp/t.bin MEMSCOPE_STACKS=0 valgrind --tool=callgrind --separate-threads=yes target/release/examples/record_cost
//! ```
//!
//! The main thread's instructions with `MEMSCOPE_OUT` minus without, divided
//! by the events printed, is the record path's cost per event; the writer
//! thread's count divided by the events is the writer's. The calls come in
//! bursts of 20 000 events with a pause after each, so the writer drains the
//! ring in time even under valgrind and no event is lost (it prints `lost`:
//! check it is 0, lost events skip the encoder and flatter the figure).
//! The mix resembles the churn workload's: sizes 8 B to 4 KiB, a window of
//! 1000 live blocks replaced at random.
//!
//! Call stacks: build with `RUSTFLAGS="-C force-frame-pointers=yes"` (without
//! frame pointers the walk stops early and looks cheaper than it is) and run
//! without `MEMSCOPE_STACKS=0`. The main thread's instructions minus the
//! stackless run's, divided by the events, is what stacks add per event;
//! `callgrind_annotate --inclusive=yes` on `memscope_std::stacks::walk_frames`
//! divided by the events is the walk's share (about 19 instructions a frame
//! and 50 a walk), the rest is interning and the stack id in the record.

#[global_allocator]
static GLOBAL: memscope_std::MemScope = memscope_std::MemScope::system();

fn main() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut window: Vec<Option<Vec<u8>>> = (0..1000).map(|_| None).collect();
    for _ in 0..50 {
        for _ in 0..10_000 {
            let size = 8usize << (rnd() % 10);
            let slot = (rnd() % 1000) as usize;
            window[slot] = Some(std::hint::black_box(Vec::with_capacity(size)));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(window);
    let s = memscope_std::stats();
    println!(
        "events={} lost={}",
        s.allocs + s.deallocs + s.reallocs,
        s.lost
    );
}
