//! A small but realistic program to try memscope on: it generates a CSV of
//! weather readings, parses it, builds a per-city cache, fans work out to a
//! pool of 4 worker threads over channels, and leaks one block on purpose.
//!
//! ```text
//! MEMSCOPE_OUT=trace.bin cargo run --release -p desktop-example --bin desktop
//! memscope-decode trace.bin
//! ```
//!
//! (`cargo xtask demo` does both.) With `RUSTFLAGS="-C force-frame-pointers=yes"`
//! the report's call stacks go all the way up to `main`.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static GLOBAL: memscope_std::MemScope = memscope_std::MemScope::system();

/// One parsed line of the CSV.
struct Reading {
    station: u32,
    city: String,
    celsius: f64,
    note: String,
}

const CITIES: [&str; 12] = [
    "Amsterdam",
    "Berlin",
    "Cairo",
    "Delhi",
    "Edinburgh",
    "Fortaleza",
    "Geneva",
    "Hanoi",
    "Istanbul",
    "Jakarta",
    "Kyoto",
    "Lima",
];

/// A deterministic CSV of `rows` readings.
fn generate_csv(rows: usize) -> String {
    memscope_std::track_scope!("generate");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut csv = String::from("station,city,celsius,note\n");
    for i in 0..rows {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let city = CITIES[(seed % CITIES.len() as u64) as usize];
        let tenths = (seed >> 20) % 500;
        let note = if i % 7 == 0 { "gusty wind" } else { "" };
        csv.push_str(&format!(
            "{},{city},{}.{},{note}\n",
            seed % 1000,
            tenths / 10,
            tenths % 10
        ));
    }
    csv
}

fn parse(csv: &str) -> Vec<Reading> {
    memscope_std::track_scope!("parse");
    csv.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split(',');
            Some(Reading {
                station: f.next()?.parse().ok()?,
                city: f.next()?.to_string(),
                celsius: f.next()?.parse().ok()?,
                note: f.next().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// Per-city temperatures: the program's cache.
fn build_cache(readings: &[Reading]) -> HashMap<String, Vec<f64>> {
    memscope_std::track_scope!("cache");
    let mut cache: HashMap<String, Vec<f64>> = HashMap::new();
    for r in readings {
        cache.entry(r.city.clone()).or_default().push(r.celsius);
    }
    cache
}

/// What a worker reports for one city.
struct Summary {
    city: String,
    mean: f64,
    median: f64,
    histogram: BTreeMap<i64, usize>,
}

fn summarize(city: String, temps: Vec<f64>) -> Summary {
    let mut sorted = temps;
    sorted.sort_by(|a, b| a.total_cmp(b));
    let mean = sorted.iter().sum::<f64>() / sorted.len().max(1) as f64;
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let mut histogram = BTreeMap::new();
    for t in &sorted {
        *histogram.entry((*t / 5.0) as i64).or_insert(0) += 1;
    }
    Summary {
        city,
        mean,
        median,
        histogram,
    }
}

/// Four workers take (city, temperatures) jobs from a shared channel and send
/// summaries back.
fn run_pool(cache: &HashMap<String, Vec<f64>>) -> Vec<Summary> {
    memscope_std::track_scope!("pool");
    let (job_tx, job_rx) = mpsc::channel::<(String, Vec<f64>)>();
    let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
    let (result_tx, result_rx) = mpsc::channel::<Summary>();
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let jobs = job_rx.clone();
            let results = result_tx.clone();
            thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    memscope_std::track_scope!("summarize");
                    loop {
                        let job = jobs.lock().unwrap().recv();
                        let Ok((city, temps)) = job else { break };
                        results.send(summarize(city, temps)).unwrap();
                    }
                })
                .unwrap()
        })
        .collect();
    drop(result_tx);
    for round in 0..20 {
        for (city, temps) in cache {
            // Each round works on a copy, as a real job queue would.
            job_tx
                .send((format!("{city}#{round}"), temps.clone()))
                .unwrap();
        }
    }
    drop(job_tx);
    let summaries: Vec<Summary> = result_rx.iter().collect();
    for w in workers {
        w.join().unwrap();
    }
    summaries
}

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);

    // A configuration string kept for the whole run and never freed: the
    // deliberate leak the report should point at.
    let config: &'static str =
        Box::leak(format!("rows={rows};cities={}", CITIES.len()).into_boxed_str());

    let csv = generate_csv(rows);
    memscope_std::track!(csv);
    let readings = parse(&csv);
    memscope_std::track!(readings);
    drop(csv);

    let cache = build_cache(&readings);
    memscope_std::track!(cache);
    let notes = readings.iter().filter(|r| !r.note.is_empty()).count();
    let stations: u32 = readings.iter().map(|r| r.station).max().unwrap_or(0);
    drop(readings);

    let summaries = run_pool(&cache);
    let hottest = summaries
        .iter()
        .max_by(|a, b| a.mean.total_cmp(&b.mean))
        .map(|s| {
            format!(
                "{} (mean {:.1}, median {:.1}, {} buckets)",
                s.city,
                s.mean,
                s.median,
                s.histogram.len()
            )
        })
        .unwrap_or_default();

    let s = memscope_std::stats();
    println!("config: {config}");
    println!(
        "{} readings from {} stations, {notes} with notes, {} cities",
        rows,
        stations + 1,
        cache.len()
    );
    println!("{} summaries; hottest: {hottest}", summaries.len());
    println!(
        "heap: {} allocations, {} frees, {} reallocs, {} bytes live now, peak seen {} bytes",
        s.allocs, s.deallocs, s.reallocs, s.current_bytes, s.peak_bytes
    );
}
