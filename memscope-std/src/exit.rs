//! Making sure the trace ends properly however the process ends.
//!
//! - Returning from `main` and `std::process::exit` from any thread both run
//!   libc's `atexit` handlers: ours drains every thread (those still running
//!   included, at a consistent cut), writes every end record and closes the
//!   file. (glibc's `exit` runs the calling thread's thread-local destructors
//!   first, so that thread's stream is closed like any exited thread's.)
//! - A panic: a hook (installed by the writer thread; it runs the previous
//!   hook first, so the message prints as usual) flushes what every thread recorded so far; with
//!   `panic = "abort"` it ends the trace, since no `atexit` handler will run.
//! - `fork`: the child stops recording (see `in_forked_child`); the parent's
//!   trace is unaffected. A program that `exec`s right after (as
//!   `std::process::Command` does) is traced by its own `MEMSCOPE_OUT`, if set
//!   and if it uses memscope; give each process its own file name.
//! - Not covered: signals that kill the process (SIGKILL, an unhandled
//!   SIGSEGV or SIGINT): the file then ends with the last drained frames and
//!   no end records, which `memscope-decode` reports as incomplete.

use crate::session;
use std::sync::Once;

extern "C" fn at_exit() {
    if let Err(e) = session::finish() {
        eprintln!("memscope: finishing the trace failed: {e}");
    }
}

/// In a child created by `fork`, only the forking thread exists: no writer
/// thread, and the file descriptor is shared with the parent. The child stops
/// recording (keeping live statistics) and never writes to the parent's trace.
extern "C" fn in_forked_child() {
    session::forked();
}

pub(crate) fn install_atexit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers plain `extern "C"` functions; libc copies nothing.
        unsafe {
            libc::atexit(at_exit);
            #[cfg(unix)]
            libc::pthread_atfork(None, None, Some(in_forked_child));
        }
    });
}

/// Called on the writer thread when it starts (not inside an allocator call,
/// where the hook lock might be held).
pub(crate) fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if cfg!(panic = "abort") {
            // No atexit handler runs after an abort: end the trace here.
            let _ = session::finish();
        } else {
            session::flush();
        }
    }));
}
