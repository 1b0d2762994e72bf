//! Symbolization: return addresses to functions, files and lines, with
//! inline frames, via addr2line on the ELF given with `--elf` (always needed
//! for firmware) or on the modules the trace recorded (their files, checked by
//! build id, or debug files found by build id in the search paths).
//!
//! Names are demangled (Rust legacy and v0, and C++), and the allocator's own
//! frames — `alloc::`, `RawVec`, `__rust_alloc`, memscope's — are recognised
//! by [`is_allocator_frame`] so reports start each stack at the user's code.

use crate::error::Error;
use crate::records::Session;
use object::{Object, ObjectSegment};
use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};

/// One frame of a symbolized stack (an inlined call is a frame of its own).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FrameInfo {
    /// The return address, as recorded.
    pub addr: u64,
    /// Demangled function name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Source file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Source line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Inlined into the frame that follows.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub inlined: bool,
    /// Module file name and offset, when the address is in a recorded module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

/// Recorded modules looked at for symbols; the ones after are left as addresses.
pub const MAX_MODULES: usize = 1024;

/// Where to find debug information.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--elf`: the program's ELF (firmware, or a host executable).
    pub elf: Option<PathBuf>,
    /// `--debug-dir`: searched for `.build-id/xx/yyyy.debug` and by file name.
    pub debug_dirs: Vec<PathBuf>,
}

mod partial;

use std::sync::atomic::{AtomicBool, Ordering};

struct Module {
    base: u64,
    size: u64,
    /// Subtracted from a runtime address to get the file's address.
    bias: u64,
    name: String,
    /// The file its debug information is read from.
    path: PathBuf,
    loader: Option<Debug>,
    /// A failure to load it whole (see [`Symbolizer::want_stacks`]) was
    /// reported.
    failure_told: bool,
    thumb: bool,
}

/// A module's debug information.
enum Debug {
    /// The whole file, through addr2line's loader.
    Whole(Box<addr2line::Loader>),
    /// Compressed debug information, inflated and parsed as far as the
    /// addresses asked for need (see `partial`).
    Partial(Box<partial::Partial>),
}

impl Debug {
    fn load(path: &Path) -> Result<Self, String> {
        match partial::Partial::open(path)? {
            Some(p) => Ok(Debug::Partial(Box::new(p))),
            None => addr2line::Loader::new(path)
                .map(|l| Debug::Whole(Box::new(l)))
                .map_err(|e| e.to_string()),
        }
    }

    /// Readies `probes`; whether earlier answers may have changed.
    fn want(&mut self, probes: impl IntoIterator<Item = u64>) -> bool {
        match self {
            Debug::Whole(_) => false,
            Debug::Partial(p) => p.want(probes),
        }
    }

    fn frames(&mut self, probe: u64) -> Vec<partial::RawFrame> {
        match self {
            Debug::Whole(l) => l
                .find_frames(probe)
                .map(partial::collect)
                .unwrap_or_default(),
            Debug::Partial(p) => p.frames(probe),
        }
    }

    fn symbol(&mut self, probe: u64) -> Option<String> {
        match self {
            Debug::Whole(l) => l.find_symbol(probe).map(str::to_owned),
            Debug::Partial(p) => p.symbol(probe),
        }
    }
}

/// Resolves addresses of one session, caching each address.
pub struct Symbolizer {
    modules: Vec<Module>,
    cache: FxHashMap<u64, Vec<FrameInfo>>,
    /// What could not be done, for the report.
    pub warnings: Vec<String>,
    /// Files whose debug information is in use.
    pub loaded: Vec<String>,
    /// The session records call stacks: without any, the modules' files are
    /// still checked (a wrong `--elf` is still an error) but their debug
    /// information is not loaded (for a large program, a tenth of a second
    /// and tens of MiB spent on nothing).
    stacks: bool,
}

struct ElfFacts {
    build_id: Option<Vec<u8>>,
    min_vaddr: u64,
    thumb: bool,
}

/// Reads what symbolization needs to know of `path` before using it: its
/// build id, first segment address and architecture.
///
/// `path` may come from the trace (a module's recorded path), so it is
/// hostile input: only a regular file is opened (never a FIFO, which would
/// block, or a device such as `/dev/zero`, which never ends), and the file is
/// parsed through a read cache that reads only the headers and notes it
/// needs, so a huge file costs no more memory than a small one.
fn elf_facts(path: &Path) -> Result<ElfFacts, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file; not opened".into());
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    // The path may have been swapped between the two calls: check the file opened.
    let opened = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !opened.is_file() {
        return Err("not a regular file; not read".into());
    }
    let cache = object::ReadCache::new(file);
    let file =
        object::File::parse(&cache).map_err(|e| format!("not an ELF or object file: {e}"))?;
    let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
    let min_vaddr = file.segments().map(|s| s.address()).min().unwrap_or(0);
    let thumb = matches!(file.architecture(), object::Architecture::Arm);
    Ok(ElfFacts {
        build_id,
        min_vaddr,
        thumb,
    })
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every return address of `stacks`, stack by stack, innermost first.
fn stack_addresses(stacks: &crate::records::StackTable) -> impl Iterator<Item = u64> + '_ {
    let ids = 1..=u32::try_from(stacks.len()).unwrap_or(u32::MAX);
    ids.flat_map(|id| stacks.get(id).iter().copied())
}

impl Module {
    /// The file address to look up for return address `addr`.
    fn probe(&self, addr: u64) -> u64 {
        let mut probe = addr.wrapping_sub(self.bias);
        if self.thumb {
            probe &= !1;
        }
        // A return address points after the call; step back into it.
        probe.saturating_sub(1)
    }
}

impl Symbolizer {
    /// A symbolizer with no debug information: addresses stay addresses.
    pub fn none() -> Self {
        Symbolizer {
            modules: Vec::new(),
            cache: FxHashMap::default(),
            warnings: Vec::new(),
            loaded: Vec::new(),
            stacks: true,
        }
    }

    /// Prepares symbolization for `session`. An explicit `--elf` that cannot
    /// be read or whose build id differs from the trace's is an error; modules
    /// whose files cannot be found are warnings.
    pub fn new(session: &Session, opts: &Options) -> Result<Self, Error> {
        let mut s = Symbolizer::none();
        s.stacks = !session.stacks.is_empty();
        let header_id = session
            .header
            .as_ref()
            .map(|h| h.build_id.clone())
            .unwrap_or_default();
        let mut elf_used = false;
        let elf = match &opts.elf {
            Some(p) => {
                let facts = elf_facts(p).map_err(|reason| Error::Elf {
                    path: p.display().to_string(),
                    reason,
                })?;
                Some((p.clone(), facts))
            }
            None => None,
        };
        if session.modules.is_empty() && elf.is_none() {
            // No module map and no --elf: the program's own path, when the
            // header names a file that is there and carries the same build id.
            let program = session.header.as_ref().map(|h| PathBuf::from(&h.program));
            if let Some(p) = program.filter(|p| p.is_absolute() && p.is_file()) {
                if let Ok(facts) = elf_facts(&p) {
                    let id = facts.build_id.clone().unwrap_or_default();
                    if !header_id.is_empty() && id == header_id {
                        s.add(&p, &p, 0, u64::MAX, 0, facts.thumb);
                    } else {
                        s.warnings.push(format!(
                            "{}: not used for symbols (its build id does not match the trace's); pass --elf",
                            p.display()
                        ));
                    }
                }
            }
            return Ok(s);
        }
        if session.modules.is_empty() {
            if let Some((p, facts)) = elf {
                let id = facts.build_id.clone().unwrap_or_default();
                if !header_id.is_empty() && !id.is_empty() && id != header_id {
                    return Err(Error::Elf {
                        path: p.display().to_string(),
                        reason: format!(
                            "build id {} does not match the trace's {}; pass the ELF the trace was recorded from",
                            hex(&id),
                            hex(&header_id)
                        ),
                    });
                }
                if header_id.is_empty() || id.is_empty() {
                    s.warnings.push(format!(
                        "{}: build id not recorded in {}; symbols are not verified against the trace",
                        p.display(),
                        if header_id.is_empty() { "the trace" } else { "the ELF" }
                    ));
                }
                s.add(&p, &p, 0, u64::MAX, 0, facts.thumb);
            }
            return Ok(s);
        }
        // Each module used holds a loader (a mapping and parsed debug
        // information); a process maps a few hundred at most, a hostile
        // trace could list the same library a million times.
        if session.modules.len() > MAX_MODULES {
            s.warnings.push(format!(
                "the trace records {} modules; only the first {MAX_MODULES} are symbolized",
                session.modules.len()
            ));
        }
        for m in session.modules.iter().take(MAX_MODULES) {
            let mut chosen: Option<(PathBuf, ElfFacts)> = None;
            if let Some((p, facts)) = &elf {
                let id = facts.build_id.clone().unwrap_or_default();
                if !m.build_id.is_empty() && id == m.build_id {
                    chosen = Some((
                        p.clone(),
                        elf_facts(p).map_err(|reason| Error::Elf {
                            path: p.display().to_string(),
                            reason,
                        })?,
                    ));
                    elf_used = true;
                }
            }
            // Why the recorded path itself was not used, for the warning.
            let mut refused: Option<String> = None;
            if chosen.is_none() {
                for cand in candidates(&m.path, &m.build_id, &opts.debug_dirs) {
                    let facts = match elf_facts(&cand) {
                        Ok(f) => f,
                        Err(e) => {
                            if cand == Path::new(&m.path) && cand.exists() {
                                refused = Some(e);
                            }
                            continue;
                        }
                    };
                    let id = facts.build_id.clone().unwrap_or_default();
                    if m.build_id.is_empty() || id == m.build_id {
                        if m.build_id.is_empty() {
                            s.warnings.push(format!(
                                "{}: module recorded without build id; symbols not verified",
                                cand.display()
                            ));
                        }
                        chosen = Some((cand, facts));
                        break;
                    }
                    s.warnings.push(format!(
                        "{}: build id {} differs from the recorded {}; not used",
                        cand.display(),
                        hex(&id),
                        hex(&m.build_id)
                    ));
                }
            }
            match chosen {
                Some((p, facts)) => {
                    // For a position-independent file the first segment's
                    // file address (usually 0) is mapped at `base`.
                    let bias = m.base.wrapping_sub(facts.min_vaddr & !0xfff);
                    // Named as the process mapped it (`libc.so.6`), not
                    // as the debug file found for it (`<build id>.debug`).
                    s.add(&p, Path::new(&m.path), m.base, m.size, bias, facts.thumb);
                }
                // The vDSO and other pseudo-modules have no file to look for.
                None if !m.path.starts_with('/') => {}
                None => s.warnings.push(format!(
                    "{}: no file with build id {} found{}; its frames stay addresses (use --elf or --debug-dir)",
                    m.path,
                    hex(&m.build_id),
                    refused.map(|e| format!(" (the recorded path: {e})")).unwrap_or_default()
                )),
            }
        }
        if let (Some((p, facts)), false) = (&elf, elf_used) {
            return Err(Error::Elf {
                path: p.display().to_string(),
                reason: format!(
                    "build id {} matches none of the {} modules the trace recorded; pass the program the trace was recorded from",
                    hex(facts.build_id.as_deref().unwrap_or(&[])),
                    session.modules.len()
                ),
            });
        }
        Ok(s)
    }

    /// Adds a module read from `path`, named by `shown`'s file name.
    fn add(&mut self, path: &Path, shown: &Path, base: u64, size: u64, bias: u64, thumb: bool) {
        let loader = match self.stacks.then(|| Debug::load(path)) {
            None => None,
            Some(Ok(l)) => {
                self.loaded.push(path.display().to_string());
                Some(l)
            }
            Some(Err(e)) => {
                self.warnings.push(format!(
                    "{}: cannot load debug information: {e}",
                    path.display()
                ));
                None
            }
        };
        let name = shown
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.modules.push(Module {
            base,
            size,
            bias,
            name,
            path: path.to_path_buf(),
            loader,
            failure_told: false,
            thumb,
        });
    }

    /// Readies the debug information for these return addresses at once:
    /// a module loaded in part (see `partial`) then inflates and parses the
    /// units they need in one step rather than one address at a time.
    pub fn want(&mut self, addrs: impl IntoIterator<Item = u64>) {
        let mut probes: Vec<Vec<u64>> = vec![Vec::new(); self.modules.len()];
        for addr in addrs {
            if self.cache.contains_key(&addr) {
                continue;
            }
            if let Some(i) = self.module_of(addr) {
                probes[i].push(self.modules[i].probe(addr));
            }
        }
        for (i, p) in probes.into_iter().enumerate() {
            let m = &mut self.modules[i];
            if let (Some(d), false) = (&mut m.loader, p.is_empty()) {
                if d.want(p) {
                    self.forget(i);
                }
            }
        }
    }

    /// Forgets the answers for module `i`'s addresses: what its debug
    /// information answers changed (see `partial::Partial::want`), and no
    /// answer may depend on when an address was first asked for.
    fn forget(&mut self, i: usize) {
        let (base, size) = (self.modules[i].base, self.modules[i].size);
        self.cache.retain(|&a, _| !(a >= base && a - base < size));
    }

    /// [`want`](Self::want) for every address of `stacks`, then a warning
    /// for each module whose debug information had to be loaded whole and
    /// could not be. Called once the stacks are all known and before the
    /// report resolves any, so that what the report shows does not depend
    /// on how far [`warm`](Self::warm) got.
    pub fn want_stacks(&mut self, stacks: &crate::records::StackTable) {
        self.want(stack_addresses(stacks));
        for m in &mut self.modules {
            if let Some(Debug::Partial(d)) = &m.loader {
                if let (Some(e), false) = (d.failure(), m.failure_told) {
                    self.warnings.push(format!(
                        "{}: cannot load debug information: {e}",
                        m.path.display()
                    ));
                    m.failure_told = true;
                }
            }
        }
    }

    /// Resolves the addresses of `stacks` ahead of their use, in order,
    /// until `done` is set (checked between addresses).
    pub fn warm(&mut self, stacks: &crate::records::StackTable, done: &AtomicBool) {
        // Relaxed: a hint to stop; nothing is read through it.
        if done.load(Ordering::Relaxed) {
            return;
        }
        self.want(stack_addresses(stacks));
        for addr in stack_addresses(stacks) {
            if done.load(Ordering::Relaxed) {
                return;
            }
            self.resolve(addr);
        }
    }

    fn module_of(&self, addr: u64) -> Option<usize> {
        self.modules
            .iter()
            .position(|m| addr >= m.base && addr - m.base < m.size)
    }

    /// The frames for return address `addr`, innermost (inlined) first.
    pub fn resolve(&mut self, addr: u64) -> &[FrameInfo] {
        if !self.cache.contains_key(&addr) {
            let frames = self.lookup(addr);
            self.cache.insert(addr, frames);
        }
        &self.cache[&addr]
    }

    /// A whole stack, expanded (inlined frames included), innermost first.
    pub fn stack(&mut self, addrs: &[u64]) -> Vec<FrameInfo> {
        let mut out = Vec::new();
        for &a in addrs {
            out.extend_from_slice(self.resolve(a));
        }
        out
    }

    fn lookup(&mut self, addr: u64) -> Vec<FrameInfo> {
        let bare = |module: Option<String>| {
            vec![FrameInfo {
                addr,
                function: None,
                file: None,
                line: None,
                inlined: false,
                module,
            }]
        };
        let Some(i) = self.module_of(addr) else {
            return bare(None);
        };
        let probe = self.modules[i].probe(addr);
        if let Some(d) = &mut self.modules[i].loader {
            if d.want([probe]) {
                self.forget(i);
            }
        }
        let m = &mut self.modules[i];
        let module = (m.size != u64::MAX).then(|| format!("{}+{:#x}", m.name, addr - m.base));
        let Some(loader) = &mut m.loader else {
            return bare(module);
        };
        let mut out: Vec<FrameInfo> = loader
            .frames(probe)
            .into_iter()
            .map(|(function, file, line)| FrameInfo {
                addr,
                function: function.map(|raw| demangle(&raw)),
                file,
                line,
                inlined: true,
                module: module.clone(),
            })
            .collect();
        if let Some(last) = out.last_mut() {
            last.inlined = false;
        }
        // A firmware ELF (linked at 0) keeps the DWARF of functions the
        // linker discarded, with their addresses set to 0: their ranges cover
        // the real code at the bottom of flash, and addr2line may answer with
        // one of them. The symbol table only has what was kept, so when it
        // names another function than DWARF's outermost frame, the symbol
        // table wins.
        if m.size == u64::MAX {
            if let (Some(sym), Some(Some(dwarf))) = (
                loader.symbol(probe),
                out.last().map(|f| f.function.as_deref()),
            ) {
                let sym = demangle(&sym);
                if plain_name(&sym) != plain_name(dwarf) {
                    out = vec![FrameInfo {
                        addr,
                        function: Some(sym),
                        file: None,
                        line: None,
                        inlined: false,
                        module: module.clone(),
                    }];
                }
            }
        }
        if out.is_empty() || out.iter().all(|f| f.function.is_none()) {
            if let Some(sym) = loader.symbol(probe) {
                let mut f = out.pop().unwrap_or(FrameInfo {
                    addr,
                    function: None,
                    file: None,
                    line: None,
                    inlined: false,
                    module: module.clone(),
                });
                f.function = Some(demangle(&sym));
                out = vec![f];
            }
        }
        if out.is_empty() {
            return bare(module);
        }
        out
    }
}

fn candidates(path: &str, build_id: &[u8], dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let p = Path::new(path);
    let mut all_dirs: Vec<PathBuf> = dirs.to_vec();
    all_dirs.push(PathBuf::from("/usr/lib/debug"));
    if build_id.len() >= 2 {
        let (head, tail) = build_id.split_at(1);
        for d in &all_dirs {
            out.push(
                d.join(".build-id")
                    .join(hex(head))
                    .join(format!("{}.debug", hex(tail))),
            );
        }
    }
    for d in dirs {
        if let Some(name) = p.file_name() {
            out.push(d.join(name));
            out.push(d.join(format!("{}.debug", name.to_string_lossy())));
        }
        out.push(d.join(p.strip_prefix("/").unwrap_or(p)));
    }
    out.push(p.to_path_buf());
    out
}

/// Demangles a Rust (legacy or v0) or C++ symbol; other names unchanged.
pub fn demangle(raw: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(raw) {
        return format!("{d:#}");
    }
    addr2line::demangle_auto(raw.into(), None).into_owned()
}

/// A function name without generic arguments and without the `<…>` around
/// a qualified self type: `<alloc::vec::Vec<u8>>::push` becomes
/// `alloc::vec::Vec::push`, so one prefix matches legacy and v0 names.
pub fn plain_name(function: &str) -> String {
    let mut s: &str = function;
    let mut owned;
    if s.starts_with('<') {
        // Remove the outer `<` and the `>` that closes it.
        let mut depth = 0i32;
        let mut close = None;
        for (i, c) in s.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        if let Some(c) = close {
            owned = String::with_capacity(s.len());
            owned.push_str(&s[1..c]);
            owned.push_str(&s[c + 1..]);
            s = &owned;
            let mut out = String::with_capacity(s.len());
            let mut depth = 0i32;
            for ch in s.chars() {
                match ch {
                    '<' => depth += 1,
                    '>' if depth > 0 => depth -= 1,
                    _ if depth == 0 => out.push(ch),
                    _ => {}
                }
            }
            return out;
        }
    }
    owned = String::with_capacity(s.len());
    let mut depth = 0i32;
    for ch in s.chars() {
        match ch {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => owned.push(ch),
            _ => {}
        }
    }
    owned
}

/// Frames of the allocator, the standard collections and memscope itself: a
/// report's stack starts after the innermost run of these, at the user's code.
pub fn is_allocator_frame(function: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "alloc::",
        "core::alloc::",
        "std::alloc::",
        "core::ptr::drop_in_place",
        "core::ptr::real_drop_in_place",
        "__rust_",
        "__rg_",
        "__rdl_",
        "__rustc::",
        "memscope_",
        "memscope::",
        "hashbrown::",
        "std::collections::",
        "embedded_alloc::",
        "linked_list_allocator::",
        // Firmware: memscope's Stream records inside a critical section.
        "critical_section::",
    ];
    const EXACT: &[&str] = &[
        "malloc",
        "calloc",
        "realloc",
        "free",
        "posix_memalign",
        "aligned_alloc",
    ];
    let p = plain_name(function);
    PREFIXES.iter().any(|x| p.starts_with(x))
        || EXACT.contains(&p.as_str())
        || p.contains(" as alloc::")
        || p.contains(" as core::alloc::")
        || p.contains("RawVec")
        || p.contains("TrackingAllocator")
}

/// Whether a frame is the Rust standard library's own code (core, alloc,
/// std): by its source path when known, else by its name.
pub fn is_std_frame(f: &FrameInfo) -> bool {
    if let Some(file) = &f.file {
        return [
            "/library/core/src/",
            "/library/alloc/src/",
            "/library/std/src/",
        ]
        .iter()
        .any(|p| file.contains(p));
    }
    let Some(name) = &f.function else {
        return false;
    };
    let p = plain_name(name);
    ["core::", "alloc::", "std::"]
        .iter()
        .any(|x| p.starts_with(x))
}

/// Index of the first user frame of `frames`: past the innermost run of
/// allocator frames and of the standard library's frames (a `format!`, a
/// `collect`, a `to_vec` inside std are not where the user allocated; the
/// user's call of them is). When every frame belongs to std (allocations std
/// makes for itself), the first frame after the allocator's; when all are
/// the allocator's, the outermost.
pub fn first_user_frame(frames: &[FrameInfo]) -> usize {
    let allocator = |f: &FrameInfo| f.function.as_deref().is_some_and(is_allocator_frame);
    frames
        .iter()
        .position(|f| !allocator(f) && !is_std_frame(f))
        .or_else(|| frames.iter().position(|f| !allocator(f)))
        .unwrap_or(frames.len().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{HeaderInfo, ModuleInfo};

    /// A session that records a call stack (without one, no debug
    /// information is loaded).
    fn with_a_stack() -> Session {
        let mut s = Session::default();
        s.stacks.intern(&[0x1000]);
        s
    }

    /// Without call stacks there is nothing to symbolize: the program's
    /// file is found and checked as with stacks, but its debug information
    /// is not loaded; a wrong `--elf` is still an error.
    #[test]
    fn a_session_without_stacks_loads_no_debug_information() {
        let me = std::env::current_exe().unwrap();
        let id = elf_facts(&me).unwrap().build_id.unwrap();
        let mut session = Session::default();
        session.header = Some(HeaderInfo {
            program: me.display().to_string(),
            build_id: id.clone(),
            ..HeaderInfo::default()
        });
        let s = Symbolizer::new(&session, &Options::default()).unwrap();
        assert!(
            s.loaded.is_empty() && s.warnings.is_empty(),
            "{:?}",
            s.warnings
        );
        assert_eq!(s.modules.len(), 1);
        assert!(s.modules[0].loader.is_none());
        session.header.as_mut().unwrap().build_id = vec![9, 9, 9, 9];
        let elf = Options {
            elf: Some(me.clone()),
            ..Options::default()
        };
        assert!(matches!(
            Symbolizer::new(&session, &elf),
            Err(Error::Elf { .. })
        ));
        // The same session with a stack loads it.
        session.header.as_mut().unwrap().build_id = id;
        session.stacks.intern(&[0x1000]);
        let s = Symbolizer::new(&session, &Options::default()).unwrap();
        assert_eq!(s.loaded, vec![me.display().to_string()]);
    }

    fn frame(f: &str) -> FrameInfo {
        FrameInfo {
            addr: 0,
            function: Some(f.to_owned()),
            file: None,
            line: None,
            inlined: false,
            module: None,
        }
    }

    #[test]
    fn demangles_legacy_and_v0() {
        assert_eq!(
            demangle("_ZN4core3ptr13drop_in_place17h0123456789abcdefE"),
            "core::ptr::drop_in_place"
        );
        assert_eq!(demangle("_RNvC6_123foo3bar"), "123foo::bar");
        assert_eq!(
            demangle("_RNvMNtCs1234_5alloc3vecINtB2_3VecmE4push"),
            "<alloc::vec::Vec<u32>>::push"
        );
        assert_eq!(demangle("plain_c_function"), "plain_c_function");
    }

    #[test]
    fn plain_names_drop_generics_and_qualified_self() {
        assert_eq!(
            plain_name("<alloc::vec::Vec<u32>>::push"),
            "alloc::vec::Vec::push"
        );
        assert_eq!(
            plain_name("<alloc::vec::Vec<T,A> as core::clone::Clone>::clone"),
            "alloc::vec::Vec as core::clone::Clone::clone"
        );
        assert_eq!(plain_name("app::main"), "app::main");
    }

    #[test]
    fn allocator_frames_are_trimmed_up_to_user_code() {
        let frames = [
            frame("<memscope_core::alloc::TrackingAllocator<A,R> as core::alloc::global::GlobalAlloc>::alloc"),
            frame("__rust_alloc"),
            frame("alloc::raw_vec::RawVecInner<A>::finish_grow"),
            frame("<alloc::vec::Vec<u8>>::push"),
            frame("core::ptr::drop_in_place<app::Thing>"),
            frame("app::parse_line"),
            frame("alloc::vec::Vec<T,A>::push"),
            frame("app::main"),
        ];
        assert_eq!(first_user_frame(&frames), 5);
        assert!(!is_allocator_frame("app::alloc_helper"));
        assert!(!is_allocator_frame("my_allocator_test::run"));
        assert!(is_allocator_frame("malloc"));
        assert!(!is_allocator_frame("malloc_wrapper_in_app"));
        assert!(is_allocator_frame(
            "<hashbrown::raw::RawTable<T,A>>::reserve_rehash"
        ));
        // A stack of allocator frames only: the outermost is shown.
        assert_eq!(first_user_frame(&frames[..3]), 2);
        // std's own code (by source path) is skipped too, unless it is all there is.
        let mut fmt = frame("core::fmt::write");
        fmt.file = Some("/rustc/abc/library/core/src/fmt/mod.rs".into());
        let user = frame("app::report");
        let stack = [frames[1].clone(), fmt.clone(), user.clone()];
        assert_eq!(first_user_frame(&stack), 2);
        assert_eq!(first_user_frame(&[frames[1].clone(), fmt]), 1);
    }

    fn module(path: &Path, build_id: &[u8]) -> ModuleInfo {
        ModuleInfo {
            base: 0x10_0000,
            size: 0x1000,
            path: path.display().to_string(),
            build_id: build_id.to_vec(),
        }
    }

    /// A trace names the files the decoder opens: only regular files are
    /// opened, only one whose build id is the recorded one is used, and the
    /// report says which file was used and why each other one was not.
    #[test]
    fn only_regular_files_with_the_recorded_build_id_are_used() {
        let me = std::env::current_exe().unwrap();
        let id = elf_facts(&me)
            .unwrap()
            .build_id
            .expect("the test executable carries a GNU build id");
        let dir = std::env::temp_dir().join(format!("memscope-sym-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("notes.txt");
        std::fs::write(&text, "not an ELF").unwrap();
        let fifo = dir.join("fifo");
        // A FIFO would block a reader forever; /dev/zero never ends.
        let have_fifo = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        let mut session = with_a_stack();
        let refused: Vec<PathBuf> = [
            Some(PathBuf::from("/dev/zero")),
            have_fifo.then(|| fifo.clone()),
            Some(dir.clone()),
            Some(text.clone()),
            Some(dir.join("missing")),
        ]
        .into_iter()
        .flatten()
        .collect();
        for p in &refused {
            session.modules.push(module(p, &id));
        }
        session.modules.push(module(&me, &[1, 2, 3, 4]));
        session.modules.push(module(&me, &id));
        let s = Symbolizer::new(&session, &Options::default()).unwrap();
        assert_eq!(s.loaded, vec![me.display().to_string()]);
        for p in &refused {
            let p = p.display().to_string();
            assert!(
                s.warnings.iter().any(|w| w.starts_with(&p)),
                "no warning names {p}: {:?}",
                s.warnings
            );
        }
        assert!(s
            .warnings
            .iter()
            .any(|w| w.contains("/dev/zero") && w.contains("not a regular file")));
        assert!(s
            .warnings
            .iter()
            .any(|w| w.contains("differs from the recorded 01020304")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A module whose debug information is a separate file, found by build
    /// id under a debug directory (as libc's is in `/usr/lib/debug`), is
    /// still named as the process mapped it, not as `<build id>.debug`.
    #[cfg(unix)]
    #[test]
    fn a_module_found_by_build_id_keeps_its_own_name() {
        let me = std::env::current_exe().unwrap();
        let id = elf_facts(&me).unwrap().build_id.unwrap();
        let dir = std::env::temp_dir().join(format!("memscope-sym-dbg-{}", std::process::id()));
        let sub = dir.join(".build-id").join(hex(&id[..1]));
        std::fs::create_dir_all(&sub).unwrap();
        let debug = sub.join(format!("{}.debug", hex(&id[1..])));
        std::os::unix::fs::symlink(&me, &debug).unwrap();
        let mut session = with_a_stack();
        session
            .modules
            .push(module(Path::new("/nowhere/libdemo.so.1"), &id));
        let opts = Options {
            elf: None,
            debug_dirs: vec![dir.clone()],
        };
        let mut s = Symbolizer::new(&session, &opts).unwrap();
        assert_eq!(s.loaded, vec![debug.display().to_string()]);
        let f = &s.resolve(0x10_0010)[0];
        assert_eq!(f.module.as_deref(), Some("libdemo.so.1+0x10"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// When a module's debug information changes what it answers (units
    /// added, or the whole file taken), the answers cached for its
    /// addresses are forgotten: none depends on which address came first.
    #[test]
    fn answers_are_asked_again_when_a_module_loads_more() {
        let path = partial::tests::compressed_program(5, true);
        let (probes, expected) = partial::tests::whole_answers(&path);
        let id = elf_facts(&path).unwrap().build_id.unwrap();
        let mut session = with_a_stack();
        let mut m = module(&path, &id);
        m.size = 1 << 20;
        session.modules.push(m);
        let mut s = Symbolizer::new(&session, &Options::default()).unwrap();
        let addr = |p: u64| 0x10_0000 + p + 1;
        // An address in the first unit, which `.debug_aranges` lists.
        let covered = expected
            .iter()
            .position(|e| e.1.as_deref() == Some("leaf"))
            .unwrap();
        s.want([addr(probes[covered])]);
        s.resolve(addr(probes[covered]));
        assert!(s.cache.contains_key(&addr(probes[covered])));
        // Every address at once: the unit without aranges is among them,
        // and the whole file is taken.
        s.want(probes.iter().map(|&p| addr(p)));
        assert!(s.cache.is_empty());
        for (i, &p) in probes.iter().enumerate() {
            let got: Vec<_> = s.resolve(addr(p)).iter().map(|f| f.line).collect();
            let want: Vec<_> = expected[i].0.iter().map(|f| f.2).collect();
            if !want.is_empty() {
                assert_eq!(got, want, "{p:#x}");
            }
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// A trace can list any number of modules; the symbolizer looks at the
    /// first MAX_MODULES only (each one looked at costs file reads, and a
    /// loader when used), and says so.
    #[test]
    fn a_trace_listing_too_many_modules_is_symbolized_for_the_first_ones_only() {
        let dir = std::env::temp_dir().join(format!("memscope-sym-many-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("not-an-elf");
        std::fs::write(&text, "text").unwrap();
        let mut session = with_a_stack();
        for i in 0..(MAX_MODULES as u64 + 500) {
            let mut m = module(&text, &[1, 2]);
            m.base = i << 32;
            session.modules.push(m);
        }
        let s = Symbolizer::new(&session, &Options::default()).unwrap();
        assert!(
            s.warnings[0].contains("only the first 1024"),
            "{:?}",
            s.warnings[0]
        );
        // One warning per module looked at, none for the others.
        assert_eq!(s.warnings.len(), 1 + MAX_MODULES);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Without a module map, the header's program path is used only when the
    /// file there has the trace's build id.
    #[test]
    fn the_program_named_in_the_header_is_used_only_with_its_build_id() {
        let me = std::env::current_exe().unwrap();
        let id = elf_facts(&me).unwrap().build_id.unwrap();
        let mut session = with_a_stack();
        session.header = Some(HeaderInfo {
            program: me.display().to_string(),
            build_id: vec![9, 9, 9, 9],
            ..HeaderInfo::default()
        });
        let s = Symbolizer::new(&session, &Options::default()).unwrap();
        assert!(s.loaded.is_empty());
        assert!(s.warnings[0].contains("does not match"), "{:?}", s.warnings);
        session.header.as_mut().unwrap().build_id = id;
        let s = Symbolizer::new(&session, &Options::default()).unwrap();
        assert_eq!(s.loaded, vec![me.display().to_string()]);
        // A header naming a device is never opened.
        session.header.as_mut().unwrap().program = "/dev/zero".into();
        let s = Symbolizer::new(&session, &Options::default()).unwrap();
        assert!(s.loaded.is_empty());
    }
}
