//! Compressed debug information, inflated and parsed only as far as the
//! addresses asked for need.
//!
//! A distribution's separate debug file (Debian's `libc6-dbg`: 4 MiB on
//! disk, 10 MiB of zlib-compressed DWARF) was loaded whole by
//! `addr2line::Loader`: every section inflated and every compilation unit's
//! abbreviations and line-program header parsed, 58 ms and 36 MiB for the
//! two libc frames a Rust program's stacks hold (`start_thread`,
//! `__libc_start_call_main`). Here `.debug_aranges` names the units that
//! cover the addresses; `.debug_info` is inflated only up to the last of
//! them, into memory that is address space until written, and every run of
//! other units in front of them is covered by one placeholder unit that
//! addr2line skips (a DWARF 5 type unit), so that all offsets into the
//! section (references, `.debug_aranges`) stay those of the file.
//!
//! Anything this cannot answer exactly as the whole file would — a unit
//! that refers into another unit (`DW_FORM_ref_addr`, dwz's alternate
//! file), a split-DWARF skeleton, an address no `.debug_aranges` entry
//! covers, damaged data — falls back to the whole file through
//! `addr2line::Loader`, as before. One case is not told apart: a unit
//! missing from `.debug_aranges` whose own ranges cover code a listed unit
//! also covers (the linker's identical-code folding across units from
//! different compilers), where addr2line may answer from the unlisted one;
//! finding it would take inflating every unit header.

use std::collections::BTreeSet;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gimli::{EndianReader, RunTimeEndian, SectionId};
use object::{Object, ObjectSection};

/// Bytes shared by the sections' readers: an anonymous mapping (the sparse
/// `.debug_info`) or a vector (a section inflated whole or copied).
#[derive(Clone)]
pub(crate) struct Bytes(Arc<Store>);

enum Store {
    Map(memmap2::MmapMut),
    Vec(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &*self.0 {
            Store::Map(m) => m,
            Store::Vec(v) => v,
        }
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({})", self.len())
    }
}

// SAFETY: the bytes are the heap buffer of a vector or an anonymous mapping
// held by the `Arc`; moving or cloning a `Bytes` moves or clones the
// pointer to the `Arc`, never the bytes, so they stay where they are while
// any `Bytes` is alive. They are written only through `Arc::get_mut`, that
// is while no other `Bytes` (and so no reader) shares them.
unsafe impl stable_deref_trait::StableDeref for Bytes {}
// SAFETY: a clone shares the same `Arc`, so it derefs to the same address.
unsafe impl stable_deref_trait::CloneStableDeref for Bytes {}

type Reader = EndianReader<RunTimeEndian, Bytes>;

/// A frame as addr2line gives it: the function's raw (mangled) name, file,
/// line.
pub(crate) type RawFrame = (Option<String>, Option<String>, Option<u32>);

/// Forms that point outside their own unit (or file): a unit using one
/// needs units this module may not have inflated.
const OUTSIDE_FORMS: [u16; 7] = [
    0x10,   // DW_FORM_ref_addr
    0x16,   // DW_FORM_indirect: the form is in the entry, anything
    0x1c,   // DW_FORM_ref_sup4
    0x1d,   // DW_FORM_strp_sup
    0x24,   // DW_FORM_ref_sup8
    0x1f20, // DW_FORM_GNU_ref_alt
    0x1f21, // DW_FORM_GNU_strp_alt
];

/// Size of the placeholder unit's header: a DWARF 5 type unit, 32-bit.
const PLACEHOLDER: usize = 24;

pub(crate) struct Partial {
    path: PathBuf,
    map: memmap2::Mmap,
    endian: RunTimeEndian,
    /// Every section addr2line reads, `.debug_info` aside, inflated.
    sections: Vec<(SectionId, Bytes)>,
    /// `.debug_aranges`: (start, end, unit offset), by start, with the
    /// largest end so far (to find every range that covers an address).
    ranges: Vec<(u64, u64, usize, u64)>,
    /// `.debug_info`: where its compressed bytes are in the file, the
    /// inflater (kept: a later unit further on goes on from here) and how
    /// far it has come.
    info_at: (usize, usize),
    inflate: flate2::Decompress,
    inflated: usize,
    info: Bytes,
    /// Units inflated and given to addr2line: (offset, end).
    units: BTreeSet<(usize, usize)>,
    /// The placeholders written: where, and the bytes they replaced.
    patches: Vec<(usize, [u8; PLACEHOLDER])>,
    ctx: Option<addr2line::Context<Reader>>,
    /// The symbol table, read on first use.
    symbols: Option<Vec<(u64, String)>>,
    /// Set when this cannot answer as the whole file would.
    whole: Option<Result<addr2line::Loader, String>>,
    /// Contexts built so far (see [`MAX_BUILDS`]).
    builds: u32,
}

/// Steps of units added before the whole file is loaded instead.
const MAX_BUILDS: u32 = 8;

impl Partial {
    /// A partial loader for `path`, or `None` when its `.debug_info` is not
    /// zlib-compressed or it has no `.debug_aranges` (then the whole file is
    /// loaded as before). Errors are those of a file that cannot be read.
    pub(crate) fn open(path: &Path) -> Result<Option<Partial>, String> {
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        // SAFETY: the file is mapped read-only, as addr2line's own loader
        // maps it; one truncated by another process while mapped would
        // fault (SIGBUS), which no parsing here can prevent.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())?;
        let obj = object::File::parse(&*map).map_err(|e| e.to_string())?;
        let Some(info) = obj.section_by_name(".debug_info") else {
            return Ok(None);
        };
        let compressed = info.compressed_data().map_err(|e| e.to_string())?;
        if compressed.format != object::CompressionFormat::Zlib
            || obj.section_by_name(".debug_aranges").is_none()
        {
            return Ok(None);
        }
        let info_len =
            usize::try_from(compressed.uncompressed_size).map_err(|_| "too large".to_string())?;
        let start = compressed.data.as_ptr() as usize - map.as_ptr() as usize;
        let info_at = (start, compressed.data.len());
        let endian = if obj.is_little_endian() {
            RunTimeEndian::Little
        } else {
            RunTimeEndian::Big
        };
        let mut sections = Vec::new();
        for id in [
            SectionId::DebugAbbrev,
            SectionId::DebugAddr,
            SectionId::DebugAranges,
            SectionId::DebugLine,
            SectionId::DebugLineStr,
            SectionId::DebugRanges,
            SectionId::DebugRngLists,
            SectionId::DebugStr,
            SectionId::DebugStrOffsets,
        ] {
            if let Some(s) = obj.section_by_name(id.name()) {
                let data = s.uncompressed_data().map_err(|e| e.to_string())?;
                sections.push((id, Bytes(Arc::new(Store::Vec(data.into_owned())))));
            }
        }
        // Address space only, until written (a private anonymous mapping).
        let anon = memmap2::MmapMut::map_anon(info_len.max(1)).map_err(|e| e.to_string())?;
        let mut p = Partial {
            path: path.to_path_buf(),
            endian,
            sections,
            ranges: Vec::new(),
            info_at,
            inflate: flate2::Decompress::new(true),
            inflated: 0,
            info: Bytes(Arc::new(Store::Map(anon))),
            units: BTreeSet::new(),
            patches: Vec::new(),
            ctx: None,
            symbols: None,
            whole: None,
            builds: 0,
            map,
        };
        p.ranges = p.read_aranges().map_err(|e| e.to_string())?;
        Ok(Some(p))
    }

    fn section(&self, id: SectionId) -> Reader {
        let bytes = self.sections.iter().find(|(s, _)| *s == id).map_or_else(
            || Bytes(Arc::new(Store::Vec(Vec::new()))),
            |(_, b)| b.clone(),
        );
        EndianReader::new(bytes, self.endian)
    }

    fn read_aranges(&self) -> gimli::Result<Vec<(u64, u64, usize, u64)>> {
        let aranges = gimli::DebugAranges::from(self.section(SectionId::DebugAranges));
        let mut out = Vec::new();
        let mut headers = aranges.headers();
        while let Some(h) = headers.next()? {
            let unit = h.debug_info_offset().0;
            let mut entries = h.entries();
            while let Some(e) = entries.next().transpose() {
                // As addr2line: an entry that does not read (an address
                // that overflows, seen from rustc) is skipped; the iterator
                // ends after any error it cannot go on from.
                let Ok(e) = e else { continue };
                let r = e.range();
                if r.begin < r.end {
                    out.push((r.begin, r.end, unit, 0));
                }
            }
        }
        out.sort_unstable();
        let mut reach = 0;
        for r in &mut out {
            reach = reach.max(r.1);
            r.3 = reach;
        }
        Ok(out)
    }

    /// Adds the units whose ranges cover `probe` to `out`; whether any does.
    fn units_of(&self, probe: u64, out: &mut BTreeSet<usize>) -> bool {
        let mut i = self.ranges.partition_point(|r| r.0 <= probe);
        let mut found = false;
        while i > 0 && self.ranges[i - 1].3 > probe {
            i -= 1;
            if self.ranges[i].1 > probe {
                out.insert(self.ranges[i].2);
                found = true;
            }
        }
        found
    }

    /// Makes sure the units covering `probes` are parsed, inflating further
    /// if need be; on anything this cannot answer exactly, the whole file
    /// is loaded instead. Returns whether what it answers may have changed
    /// (units added, or the whole file taken): answers given before must
    /// then be asked for again, so that none depends on the order in which
    /// addresses came.
    pub(crate) fn want(&mut self, probes: impl IntoIterator<Item = u64>) -> bool {
        if self.whole.is_some() {
            return false;
        }
        let mut need = BTreeSet::new();
        for p in probes {
            // An address no `.debug_aranges` entry covers may still be in a
            // unit the section leaves out (clang emits none by default),
            // which addr2line would find by the unit's own ranges.
            if !self.units_of(p, &mut need) {
                self.give_up();
                return true;
            }
        }
        need.retain(|&u| !self.units.iter().any(|&(s, _)| s == u));
        if need.is_empty() {
            return false;
        }
        self.builds += 1;
        // Each step rebuilds addr2line's context from every unit so far: a
        // few steps (the early stacks, the rest) are cheap, one unit at a
        // time would be quadratic.
        if self.builds > MAX_BUILDS || self.add_units(&need).is_err() {
            self.give_up();
        }
        true
    }

    fn give_up(&mut self) {
        self.ctx = None;
        self.whole = Some(addr2line::Loader::new(&self.path).map_err(|e| e.to_string()));
    }

    /// Why the whole file could not be loaded, once this had to.
    pub(crate) fn failure(&self) -> Option<&str> {
        match &self.whole {
            Some(Err(e)) => Some(e),
            _ => None,
        }
    }

    /// Inflates `.debug_info` up to `end` (at most its size).
    fn inflate_to(&mut self, end: usize) -> Result<(), String> {
        let Some(Store::Map(buf)) = Arc::get_mut(&mut self.info.0) else {
            return Err("debug information still shared".into());
        };
        let end = end.min(buf.len());
        let input = &self.map[self.info_at.0..self.info_at.0 + self.info_at.1];
        while self.inflated < end {
            let before_in = self.inflate.total_in() as usize;
            let before_out = self.inflate.total_out() as usize;
            let status = self
                .inflate
                .decompress(
                    &input[before_in.min(input.len())..],
                    &mut buf[self.inflated..end],
                    flate2::FlushDecompress::None,
                )
                .map_err(|e| format!("inflating .debug_info: {e}"))?;
            self.inflated = self.inflate.total_out() as usize;
            let moved =
                self.inflate.total_in() as usize != before_in || self.inflated != before_out;
            if status == flate2::Status::StreamEnd || !moved {
                break;
            }
        }
        if self.inflated < end {
            return Err(format!(
                ".debug_info inflates to {} bytes, {} expected",
                self.inflated, end
            ));
        }
        Ok(())
    }

    fn add_units(&mut self, need: &BTreeSet<usize>) -> Result<(), String> {
        // The readers share the buffer: drop them before writing to it.
        self.ctx = None;
        self.unpatch()?;
        for &u in need {
            self.inflate_to(u.saturating_add(12))?;
            let end = self.unit_end(u)?;
            self.inflate_to(end)?;
            self.units.insert((u, end));
        }
        // `.debug_aranges` may name an offset inside another unit (a
        // damaged or hostile file): units must follow one another.
        let mut at = 0;
        for &(start, end) in &self.units {
            if start < at {
                return Err(format!("unit at {start:#x} overlaps the one before"));
            }
            at = end;
        }
        self.check_units()?;
        self.patch()?;
        let end = self.units.iter().map(|&(_, e)| e).max().unwrap_or(0);
        let info = EndianReader::new(self.info.clone(), self.endian).range_to(..end);
        let dwarf = self.dwarf(info)?;
        let ctx = addr2line::Context::from_dwarf(dwarf).map_err(|e| e.to_string())?;
        self.ctx = Some(ctx);
        Ok(())
    }

    /// The sections, with `info` as `.debug_info`.
    fn dwarf(&self, info: Reader) -> Result<gimli::Dwarf<Reader>, String> {
        gimli::Dwarf::load(|id| -> Result<Reader, ()> {
            Ok(match id {
                SectionId::DebugInfo => info.clone(),
                _ => self.section(id),
            })
        })
        .map_err(|()| String::from("loading sections"))
    }

    /// Where the unit at `u` ends, from its initial length.
    fn unit_end(&self, u: usize) -> Result<usize, String> {
        use gimli::Reader as _;
        let bad = || format!("unit at {u:#x} of .debug_info lies past its end");
        let buf: &[u8] = &self.info;
        let mut r = gimli::EndianSlice::new(buf.get(u..).ok_or_else(bad)?, self.endian);
        // gimli reads the initial length (32- or 64-bit DWARF) as addr2line will.
        let (len, format) = r.read_initial_length().map_err(|_| bad())?;
        u.checked_add(usize::from(format.initial_length_size()))
            .and_then(|at| at.checked_add(len))
            .filter(|&e| e <= buf.len())
            .ok_or_else(bad)
    }

    /// Refuses units this cannot give addr2line on their own: split-DWARF
    /// skeletons (addr2line would read their `.dwo`) and units whose
    /// abbreviations use a form that points outside the unit.
    fn check_units(&self) -> Result<(), String> {
        let info = gimli::DebugInfo::from(EndianReader::new(self.info.clone(), self.endian));
        let abbrev = self.section(SectionId::DebugAbbrev);
        for &(u, _) in &self.units {
            let header = info
                .header_from_offset(gimli::DebugInfoOffset(u))
                .map_err(|e| e.to_string())?;
            if !matches!(
                header.type_(),
                gimli::UnitType::Compilation | gimli::UnitType::Partial
            ) {
                return Err(format!("unit at {u:#x} is not a compilation unit"));
            }
            let mut r = abbrev.clone();
            gimli::Reader::skip(&mut r, header.debug_abbrev_offset().0)
                .map_err(|e| e.to_string())?;
            if refers_outside(&mut r).map_err(|e| e.to_string())? {
                return Err(format!("unit at {u:#x} refers outside itself"));
            }
            // A GNU split-DWARF skeleton is a compilation unit with a dwo id.
            let dwarf = self.dwarf(EndianReader::new(self.info.clone(), self.endian))?;
            let unit = dwarf.unit(header).map_err(|e| e.to_string())?;
            if unit.dwo_id.is_some() {
                return Err(format!("unit at {u:#x} is a split-DWARF skeleton"));
            }
        }
        Ok(())
    }

    /// Covers each run of units not asked for, in front of the last one
    /// asked for, with one placeholder type unit, keeping what it replaced.
    fn patch(&mut self) -> Result<(), String> {
        let endian = self.endian;
        let Some(Store::Map(buf)) = Arc::get_mut(&mut self.info.0) else {
            return Err("debug information still shared".into());
        };
        let mut at = 0;
        for &(start, end) in &self.units {
            let gap = start - at;
            // A run too short for a placeholder stays as it is: real units,
            // parsed for nothing but correct.
            if gap >= PLACEHOLDER && gap - 4 < 0xffff_fff0 {
                let mut old = [0u8; PLACEHOLDER];
                old.copy_from_slice(&buf[at..at + PLACEHOLDER]);
                self.patches.push((at, old));
                let len = u32::try_from(gap - 4).unwrap_or(u32::MAX);
                let put32 = |v: u32| match endian {
                    RunTimeEndian::Little => v.to_le_bytes(),
                    RunTimeEndian::Big => v.to_be_bytes(),
                };
                let put16 = |v: u16| match endian {
                    RunTimeEndian::Little => v.to_le_bytes(),
                    RunTimeEndian::Big => v.to_be_bytes(),
                };
                let h = &mut buf[at..at + PLACEHOLDER];
                h[0..4].copy_from_slice(&put32(len));
                h[4..6].copy_from_slice(&put16(5));
                h[6] = 0x02; // DW_UT_type
                h[7] = 8; // address size
                h[8..12].copy_from_slice(&put32(0)); // abbreviations: never read
                h[12..20].fill(0); // type signature
                h[20..24].copy_from_slice(&put32(PLACEHOLDER as u32));
            }
            at = end;
        }
        Ok(())
    }

    /// Puts back what the placeholders replaced.
    fn unpatch(&mut self) -> Result<(), String> {
        let Some(Store::Map(buf)) = Arc::get_mut(&mut self.info.0) else {
            return Err("debug information still shared".into());
        };
        for (at, old) in self.patches.drain(..) {
            buf[at..at + PLACEHOLDER].copy_from_slice(&old);
        }
        Ok(())
    }

    /// The frames for `probe` (a file address), innermost first. Callers
    /// that keep answers call [`want`](Self::want) first.
    pub(crate) fn frames(&mut self, probe: u64) -> Vec<RawFrame> {
        self.want([probe]);
        if let Some(w) = &self.whole {
            return match w {
                Ok(l) => l.find_frames(probe).map(collect).unwrap_or_default(),
                Err(_) => Vec::new(),
            };
        }
        match &self.ctx {
            Some(ctx) => ctx
                .find_frames(probe)
                .skip_all_loads()
                .map(collect)
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// The symbol table's name for `probe`, as addr2line's loader finds it.
    pub(crate) fn symbol(&mut self, probe: u64) -> Option<String> {
        if let Some(Ok(l)) = &self.whole {
            return l.find_symbol(probe).map(str::to_owned);
        }
        let map = &self.map;
        let symbols = self.symbols.get_or_insert_with(|| {
            object::File::parse(&**map)
                .map(|f| {
                    f.symbol_map()
                        .symbols()
                        .iter()
                        .map(|s| (s.address(), s.name().to_owned()))
                        .collect()
                })
                .unwrap_or_default()
        });
        // As object's `SymbolMap::get`, which the whole file's loader uses.
        let i = match symbols.binary_search_by_key(&probe, |s| s.0) {
            Ok(i) => i,
            Err(i) => i.checked_sub(1)?,
        };
        Some(symbols[i].1.clone())
    }

    /// Whether every address so far was answered from part of the file.
    #[cfg(test)]
    pub(crate) fn is_partial(&self) -> bool {
        self.whole.is_none()
    }
}

/// Frames from addr2line's iterator: raw name, file, line.
pub(crate) fn collect<R: gimli::Reader>(mut iter: addr2line::FrameIter<'_, R>) -> Vec<RawFrame> {
    let mut out = Vec::new();
    while let Ok(Some(f)) = addr2line::fallible_iterator::FallibleIterator::next(&mut iter) {
        let function = f
            .function
            .as_ref()
            .and_then(|n| n.raw_name().ok())
            .map(|raw| raw.into_owned());
        let (file, line) = match &f.location {
            Some(l) => (l.file.map(str::to_owned), l.line),
            None => (None, None),
        };
        out.push((function, file, line));
    }
    out
}

/// Whether an abbreviation table (read from its start to its end) uses a
/// form in [`OUTSIDE_FORMS`].
fn refers_outside<R: gimli::Reader>(r: &mut R) -> gimli::Result<bool> {
    loop {
        if r.read_uleb128()? == 0 {
            return Ok(false);
        }
        r.read_uleb128()?; // tag
        r.read_u8()?; // children
        loop {
            let name = r.read_uleb128()?;
            let form = r.read_uleb128()?;
            if name == 0 && form == 0 {
                break;
            }
            if form == 0x21 {
                r.read_sleb128()?; // DW_FORM_implicit_const's value
            }
            if OUTSIDE_FORMS.iter().any(|&f| u64::from(f) == form) {
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use object::ObjectSymbol;

    /// A program of three compilation units, with inlined functions,
    /// built by the C compiler, its debug information compressed with
    /// zlib by objcopy. With `hidden`, the second unit's `.debug_aranges`
    /// is removed before linking (clang emits none at all by default).
    pub(crate) fn compressed_program(dwarf: u8, hidden: bool) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "memscope-partial-{}-{dwarf}-{hidden}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let units = [
            "__attribute__((noinline)) int leaf(int x) { return x ^ 5; }\n\
             static inline __attribute__((always_inline)) int twice(int x) { return leaf(x) * 2; }\n\
             __attribute__((noinline)) int first(int x) { return twice(x) + twice(x + 1); }\n",
            "extern int first(int);\n\
             static inline __attribute__((always_inline)) int thrice(int x) { return first(x) * 3; }\n\
             __attribute__((noinline)) int second(int x) { return thrice(x) - thrice(x - 1); }\n",
            "extern int second(int);\n\
             int main(int argc, char **argv) { (void)argv; return second(argc); }\n",
        ];
        let run = |cmd: &mut std::process::Command| {
            let status = cmd.status().expect("cc and objcopy to build the fixture");
            assert!(status.success(), "{cmd:?}");
        };
        let mut objects = Vec::new();
        for (i, src) in units.iter().enumerate() {
            let c = dir.join(format!("u{i}.c"));
            let o = dir.join(format!("u{i}.o"));
            std::fs::write(&c, src).unwrap();
            run(std::process::Command::new("cc")
                .args(["-c", "-O2", "-g", &format!("-gdwarf-{dwarf}"), "-o"])
                .arg(&o)
                .arg(&c));
            if hidden && i == 1 {
                run(std::process::Command::new("objcopy")
                    .args(["--remove-section", ".debug_aranges"])
                    .arg(&o));
            }
            objects.push(o);
        }
        let out = dir.join("program");
        run(std::process::Command::new("cc")
            .arg("-o")
            .arg(&out)
            .args(&objects));
        run(std::process::Command::new("objcopy")
            .arg("--compress-debug-sections=zlib")
            .arg(&out));
        out
    }

    /// What the whole file answers for an address: frames, symbol.
    pub(crate) type Answer = (Vec<RawFrame>, Option<String>);

    /// The functions the fixture's own units define (the C runtime's, such
    /// as `_start`, have no debug information).
    const OWN: [&str; 4] = ["leaf", "first", "second", "main"];

    /// Every address of the fixture's own functions and the whole file's
    /// answers for them: frames and symbol.
    pub(crate) fn whole_answers(path: &Path) -> (Vec<u64>, Vec<Answer>) {
        let whole = addr2line::Loader::new(path).unwrap();
        let data = std::fs::read(path).unwrap();
        let obj = object::File::parse(&*data).unwrap();
        let mut probes = Vec::new();
        for sym in obj.symbols() {
            let own = sym.name().is_ok_and(|n| OWN.contains(&n));
            if sym.kind() == object::SymbolKind::Text && sym.size() > 0 && own {
                probes.extend(sym.address()..sym.address() + sym.size());
            }
        }
        let answers = probes
            .iter()
            .map(|&p| {
                let frames = whole.find_frames(p).map(collect).unwrap();
                (frames, whole.find_symbol(p).map(str::to_owned))
            })
            .collect();
        (probes, answers)
    }

    /// Every address of every function: frames and symbols as the whole
    /// file gives them, asked for all at once and one unit at a time,
    /// last unit first (so that units are added in front of others and
    /// placeholders are moved).
    #[test]
    fn a_partial_load_answers_as_the_whole_file() {
        for dwarf in [4, 5] {
            let path = compressed_program(dwarf, false);
            let (probes, expected) = whole_answers(&path);
            assert!(probes.len() > 50, "{} probes", probes.len());
            assert!(
                expected.iter().any(|(f, _)| f.len() > 1),
                "the fixture has inlined frames"
            );

            let mut at_once = Partial::open(&path).unwrap().expect("compressed");
            at_once.want(probes.iter().copied());
            let mut one_by_one = Partial::open(&path).unwrap().expect("compressed");
            for (i, &p) in probes.iter().enumerate().rev() {
                for part in [&mut at_once, &mut one_by_one] {
                    let got = (part.frames(p), part.symbol(p));
                    assert_eq!(got, expected[i], "DWARF {dwarf}, address {p:#x}");
                }
            }
            assert!(at_once.is_partial() && one_by_one.is_partial());
            assert_eq!(one_by_one.units.len(), 3, "DWARF {dwarf}");
            // A damaged or hostile `.debug_aranges`: a unit inside another,
            // a unit past the section's end. The whole file answers.
            for bad in [vec![0, 1], vec![usize::MAX - 2]] {
                let mut p = Partial::open(&path).unwrap().expect("compressed");
                p.ranges = bad.iter().map(|&u| (0, u64::MAX, u, u64::MAX)).collect();
                assert_eq!(p.frames(probes[0]), expected[0].0, "{bad:?}");
                assert!(!p.is_partial(), "{bad:?}");
            }
            let _ = std::fs::remove_dir_all(path.parent().unwrap());
        }
    }

    /// A unit that `.debug_aranges` leaves out is found by addr2line from
    /// its own ranges: an address no entry covers takes the whole file,
    /// whichever address comes first.
    #[test]
    fn an_address_outside_the_aranges_takes_the_whole_file() {
        let path = compressed_program(5, true);
        let (probes, expected) = whole_answers(&path);
        let hidden = probes
            .iter()
            .position(|&p| {
                let p0 = Partial::open(&path).unwrap().expect("compressed");
                !p0.units_of(p, &mut BTreeSet::new())
            })
            .expect("an address of the unit without aranges");
        assert!(
            expected[hidden]
                .0
                .iter()
                .any(|f| f.0.as_deref() == Some("second")),
            "{:?}",
            expected[hidden]
        );
        for order in [vec![hidden, 0], vec![0, hidden]] {
            let mut p = Partial::open(&path).unwrap().expect("compressed");
            for &i in &order {
                p.want([probes[i]]);
            }
            assert!(!p.is_partial(), "{order:?}");
            for (i, &probe) in probes.iter().enumerate() {
                assert_eq!((p.frames(probe), p.symbol(probe)), expected[i]);
            }
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// A unit whose abbreviations use a form that refers outside the unit
    /// is not given to addr2line alone.
    #[test]
    fn forms_that_refer_outside_a_unit_are_found() {
        // code 1, DW_TAG_compile_unit, children; DW_AT_name/DW_FORM_string;
        // DW_AT_const_value/DW_FORM_implicit_const -5; end; end of table.
        let inside = [1, 0x11, 1, 0x03, 0x08, 0x1c, 0x21, 0x7b, 0, 0, 0];
        let read = |b: &[u8]| {
            let mut r = gimli::EndianSlice::new(b, RunTimeEndian::Little);
            refers_outside(&mut r).unwrap()
        };
        assert!(!read(&inside));
        // DW_AT_abstract_origin/DW_FORM_ref_addr.
        let outside = [1, 0x11, 1, 0x03, 0x08, 0x31, 0x10, 0, 0, 0];
        assert!(read(&outside));
        // DW_AT_abstract_origin/DW_FORM_GNU_ref_alt (two-byte LEB128).
        let alt = [1, 0x11, 1, 0x31, 0xa0, 0x3e, 0, 0, 0];
        assert!(read(&alt));
    }
}
