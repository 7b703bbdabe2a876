//! `guardian plan …` as operators run it: the real binary, JSON out, a
//! generated scenario and a hand-edited cluster file, and clear errors.

use guardian_tests::cli;
use serde_json::Value;

const RESOURCES: [&str; 8] = [
    "disk_bytes",
    "disk_write",
    "disk_read",
    "nw_in",
    "nw_out",
    "cpu",
    "leaders",
    "replicas",
];

fn json(args: &[&str]) -> Value {
    let (code, out, err) = cli(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[test]
fn t80_simulate_scenario_json_has_the_documented_fields() {
    let v = json(&[
        "plan",
        "simulate",
        "--scenario",
        "small",
        "--seed",
        "3",
        "-o",
        "json",
    ]);
    for k in [
        "plan_ms",
        "moves",
        "leader_moves",
        "bytes_moved",
        "bytes_lower_bound",
        "hard_violations",
    ] {
        assert!(!v[k].is_null(), "{k} missing: {v}");
    }
    assert_eq!(v["hard_violations"].as_array().unwrap().len(), 0);
    // Every resource ends within its reachable goal (`feasibility`: the
    // goal, or more where one replica outweighs a unit's share) and no worse
    // than it started.
    for r in RESOURCES {
        let before = v["before"][r]["max_over_mean"].as_f64().unwrap();
        let after = v["after"][r]["max_over_mean"].as_f64().unwrap();
        let reachable = v["feasibility"][r].as_f64().unwrap();
        assert!(
            after <= reachable + 1e-9 && after <= before + 1e-9,
            "{r}: {before} → {after}, reachable {reachable}"
        );
    }
    assert!(v["after"]["disk_bytes"]["max_over_mean"].as_f64().unwrap() <= 1.05 + 1e-9);
    assert!(v["moves"].as_u64().unwrap() > 0);
    let ratio = v["bytes_moved"].as_f64().unwrap() / v["bytes_lower_bound"].as_f64().unwrap();
    assert!((1.0..2.0).contains(&ratio), "{ratio}");
    // Same seed, same plan.
    let again = json(&[
        "plan",
        "simulate",
        "--scenario",
        "small",
        "--seed",
        "3",
        "-o",
        "json",
    ]);
    for k in [
        "moves",
        "leader_moves",
        "bytes_moved",
        "bytes_lower_bound",
        "after",
    ] {
        assert_eq!(v[k], again[k], "{k}");
    }
}

#[test]
fn t81_from_file_plans_an_operators_cluster() {
    let (code, spec, err) = cli(&["plan", "generate", "--scenario", "small", "--seed", "5"]);
    assert_eq!(code, 0, "{err}");
    let mut cluster: Value = serde_json::from_str(&spec).unwrap();
    // The operator replaces broker 1: a new empty broker 13 in the same
    // rack and pool, broker 1 marked for removal.
    let mut new = cluster["brokers"][0].clone();
    new["id"] = 13.into();
    for d in new["disks"].as_array_mut().unwrap() {
        d["write_median"] = 0.into();
        d["read_median"] = 0.into();
    }
    cluster["brokers"].as_array_mut().unwrap().push(new);
    cluster["brokers"][0]["decommission"] = Value::Bool(true);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.json");
    std::fs::write(&file, cluster.to_string()).unwrap();
    let path = file.to_str().unwrap();
    let v = json(&[
        "plan",
        "simulate",
        "--from-file",
        path,
        "--actions",
        "-o",
        "json",
    ]);
    assert!(v["hard_violations_before"].as_u64().unwrap() > 0);
    assert_eq!(
        v["hard_violations"].as_array().unwrap().len(),
        0,
        "{}",
        v["hard_violations"]
    );
    // Replicas leave the removed broker, in Kafka's terms.
    let moved_off: usize = v["plan"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["actions"].as_array().unwrap().iter())
        .filter(|a| a["kind"] == "move" && a["from"]["broker"] == 1)
        .count();
    assert!(moved_off > 0);
    // A table for humans.
    let (code, out, err) = cli(&["plan", "simulate", "--from-file", path]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("disk_bytes") && out.contains("lower bound"),
        "{out}"
    );

    // Placement and throttles on the same file.
    let topic = r#"{"name":"new","partitions":12,"replication_factor":3,"bytes_in_per_partition":1e6,"size_per_partition":1000000000,"pool":"tenant-0"}"#;
    let v = json(&[
        "plan",
        "place",
        "--from-file",
        path,
        "--topic",
        topic,
        "-o",
        "json",
    ]);
    // 12 partitions × 3 replicas, each on a distinct broker of a distinct
    // rack, all in the tenant's pool, on a log dir that broker has.
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 12, "{v}");
    let broker = |id: &Value| {
        cluster["brokers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == *id)
            .unwrap_or_else(|| panic!("placed on unknown broker {id}"))
            .clone()
    };
    for p in parts {
        let reps = p.as_array().unwrap();
        assert_eq!(reps.len(), 3, "{p}");
        let mut racks = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeSet::new();
        for r in reps {
            let b = broker(&r["broker"]);
            assert_eq!(b["pool"], "tenant-0", "{p}");
            assert!(b["alive"] != false && b["decommission"] != true, "{p}");
            assert!(
                b["disks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d["dir"] == r["dir"]),
                "{p}"
            );
            racks.insert(b["rack"].to_string());
            ids.insert(r["broker"].to_string());
        }
        assert_eq!((ids.len(), racks.len()), (3, 3), "{p}");
    }
    let v = json(&[
        "plan",
        "throttle",
        "--from-file",
        path,
        "--now-ms",
        "1000",
        "-o",
        "json",
    ]);
    // One residency per broker: T × (inserts + cold reads) = page cache,
    // at the planner's fixed point (within 5 %).
    let brokers = v["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 13, "{v}");
    for b in brokers {
        let f = |k: &str| b[k].as_f64().unwrap();
        let inflow = f("insert_rate") + f("cold_read_rate");
        match b["residency_s"].as_f64() {
            Some(t) => {
                let ratio = t * inflow / f("page_cache_bytes");
                assert!((0.99..1.05).contains(&ratio), "{b}: {ratio}");
            }
            // Nothing flows into the cache (the new, empty broker 13): data
            // stays forever, which JSON writes as null.
            None => assert_eq!((b["broker"].as_i64(), inflow), (Some(13), 0.0), "{b}"),
        }
    }
    // Every cold reader named is one whose lag is beyond what the cache holds.
    let mut cold = 0;
    for d in v["disks"].as_array().unwrap() {
        for a in d["abnormal"].as_array().unwrap() {
            if a["behaviour"] != "client_read" {
                continue;
            }
            let cause = a["cause"].as_str().unwrap();
            let gb: Vec<f64> = cause
                .split_whitespace()
                .filter_map(|w| w.parse::<f64>().ok())
                .collect();
            assert!(gb.len() >= 2 && gb[0] > gb[1], "{cause}");
            cold += 1;
        }
    }
    assert!(cold > 0, "the scenario has lagging groups: {v}");
}

#[test]
fn t82_bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        r#"{"brokers":[{"id":1,"nw_in_capacity":1,"nw_out_capacity":1,"cpu_capacity":1,"disks":[{"dir":"/d","capacity_bytes":10}]}],
            "topics":[{"name":"t","partitions":[{"partition":0,"replicas":[{"broker":2,"dir":"/d"}],"size_bytes":1,"bytes_in":0}]}]}"#,
    )
    .unwrap();
    let (code, _, err) = cli(&["plan", "simulate", "--from-file", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("topics[0].partitions[0].replicas[0].broker: unknown broker 2"),
        "{err}"
    );
    let (code, _, err) = cli(&["plan", "simulate", "--scenario", "nope"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown scenario") && err.contains("g1k"),
        "{err}"
    );
    let (code, _, err) = cli(&["plan", "simulate", "--scenario", "small", "--goal", "cpu=x"]);
    assert_eq!(code, 2);
    assert!(err.contains("--goal cpu=x"), "{err}");
    let (code, _, err) = cli(&["plan", "simulate", "--from-file", "/nonexistent.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.json"), "{err}");
}
