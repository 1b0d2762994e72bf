//! Module records: the executable and libc at start, and a library loaded
//! later with `dlopen` (the writer rescans when the loader's count changes).

use memscope_core::frame::{Deframer, FrameEvent};
use memscope_core::wire::{Delta, Record, Records};

#[global_allocator]
static GLOBAL: memscope_std::MemScope = memscope_std::MemScope::system();

/// A glibc library that programs rarely load on their own.
const LATE: &std::ffi::CStr = c"libresolv.so.2";

#[test]
fn modules_are_recorded_including_a_library_loaded_later() {
    let path = std::env::temp_dir().join(format!("memscope-modules-{}.bin", std::process::id()));
    let rec = memscope_std::start(memscope_std::Config::new(&path).stacks(0)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    // SAFETY: loading a system library by name; it stays loaded.
    let handle = unsafe { libc::dlopen(LATE.as_ptr(), libc::RTLD_NOW) };
    // The writer checks the loader's count every 50 cycles of 2 ms.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let v: Vec<u8> = vec![1; 100];
    drop(v);
    rec.finish().unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let mut buf = vec![0u8; 1 << 20];
    let mut d = Deframer::new(&mut buf);
    let mut modules = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (n, ev) = d.push(rest);
        rest = &rest[n..];
        if let Some(FrameEvent::Frame {
            stream: 0, records, ..
        }) = ev
        {
            let mut delta = Delta::default();
            for r in Records::new(records, &mut delta) {
                if let Record::Module(m) = r.unwrap() {
                    modules.push((m.path.to_string(), m.base, m.size, m.build_id.to_vec()));
                }
            }
        }
    }
    let exe = std::env::current_exe().unwrap().display().to_string();
    let main = modules
        .iter()
        .find(|m| m.0 == exe)
        .expect("the executable's module record");
    assert!(main.2 > 0);
    let code = modules_are_recorded_including_a_library_loaded_later as *const () as u64;
    assert!(
        modules.iter().any(|m| (m.1..m.1 + m.2).contains(&code)),
        "a module spans our own code"
    );
    assert!(
        modules
            .iter()
            .any(|m| m.0.contains("libc.so") && m.3.len() >= 8),
        "libc with a build id"
    );
    if handle.is_null() {
        eprintln!("note: {LATE:?} is not installed here; the dlopen part was not checked");
    } else {
        assert!(
            modules.iter().any(|m| m.0.contains("libresolv")),
            "the library loaded after the start: {modules:?}"
        );
    }
}
