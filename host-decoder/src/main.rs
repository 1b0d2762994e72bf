//! `memscope-decode`: see `memscope-decode --help` and the crate docs.

use clap::Parser;

fn main() {
    let cli = memscope_decode::cli::Cli::parse();
    std::process::exit(memscope_decode::cli::main_with(cli));
}
