//! memscope-decode on real traces written by memscope-std (the `std_child`
//! program): the decoder proves them complete, finds no heap error, agrees
//! with the child's own counts per scope, and symbolizes the recorded
//! modules down to the child's source.

use memscope_decode::cli::{analyse, Common};
use memscope_decode::source::Source;
use std::process::Command;

fn record(args: &[&str], stacks: &str) -> (std::path::PathBuf, Vec<[u64; 3]>) {
    let dir = std::env::temp_dir().join(format!("memscope-decode-std-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-{stacks}.bin", args.join("-")));
    let o = Command::new(env!("CARGO_BIN_EXE_std_child"))
        .args(args)
        .env("MEMSCOPE_OUT", &path)
        .env("MEMSCOPE_STACKS", stacks)
        .output()
        .unwrap();
    assert!(o.status.success(), "child: {o:?}");
    let counted = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("counted "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            [f[1], f[2], f[3]].map(|x| x.parse::<u64>().unwrap())
        })
        .collect();
    (path, counted)
}

#[test]
fn a_memscope_std_trace_decodes_complete_and_symbolized() {
    let (path, counted) = record(&["threads", "4"], "16");
    assert!(!counted.is_empty());
    let src = Source::open(&path).unwrap();
    let common = Common {
        top: 50,
        short_lived: 1_000_000,
        no_progress: true,
        ..Common::default()
    };
    let (_, rep, _) = analyse(src, &common).expect("decodes");
    let _ = std::fs::remove_file(&path);
    // The scratch directory too (only when empty: a test running beside this
    // one in the same process may still use it).
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir);
    }
    let s = &rep.summary;
    if s.lost_events == 0 {
        assert!(s.complete, "{:?}", s.incomplete_reasons);
    }
    // With events lost (a writer starved on a loaded machine), frees and
    // allocations are missing and the decoder rightly sees errors.
    if s.lost_events == 0 {
        assert_eq!(rep.errors.total, 0, "{:?}", rep.errors.examples);
    }
    assert_eq!(
        rep.integrity.late_events, 0,
        "merge released events too early"
    );
    assert!(s.threads >= 4, "{} threads", s.threads);
    assert_eq!(rep.integrity.damaged_spans, 0);
    // The child counted the calls it received inside its "measured" scopes.
    if s.lost_events == 0 {
        let measured = rep
            .scopes
            .iter()
            .find(|x| x.name == "measured")
            .expect("a measured scope");
        let allocs: u64 = counted.iter().map(|c| c[0]).sum();
        assert_eq!(
            measured.allocations, allocs,
            "allocations inside the measured scopes"
        );
        assert_eq!(measured.entered, counted.len() as u64);
    }
    // Recorded modules resolve to the child's own source.
    let symbolized = rep
        .stacks
        .values()
        .flat_map(|st| st.frames.iter())
        .any(|f| {
            f.file
                .as_deref()
                .is_some_and(|p| p.ends_with("std_child.rs"))
        });
    assert!(
        symbolized,
        "no frame in std_child.rs: {:?}",
        rep.symbolization
    );
}
