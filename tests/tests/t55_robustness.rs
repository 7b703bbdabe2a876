//! The bounded robustness run of CI: every fault the runner knows, each
//! injected at least once under the mixed load, with the recorded history
//! checked (`guardian_tests::robustness`; long runs: the `robustness`
//! binary, BENCHMARKS.md's reliability section). Fixed seed.

use std::time::Duration;

use guardian_tests::robustness::{run, table, Fault, RunConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t55_every_fault_under_load_keeps_the_history_linearizable() {
    let cfg = RunConfig {
        faults: Fault::ALL.to_vec(),
        secs_per_fault: 4,
        seed: 55,
        hold: Duration::from_millis(1200),
    };
    let reports = run(&cfg).await;
    let t = table(&reports);
    println!("{t}");
    assert_eq!(reports.len(), Fault::ALL.len());
    for r in &reports {
        assert!(r.runs >= 1, "{} never injected\n{t}", r.fault);
        // Load ran in every phase: reads and writes were answered.
        assert!(r.ops > 20, "{}: only {} operations\n{t}", r.fault, r.ops);
        assert!(r.violations.is_empty(), "{}: violations\n{t}", r.fault);
    }
}
