//! The loaded modules (the executable and its shared libraries) with their
//! addresses and GNU build ids, so `memscope-decode` can symbolize the return
//! addresses of call stacks offline.
//!
//! A [`Module`](memscope_core::wire::Module) record's `base` is the address
//! of the module's lowest `PT_LOAD` segment (load bias + that segment's
//! `p_vaddr`) and `size` spans up to the end of its highest one. A reader maps
//! a return address `a` inside `[base, base + size)` to the file's virtual
//! address `a - base + lowest_load_vaddr` (0 for PIE executables and shared
//! libraries, so simply `a - base`). The writer scans at start and again
//! whenever the loader's count of loaded objects changes (`dlopen`).

use std::ffi::CStr;

/// One loaded object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ModuleInfo {
    pub base: u64,
    pub size: u64,
    pub path: String,
    pub build_id: Vec<u8>,
    /// Executable segments, `[start, end)` in memory.
    pub exec: Vec<(u64, u64)>,
}

/// Every loaded object now. May allocate (the caller is memscope's own code).
pub(crate) fn scan() -> Vec<ModuleInfo> {
    let mut out: Vec<ModuleInfo> = Vec::new();
    #[cfg(target_os = "linux")]
    {
        unsafe extern "C" fn each(
            info: *mut libc::dl_phdr_info,
            _size: libc::size_t,
            data: *mut libc::c_void,
        ) -> libc::c_int {
            // SAFETY: `data` is the `&mut Vec` passed below; `info` and the
            // program headers it points to are valid during the callback.
            unsafe {
                let out = &mut *(data as *mut Vec<ModuleInfo>);
                if let Some(m) = module_of(&*info) {
                    out.push(m);
                }
            }
            0
        }
        // SAFETY: the callback only reads what the loader lends it and writes
        // to the vector, which outlives the call.
        unsafe { libc::dl_iterate_phdr(Some(each), (&mut out as *mut Vec<ModuleInfo>).cast()) };
        if let Some(main) = out.first_mut() {
            if main.path.is_empty() {
                main.path = std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
            }
        }
    }
    out
}

/// How many objects the loader has ever loaded (glibc's `dlpi_adds`): when it
/// changes, the writer scans again.
pub(crate) fn loads() -> u64 {
    let mut adds: u64 = 0;
    #[cfg(target_os = "linux")]
    {
        unsafe extern "C" fn first(
            info: *mut libc::dl_phdr_info,
            size: libc::size_t,
            data: *mut libc::c_void,
        ) -> libc::c_int {
            // SAFETY: as in `scan`; `dlpi_adds` is present when the loader says
            // the struct is large enough to hold it.
            unsafe {
                let end = core::mem::offset_of!(libc::dl_phdr_info, dlpi_adds)
                    + core::mem::size_of::<libc::c_ulonglong>();
                if size >= end {
                    *(data as *mut u64) = (*info).dlpi_adds;
                }
            }
            1 // stop after the first object: the counter is global
        }
        // SAFETY: as in `scan`.
        unsafe { libc::dl_iterate_phdr(Some(first), (&mut adds as *mut u64).cast()) };
    }
    adds
}

#[cfg(target_os = "linux")]
fn module_of(info: &libc::dl_phdr_info) -> Option<ModuleInfo> {
    let bias = info.dlpi_addr;
    // SAFETY: the loader gives `dlpi_phnum` headers at `dlpi_phdr`.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let mut lo = u64::MAX;
    let mut hi = 0u64;
    let mut build_id = Vec::new();
    let mut exec = Vec::new();
    for ph in phdrs {
        if ph.p_type == libc::PT_LOAD {
            lo = lo.min(ph.p_vaddr);
            hi = hi.max(ph.p_vaddr + ph.p_memsz);
            if ph.p_flags & libc::PF_X != 0 {
                let start = bias.wrapping_add(ph.p_vaddr);
                exec.push((start, start + ph.p_memsz));
            }
        } else if ph.p_type == libc::PT_NOTE && build_id.is_empty() {
            // SAFETY: a PT_NOTE segment lies inside a loaded segment, mapped
            // readable at `bias + p_vaddr` for `p_memsz` bytes.
            let notes = unsafe {
                std::slice::from_raw_parts((bias + ph.p_vaddr) as *const u8, ph.p_memsz as usize)
            };
            build_id = gnu_build_id(notes).unwrap_or_default();
        }
    }
    if lo > hi {
        return None;
    }
    let path = if info.dlpi_name.is_null() {
        String::new()
    } else {
        // SAFETY: a NUL-terminated string owned by the loader.
        unsafe { CStr::from_ptr(info.dlpi_name) }
            .to_string_lossy()
            .into_owned()
    };
    Some(ModuleInfo {
        base: bias.wrapping_add(lo),
        size: hi - lo,
        path,
        build_id,
        exec,
    })
}

/// The descriptor of the `NT_GNU_BUILD_ID` note in `notes`, if any.
fn gnu_build_id(mut notes: &[u8]) -> Option<Vec<u8>> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let align4 = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let word = |i: usize| u32::from_ne_bytes(notes[i..i + 4].try_into().unwrap());
        let (namesz, descsz, kind) = (word(0) as usize, word(4) as usize, word(8));
        let name_end = 12 + align4(namesz);
        let desc_end = name_end.checked_add(align4(descsz))?;
        if desc_end > notes.len() {
            return None;
        }
        if kind == NT_GNU_BUILD_ID && &notes[12..12 + namesz] == b"GNU\0" {
            return Some(notes[name_end..name_end + descsz].to_vec());
        }
        notes = &notes[desc_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_executable_and_libc() {
        let m = scan();
        assert!(!m.is_empty());
        assert!(!m[0].path.is_empty(), "main program gets its path");
        let me = scan as *const () as usize as u64;
        assert!(
            m.iter().any(|x| (x.base..x.base + x.size).contains(&me)),
            "some module holds our own code"
        );
        assert!(m.iter().any(|x| x.path.contains("libc")));
        assert!(loads() >= m.len() as u64);
    }

    #[test]
    fn parses_a_build_id_note() {
        let mut n = Vec::new();
        for w in [4u32, 3, 1] {
            n.extend_from_slice(&w.to_ne_bytes());
        }
        n.extend_from_slice(b"XYZ\0abc\0"); // another note first
        for w in [4u32, 5, 3] {
            n.extend_from_slice(&w.to_ne_bytes());
        }
        n.extend_from_slice(b"GNU\0\x01\x02\x03\x04\x05\0\0\0");
        assert_eq!(gnu_build_id(&n), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(gnu_build_id(&n[..20]), None);
    }
}
