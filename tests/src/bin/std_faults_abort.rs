//! A traced program that panics, for tests/std_faults.rs, which builds it a
//! second time with `panic = "abort"` (a small cargo project of its own, so
//! that memscope-std is compiled with that strategy too): no `atexit` handler
//! runs after the abort, so memscope's panic hook must end the trace itself.
//! Uses nothing but memscope-std, so it builds outside this workspace.
//!
//! A worker exits before the panic, another is still allocating during it.
//!
//! Usage: `std_faults_abort`

use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static GLOBAL: memscope_std::MemScope = memscope_std::MemScope::system();

fn churn(n: u64) -> u64 {
    (0..n).map(|i| black_box(Box::new([i; 4]))[0]).sum()
}

/// Waits until memscope's writer thread wrote the trace's first bytes: it
/// installs its panic hook before its first write, so the hook is in place.
fn wait_for_the_writer() {
    let out = std::env::var_os("MEMSCOPE_OUT").expect("MEMSCOPE_OUT");
    // Milliseconds normally; generous for a loaded machine, below the
    // test's two-minute watchdog so that this message is what it reports.
    let give_up = std::time::Instant::now() + Duration::from_secs(90);
    while std::fs::metadata(&out).map_or(0, |m| m.len()) == 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "memscope's writer thread wrote nothing to the trace in 90 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    let worker = std::thread::Builder::new()
        .name("worker".into())
        .spawn(|| churn(5000))
        .unwrap();
    black_box(worker.join().unwrap());
    let (started, wait) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("running".into())
        .spawn(move || {
            black_box(churn(10));
            started.send(()).unwrap();
            loop {
                black_box(churn(100));
            }
        })
        .unwrap();
    wait.recv().unwrap();
    black_box(churn(100));
    wait_for_the_writer();
    println!(
        "panic = {}",
        if cfg!(panic = "abort") {
            "abort"
        } else {
            "unwind"
        }
    );
    panic!("deliberate panic");
}
