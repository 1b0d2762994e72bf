//! One child process, measured from outside: wall time around spawn..reap,
//! and the kernel's own accounting from `wait4` (CPU time of all its threads,
//! peak RSS).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one finished run cost.
#[derive(Clone, Debug)]
pub struct Measured {
    pub wall: Duration,
    /// User + system CPU time of the child (all its threads).
    pub cpu: Duration,
    /// Peak resident set size, bytes (ru_maxrss).
    pub max_rss: u64,
    pub success: bool,
    pub status: i32,
    /// The end of its stderr, for failures.
    pub stderr_tail: String,
}

#[derive(Debug)]
pub enum Outcome {
    Done(Measured),
    TimedOut(Duration),
    SpawnFailed(String),
}

/// Runs `cmd` to completion (stdout discarded unless the caller set it,
/// stderr kept), killing it after `timeout`.
pub fn run_measured(cmd: &mut Command, timeout: Duration) -> Outcome {
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::SpawnFailed(e.to_string()),
    };
    // Drain stderr on a thread so a chatty child never blocks on a full pipe.
    let mut err = child.stderr.take().expect("piped above");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: all-zero is a valid rusage (plain integers).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own unreaped child; status and ru are valid
        // out-pointers. Reaping here means `child.wait()` is never called.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break;
        }
        if r < 0 {
            return Outcome::SpawnFailed(format!("wait4: {}", std::io::Error::last_os_error()));
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            // SAFETY: as above; blocking reap of the killed child.
            unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            let _ = reader.join();
            return Outcome::TimedOut(timeout);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let wall = start.elapsed();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let stderr = reader.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr);
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().rev().take(3).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    };
    let exited = libc::WIFEXITED(status);
    let code = if exited {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Outcome::Done(Measured {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        // Linux reports ru_maxrss in KiB.
        max_rss: ru.ru_maxrss as u64 * 1024,
        success: exited && code == 0,
        status: code,
        stderr_tail: tail,
    })
}
