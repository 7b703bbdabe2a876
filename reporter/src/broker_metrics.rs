//! The broker's own metrics, scraped from its Prometheus endpoint (the JMX
//! exporter Java agent most deployments already run). Names differ between
//! exporter configs, so series are matched loosely, case-insensitively:
//!
//! - `…brokertopicmetrics…bytesin…{topic=…}` / `…bytesout…` / `…messagesin…`:
//!   per-topic counters (rates derived between scrapes); series without a
//!   `topic` label are the broker totals;
//! - `…underreplicatedpartitions…`: gauge;
//! - `…requesthandleravgidlepercent…`: request-handler idle ratio (0..1);
//! - `…requestmetrics…totaltimems…{request=…, quantile="0.99"}`: p99 request
//!   latency per request type (ms).
//!
//! A failed scrape or an unparseable line is a warning; the snapshot is
//! still served.

use std::collections::HashMap;
use std::time::Duration;

/// One scrape, reduced to what Guardian uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// topic → (bytes in, bytes out, messages in) counters.
    pub topics: HashMap<String, [f64; 3]>,
    /// Broker totals (series without a topic label).
    pub total: [f64; 3],
    pub under_replicated: Option<f64>,
    pub handler_idle: Option<f64>,
    /// request type → p99 total time (ms).
    pub request_p99_ms: HashMap<String, f64>,
}

fn labels(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 1..];
        let Some(after) = after.strip_prefix('"') else {
            break;
        };
        let Some(end) = after.find('"') else {
            break;
        };
        out.insert(key, after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
}

/// Parses the Prometheus text exposition format.
pub fn parse(text: &str, warnings: &mut Vec<String>) -> Scrape {
    let mut s = Scrape::default();
    let mut bad = 0usize;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // `name{labels} value [timestamp]` or `name value [timestamp]`.
        let split = line.rfind('}').map_or_else(
            || line.find(char::is_whitespace).unwrap_or(line.len()),
            |i| i + 1,
        );
        let (series, rest) = line.split_at(split);
        let Some(value) = rest.split_whitespace().next() else {
            bad += 1;
            continue;
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            bad += 1;
            continue;
        };
        let (name, lbl) = match series.split_once('{') {
            Some((n, l)) => (n.trim(), labels(l.trim_end_matches('}'))),
            None => (series.trim(), HashMap::new()),
        };
        let n = name.to_ascii_lowercase();
        if n.contains("brokertopicmetrics") {
            let slot = if n.contains("bytesin") {
                0
            } else if n.contains("bytesout") {
                1
            } else if n.contains("messagesin") {
                2
            } else {
                continue;
            };
            // Only the counter, not the exporter's derived rates.
            if !(n.ends_with("_total") || n.ends_with("_count")) {
                continue;
            }
            match lbl.get("topic") {
                Some(t) => s.topics.entry(t.clone()).or_default()[slot] += v,
                None => s.total[slot] += v,
            }
        } else if n.contains("underreplicatedpartitions") {
            s.under_replicated = Some(v);
        } else if n.contains("requesthandleravgidlepercent") {
            if n.ends_with("_total") || n.ends_with("_count") {
                continue; // a counter of the meter, not the ratio
            }
            s.handler_idle = Some(v);
        } else if n.contains("requestmetrics") && n.contains("totaltimems") {
            if let (Some(r), Some("0.99")) =
                (lbl.get("request"), lbl.get("quantile").map(String::as_str))
            {
                s.request_p99_ms.insert(r.clone(), v);
            }
        }
    }
    if bad > 0 {
        warnings.push(format!("broker metrics: {bad} unparseable line(s)"));
    }
    s
}

/// GETs `url` (plain HTTP) within `timeout`.
pub fn scrape(url: &str, timeout: Duration, warnings: &mut Vec<String>) -> Option<Scrape> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .new_agent();
    match agent.get(url).call() {
        Ok(mut r) => match r.body_mut().read_to_string() {
            Ok(text) => Some(parse(&text, warnings)),
            Err(e) => {
                warnings.push(format!("broker metrics {url}: {e}"));
                None
            }
        },
        Err(e) => {
            warnings.push(format!("broker metrics {url}: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_jmx_exporter_output() {
        let text = r#"
# HELP kafka_server_brokertopicmetrics_bytesin_total Attribute exposed for management
# TYPE kafka_server_brokertopicmetrics_bytesin_total counter
kafka_server_brokertopicmetrics_bytesin_total{topic="orders",} 1000.0
kafka_server_brokertopicmetrics_bytesin_total 5000.0
kafka_server_BrokerTopicMetrics_BytesOutPerSec_Count{topic="orders"} 300
kafka_server_brokertopicmetrics_messagesin_total{topic="orders",} 10.0 1700000000000
kafka_server_brokertopicmetrics_bytesin_oneminuterate{topic="orders",} 99.0
kafka_server_replicamanager_underreplicatedpartitions 2.0
kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent 0.75
kafka_network_requestmetrics_totaltimems{request="Produce",quantile="0.99",} 12.5
kafka_network_requestmetrics_totaltimems{request="Produce",quantile="0.50",} 1.5
garbage line without value x
"#;
        let mut w = Vec::new();
        let s = parse(text, &mut w);
        assert_eq!(s.topics["orders"], [1000.0, 300.0, 10.0]);
        assert_eq!(s.total[0], 5000.0);
        assert_eq!(s.under_replicated, Some(2.0));
        assert_eq!(s.handler_idle, Some(0.75));
        assert_eq!(s.request_p99_ms["Produce"], 12.5);
        assert_eq!(w.len(), 1, "{w:?}");
    }
}
