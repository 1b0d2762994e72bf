//! The churn workload on the system allocator (baseline for `churn`).
include!("churn_workload.inc");

fn main() {
    run_churn("system");
}
