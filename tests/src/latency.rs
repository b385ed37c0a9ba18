//! Latency samples for the benchmarks: timed REST and page GETs, and a p50/p99/max line.

use std::time::{Duration, Instant};

use crate::Node;

/// Prints `name`, the count and the p50, p99 and max of `samples` in milliseconds.
pub fn summary(name: &str, mut samples: Vec<Duration>) {
    if samples.is_empty() {
        println!("{name:<34} n=0");
        return;
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "{name:<34} n={:<5} p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// Times one `GET path` on `node`; panics unless it answers 200.
pub fn timed(node: &Node, path: &str) -> Duration {
    let start = Instant::now();
    let (status, body) = node.get(path).expect("the node answers");
    let took = start.elapsed();
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    took
}
