//! Bitcoin Cash Node's published aserti3-2d vectors (see `data/README.md`), run through our
//! `asert_next_target` with Bitcoin Cash's parameters.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use chaincore::pow::{asert_next_target, AsertParams, Target};

const RUNS: [(&str, &str); 10] = [
    ("run01", include_str!("data/asert/run01")),
    ("run02", include_str!("data/asert/run02")),
    ("run03", include_str!("data/asert/run03")),
    ("run04", include_str!("data/asert/run04")),
    ("run05", include_str!("data/asert/run05")),
    ("run06", include_str!("data/asert/run06")),
    ("run07", include_str!("data/asert/run07")),
    ("run08", include_str!("data/asert/run08")),
    ("run09", include_str!("data/asert/run09")),
    ("run10", include_str!("data/asert/run10")),
];

fn header_value(text: &str, keys: &[&str]) -> String {
    text.lines()
        .filter_map(|l| l.strip_prefix("##"))
        .filter_map(|l| l.trim().split_once(':'))
        .find(|(k, _)| keys.contains(&k.trim()))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| panic!("missing header {keys:?}"))
}

fn bits(s: &str) -> u32 {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn bitcoin_cash_node_vectors_match() {
    let params = AsertParams {
        target_spacing: 600,
        half_life: 2 * 24 * 3600,
    };
    let pow_limit = Target::from_compact(0x1d00ffff).unwrap();
    let mut rows = 0;
    for (name, text) in RUNS {
        let anchor_height: u64 = header_value(text, &["anchor height"]).parse().unwrap();
        let anchor_parent_time: i64 =
            header_value(text, &["anchor parent time", "anchor ancestor time"])
                .parse()
                .unwrap();
        let anchor = Target::from_compact(bits(&header_value(text, &["anchor nBits"]))).unwrap();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let f: Vec<&str> = line.split_whitespace().collect();
            let height: u64 = f[1].parse().unwrap();
            let time: i64 = f[2].parse().unwrap();
            let next = asert_next_target(
                anchor,
                pow_limit,
                params,
                time - anchor_parent_time,
                (height - anchor_height) as i64,
            );
            assert_eq!(next.to_compact(), bits(f[3]), "{name}: {line}");
            rows += 1;
        }
    }
    assert_eq!(rows, 10 + 10 + 10 + 225 + 225 + 1000 + 1000 + 500 + 10 + 10);
}
