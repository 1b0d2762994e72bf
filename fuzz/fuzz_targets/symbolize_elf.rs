//! memscope-decode's symbolizer on an arbitrary file given as the ELF: the
//! build-id and segment reading (`object`), addr2line's DWARF and symbol
//! table lookups, demangling and the allocator-frame trimming over whatever
//! names come back.
//!
//! The file is what `--elf` names or what a trace's module map points at
//! (after its build id matched), so it is input like the trace itself.
//!
//! Input: 16 control bytes (a module base and an address step, little
//! endian), then the file's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memscope_decode::records::{ModuleInfo, Session};
use memscope_decode::symbolize::{self, first_user_frame, Options, Symbolizer};
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let (ctl, elf) = data.split_at(16);
    let base = u64::from_le_bytes(ctl[..8].try_into().unwrap());
    let step = u64::from_le_bytes(ctl[8..].try_into().unwrap()) | 1;
    let path = temp_file(elf);

    // As `--elf` for a firmware trace (no module map): the file covers every address.
    let opts = Options {
        elf: Some(path.clone()),
        debug_dirs: Vec::new(),
    };
    if let Ok(mut sym) = Symbolizer::new(&Session::default(), &opts) {
        resolve_some(&mut sym, 0, step);
    }

    // As a module of a host trace recorded without build id: mapped at
    // `base`, addresses biased by its first segment.
    let mut session = Session::default();
    session.modules.push(ModuleInfo {
        base,
        size: u64::MAX - base,
        path: path.display().to_string(),
        build_id: Vec::new(),
    });
    if let Ok(mut sym) = Symbolizer::new(&session, &Options::default()) {
        resolve_some(&mut sym, base, step);
    }
});

fn resolve_some(sym: &mut Symbolizer, base: u64, step: u64) {
    let addrs: Vec<u64> = (0..64u64)
        .map(|i| base.wrapping_add(i.wrapping_mul(step)))
        .collect();
    let frames = sym.stack(&addrs);
    let first = first_user_frame(&frames);
    assert!(frames.is_empty() || first < frames.len());
    for f in &frames {
        if let Some(name) = &f.function {
            let _ = symbolize::is_allocator_frame(name);
            let _ = symbolize::plain_name(name);
            let _ = symbolize::demangle(name);
        }
        let _ = symbolize::is_std_frame(f);
    }
}

/// One file per fuzzing process, rewritten each run.
fn temp_file(bytes: &[u8]) -> PathBuf {
    let dir = std::env::var_os("MEMSCOPE_FUZZ_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("memscope-fuzz-elf-{}", std::process::id()));
    std::fs::write(&path, bytes).expect("temporary file");
    path
}
