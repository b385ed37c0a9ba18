//! The pages' HTML (maud templates: compile-checked, every value escaped).

use chaincore::rpc::blockchain::ScriptPubKeyInfo;
use chaincore::{Amount, Script};
use maud::{html, Markup, DOCTYPE};

use super::{charts, AddressPage, BlockPage, BlockRow, ChartBlock, Status, TxPage};

/// A whole page: head, header with navigation and search, `body`.
fn layout(title: &str, network: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " \u{2014} ChainCore " (network) }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/static/style.css";
                script src="/static/live.js" {}
            }
            body {
                header {
                    a.brand href="/" { "ChainCore" }
                    span.network { (network) }
                    nav {
                        a href="/" { "Dashboard" }
                        a href="/blocks" { "Blocks" }
                    }
                    form.search action="/search" method="get" role="search" {
                        input type="search" name="q" placeholder="height, block hash, txid or address"
                            aria-label="Search" autocomplete="off" spellcheck="false";
                        button type="submit" { "Search" }
                    }
                }
                main { (body) }
                footer { "Read-only view of this node. " a href="/rest/chaininfo.json" { "REST" } " \u{b7} " a href="/metrics" { "metrics" } }
            }
        }
    }
    .into_string()
}

/// The error page for `status`.
pub fn error_page(status: http::StatusCode, title: &str, detail: &str) -> String {
    layout(
        title,
        "",
        html! {
            section.error {
                h1 { (status.as_u16()) " \u{2014} " (title) }
                p { (detail) }
                p { a href="/" { "Back to the dashboard" } }
            }
        },
    )
}

/// An amount in coins, from base units.
fn coins(units: i64) -> String {
    Amount::from_units(units).to_string()
}

/// Bytes as B, kB or MB.
fn bytes(n: usize) -> String {
    let n = n as f64;
    if n < 1_000.0 {
        format!("{n} B")
    } else if n < 1_000_000.0 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{:.2} MB", n / 1e6)
    }
}

/// A rate or count with an SI prefix (`12.3 k`); small values keep three significant digits.
fn si(v: f64, unit: &str) -> String {
    let prefixes = ["", "k", "M", "G", "T", "P", "E"];
    let mut v = v;
    let mut i = 0;
    while v.abs() >= 1_000.0 && i + 1 < prefixes.len() {
        v /= 1_000.0;
        i += 1;
    }
    format!("{} {}{unit}", number(v), prefixes[i])
}

/// A number with two decimals, or three significant digits when it is small (regtest's
/// difficulty is about 5e-10).
pub fn number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        "0".into()
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else if v.abs() >= 0.001 {
        format!("{v:.4}")
    } else {
        format!("{v:.2e}")
    }
}

/// A duration in seconds as `3d 4h`, `5h 6m`, `7m 8s` or `9s`.
pub fn duration(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (d, h, m, s) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{sign}{d}d {h}h")
    } else if h > 0 {
        format!("{sign}{h}h {m}m")
    } else if m > 0 {
        format!("{sign}{m}m {s}s")
    } else {
        format!("{sign}{s}s")
    }
}

/// How long ago a block was mined, or how far ahead of this clock its timestamp is (a
/// block may be up to two hours ahead).
pub fn age(secs: i64) -> String {
    if secs < 0 {
        format!("{} ahead", duration(-secs))
    } else {
        format!("{} ago", duration(secs))
    }
}

/// A Unix time as UTC `YYYY-MM-DD HH:MM:SS`.
fn utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The text of OP_RETURN data if it is printable UTF-8 (no control characters).
pub fn printable(data: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(data).ok()?;
    (!s.is_empty() && !s.chars().any(char::is_control)).then_some(s)
}

fn hash_link(kind: &str, id: &impl std::fmt::Display) -> Markup {
    html! { a.hash href={ "/" (kind) "/" (id) } { (id) } }
}

fn address_link(a: &str) -> Markup {
    html! { a.hash href={ "/address/" (a) } { (a) } }
}

/// An output script as a page shows it: its address, its OP_RETURN data (as text when it is
/// text) or its hex.
fn script(s: &ScriptPubKeyInfo) -> Markup {
    let data = hex::decode(&s.hex).ok().map(Script);
    let op_return = data.as_ref().and_then(|d| d.op_return_data());
    html! {
        @if let Some(a) = &s.address {
            (address_link(a))
        } @else if let Some(d) = op_return {
            span.opreturn {
                "OP_RETURN "
                @if let Some(text) = printable(d) {
                    q.optext { (text) }
                } @else {
                    code { (hex::encode(d)) }
                }
            }
        } @else {
            code { (s.kind) " " (s.hex) }
        }
    }
}

/// The dashboard: the live part, in a container the script refreshes.
pub fn dashboard(status: &Status, network: chaincore::Network) -> String {
    layout(
        "Dashboard",
        &network.to_string(),
        html! {
            div #live data-part="/part/status" data-height=(status.info.blocks) data-mempool=(status.mempool.size) {
                (live_part(status))
            }
        },
    )
}

/// The status and the charts (what `/part/status` answers and the script swaps in).
pub fn live_part(s: &Status) -> Markup {
    let i = &s.info;
    let tip_age = s.now as i64 - i64::from(i.time);
    let inbound = s.peers.iter().filter(|p| p.inbound).count();
    let outbound = s.peers.len() - inbound;
    let syncing = i.headers > u64::from(i.blocks);
    html! {
        section.cards #status {
            div.card { h2 { "Network" } p.big #network { (i.chain) } }
            div.card { h2 { "Height" } p.big #height { (i.blocks) } }
            div.card.wide {
                h2 { "Tip" }
                p { (hash_link("block", &i.bestblockhash)) }
                p { "mined " span.age #tip-age data-time=(i.time) { (age(tip_age)) } }
            }
            div.card {
                h2 { "Sync" }
                p.big #sync { (format!("{:.2}%", i.verificationprogress * 100.0)) }
                p { @if syncing { (i.blocks) " of " (i.headers) " blocks" } @else { "up to date" } }
            }
            div.card {
                h2 { "Peers" }
                p.big #peers { (s.peers.len()) }
                p { (inbound) " in \u{b7} " (outbound) " out" }
            }
            div.card {
                h2 { "Mempool" }
                p.big #mempool { (s.mempool.size) " tx" }
                p { (bytes(s.mempool.bytes)) " of " (bytes(s.mempool.maxmempool)) }
            }
            div.card {
                h2 { "Difficulty" }
                p.big #difficulty { (number(i.difficulty)) }
                p { "bits " (i.bits) }
            }
            div.card {
                h2 { "Hash rate" }
                p.big #hashrate { (si(s.hash_rate, "H/s")) }
                p { "estimate over 120 blocks" }
            }
            div.card {
                h2 { "Uptime" }
                p.big #uptime { (duration(s.uptime.as_secs() as i64)) }
            }
        }
        (charts(s))
        section.tables {
            div {
                h2 { "Mempool by fee rate" }
                table #fee-bands {
                    thead { tr { th { "units/byte" } th.num { "tx" } th.num { "bytes" } } }
                    tbody {
                        @for (n, (lo, count, size)) in s.bands.iter().enumerate() {
                            tr {
                                td { (lo) @if let Some(hi) = s.bands.get(n + 1) { "\u{2013}" (hi.0) } @else { "+" } }
                                td.num { (count) }
                                td.num { (bytes(*size)) }
                            }
                        }
                    }
                }
            }
            div {
                h2 { "Peers" }
                @if s.peers.is_empty() {
                    p.muted { "No peers connected." }
                } @else {
                    div.scroll {
                        table #peer-table {
                            thead { tr { th { "address" } th { "dir" } th.num { "ping" } th.num { "height" } th { "agent" } th.num { "connected" } } }
                            tbody {
                                @for p in &s.peers {
                                    tr {
                                        td { code { (p.addr) } }
                                        td { @if p.inbound { "in" } @else { "out" } }
                                        td.num { @match p.pingtime { Some(t) => (format!("{:.0} ms", t * 1000.0)), None => "\u{2014}" } }
                                        td.num { @if let Some(h) = p.startingheight { (h) } }
                                        td { @if let Some(v) = &p.subver { (v) } }
                                        td.num { (duration(s.now.saturating_sub(p.conntime) as i64)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn charts(s: &Status) -> Markup {
    let blocks: &[ChartBlock] = &s.recent;
    let height = |b: &ChartBlock| f64::from(b.height);
    let intervals: Vec<(f64, f64)> = blocks
        .windows(2)
        .map(|w| (height(&w[1]), f64::from(w[1].time) - f64::from(w[0].time)))
        .collect();
    let difficulty: Vec<(f64, f64)> = blocks.iter().map(|b| (height(b), b.difficulty)).collect();
    let txs: Vec<(f64, f64)> = blocks.iter().map(|b| (height(b), b.txs as f64)).collect();
    let sizes: Vec<(f64, f64)> = blocks.iter().map(|b| (height(b), b.size as f64)).collect();
    // Work per second over a trailing window of up to 10 blocks.
    let window = 10usize;
    let hash_rate: Vec<(f64, f64)> = (1..blocks.len())
        .map(|i| {
            let j = i.saturating_sub(window);
            let (a, b) = (&blocks[j], &blocks[i]);
            let secs = (f64::from(b.time) - f64::from(a.time)).max(1.0);
            (height(b), (b.chainwork - a.chainwork) / secs)
        })
        .collect();
    let mempool: Vec<(f64, f64)> = s
        .samples
        .iter()
        .map(|m| (m.time as f64, m.count as f64))
        .collect();
    let mut miners: Vec<(String, usize)> = Vec::new();
    for b in blocks {
        let who = b.miner.clone().unwrap_or_else(|| "(no address)".into());
        match miners.iter_mut().find(|m| m.0 == who) {
            Some(m) => m.1 += 1,
            None => miners.push((who, 1)),
        }
    }
    miners.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if miners.len() > 8 {
        let rest: usize = miners[7..].iter().map(|m| m.1).sum();
        miners.truncate(7);
        miners.push(("others".into(), rest));
    }
    let n = blocks.len();
    let at = |x: f64| format!("#{x:.0}");
    let clock = |x: f64| utc(x as i64).get(11..).unwrap_or_default().to_string();
    let secs = |y: f64| format!("{y:.0} s");
    let plain = |y: f64| format!("{y:.0}");
    let diff = |y: f64| number(y);
    let rate = |y: f64| si(y, "H/s");
    let size = |y: f64| bytes(y.max(0.0) as usize);
    html! {
        section.charts #charts data-blocks=(n) {
            (charts::line("chart-interval", &format!("Block interval, last {n} blocks"), &intervals, &at, &secs))
            (charts::line("chart-difficulty", "Difficulty", &difficulty, &at, &diff))
            (charts::line("chart-hashrate", "Hash rate estimate (10-block window)", &hash_rate, &at, &rate))
            (charts::line("chart-txs", "Transactions per block", &txs, &at, &plain))
            (charts::line("chart-size", "Block size", &sizes, &at, &size))
            (charts::line("chart-mempool", "Mempool transactions over time (UTC)", &mempool, &clock, &plain))
            (charts::shares("chart-miners", &format!("Who mined the last {n} blocks"), &miners, n))
        }
    }
}

/// The block list.
pub fn blocks(rows: &[BlockRow], tip: u32, now: u64) -> String {
    let top = rows.first().map_or(tip, |r| r.height);
    let bottom = rows.last().map_or(0, |r| r.height);
    layout(
        "Blocks",
        "",
        html! {
            h1 { "Blocks" }
            div.scroll {
                table #blocks {
                    thead { tr { th.num { "height" } th { "hash" } th { "age" } th.num { "tx" } th.num { "size" } th { "miner" } } }
                    tbody {
                        @for r in rows {
                            tr {
                                td.num { a href={ "/block/" (r.height) } { (r.height) } }
                                td { (hash_link("block", &r.hash)) }
                                td { span.age data-time=(r.time) { (age(now as i64 - i64::from(r.time))) } }
                                td.num { (r.txs) }
                                td.num { (bytes(r.size)) }
                                td { @if let Some(m) = &r.miner { (address_link(m)) } }
                            }
                        }
                    }
                }
            }
            p.pager {
                @if top < tip { a href={ "/blocks?from=" (tip.min(top + super::BLOCKS_PER_PAGE)) } { "\u{2190} newer" } " " }
                @if bottom > 0 { a href={ "/blocks?from=" (bottom - 1) } { "older \u{2192}" } }
            }
        },
    )
}

/// One block.
pub fn block(p: &BlockPage) -> String {
    let h = &p.info.header;
    layout(
        &format!("Block {}", h.height),
        "",
        html! {
            h1 { "Block " span #block-height { (h.height) } }
            dl.facts {
                dt { "Hash" } dd { code #block-hash { (h.hash) } }
                dt { "Confirmations" } dd { @if h.confirmations < 0 { "not on the active chain" } @else { (h.confirmations) } }
                dt { "Time" } dd { (utc(i64::from(h.time))) " UTC" }
                dt { "Previous" } dd { @if let Some(prev) = &h.previousblockhash { (hash_link("block", prev)) } @else { "none (genesis)" } }
                dt { "Next" } dd { @if let Some(next) = &h.nextblockhash { (hash_link("block", next)) } @else { "none yet" } }
                dt { "Miner" } dd { @if let Some(m) = &p.miner { (address_link(m)) } @else { "no address" } }
                dt { "Transactions" } dd { (p.total_txs) }
                dt { "Size" } dd { (bytes(p.info.size)) }
                @if let Some(s) = &p.stats {
                    dt { "Fees" } dd #block-fees { (coins(s.totalfee)) }
                    dt { "Subsidy" } dd { (coins(s.subsidy)) }
                    dt { "Outputs" } dd { (s.outs) }
                    dt { "Value moved" } dd { (coins(s.total_out)) " (outputs of the non-coinbase transactions)" }
                }
                dt { "Difficulty" } dd { (number(h.difficulty)) " (bits " (h.bits) ")" }
                dt { "Merkle root" } dd { code { (h.merkleroot) } }
                dt { "Version, nonce" } dd { (h.versionHex) ", " (h.nonce) }
                dt { "Chain work" } dd { code { (h.chainwork) } }
            }
            h2 { "Transactions" }
            div.scroll {
                table #block-txs {
                    thead { tr { th { "txid" } th.num { "in" } th.num { "out" } th.num { "value out" } th.num { "size" } } }
                    tbody {
                        @for t in &p.txs {
                            tr {
                                td { (hash_link("tx", &t.txid)) }
                                td.num { @if t.vin.first().is_some_and(|i| i.coinbase.is_some()) { "coinbase" } @else { (t.vin.len()) } }
                                td.num { (t.vout.len()) }
                                td.num { (coins(t.vout.iter().map(|o| o.value.to_units()).sum())) }
                                td.num { (bytes(t.size)) }
                            }
                        }
                    }
                }
            }
            @if p.total_txs > p.txs.len() {
                p.muted { "and " (p.total_txs - p.txs.len()) " more transactions (see " a href={ "/rest/block/" (h.hash) ".json" } { "REST" } ")" }
            }
        },
    )
}

/// One transaction.
pub fn tx(p: &TxPage) -> String {
    let t = &p.info;
    let coinbase = t.vin.first().is_some_and(|i| i.coinbase.is_some());
    let total_in: Option<i64> = p
        .spent
        .as_ref()
        .map(|c| c.iter().map(|c| c.output.value.to_units()).sum());
    let total_out: i64 = t.vout.iter().map(|o| o.value.to_units()).sum();
    layout(
        "Transaction",
        "",
        html! {
            h1 { "Transaction" }
            dl.facts {
                dt { "Txid" } dd { code #txid { (t.txid) } }
                dt { "Status" } dd {
                    @match (&t.blockhash, p.height) {
                        (Some(b), Some(h)) => { "in block " a href={ "/block/" (b) } { (h) } ", " (t.confirmations.unwrap_or(0)) " confirmations" }
                        _ => { "in the mempool, unconfirmed" }
                    }
                }
                @if let Some(time) = t.blocktime { dt { "Time" } dd { (utc(i64::from(time))) " UTC" } }
                dt { "Size" } dd { (t.size) " bytes" }
                dt { "Output total" } dd { (coins(total_out)) }
                @if let (Some(i), false) = (total_in, coinbase) {
                    dt { "Fee" } dd #tx-fee { (coins(i - total_out)) " (" (format!("{:.1}", (i - total_out) as f64 / t.size.max(1) as f64)) " units/byte)" }
                }
                dt { "Version, lock time" } dd { (t.version) ", " (t.locktime) }
            }
            div.io {
                div {
                    h2 { "Inputs" }
                    table #inputs {
                        tbody {
                            @for (n, i) in t.vin.iter().enumerate() {
                                tr {
                                    @if let Some(cb) = &i.coinbase {
                                        td { "coinbase " code { (cb) } }
                                        td.num {}
                                    } @else {
                                        @let coin = p.spent.as_ref().and_then(|c| c.get(n));
                                        td {
                                            @if let Some(c) = coin {
                                                @match chaincore::Address::from_script(&c.output.script_pubkey, p.network) {
                                                    Some(a) => (address_link(&a.to_string())),
                                                    None => code { (hex::encode(c.output.script_pubkey.as_bytes())) },
                                                }
                                                br;
                                            }
                                            @if let (Some(txid), Some(vout)) = (&i.txid, i.vout) {
                                                small { a.hash href={ "/tx/" (txid) } { (txid) ":" (vout) } }
                                            }
                                        }
                                        td.num { @if let Some(c) = coin { (coins(c.output.value.to_units())) } }
                                    }
                                }
                            }
                        }
                    }
                }
                div {
                    h2 { "Outputs" }
                    table #outputs {
                        tbody {
                            @for o in &t.vout {
                                tr {
                                    td { (o.n) ". " (script(&o.scriptPubKey)) }
                                    td.num { (coins(o.value.to_units())) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// One address.
pub fn address(p: &AddressPage) -> String {
    let b = &p.balance;
    layout(
        "Address",
        "",
        html! {
            h1 { "Address" }
            p { code #address { (p.address) } }
            dl.facts {
                dt { "Balance" } dd #balance { (coins(b.balance)) }
                dt { "Immature (coinbase)" } dd { (coins(b.immature)) }
                dt { "Unconfirmed change" } dd #unconfirmed { (coins(b.unconfirmed)) }
                dt { "Unspent outputs" } dd { (p.total_utxos) }
                dt { "Transactions" } dd { (p.total_history) }
            }
            h2 { "Unspent outputs" }
            div.scroll {
                table #utxos {
                    thead { tr { th { "outpoint" } th.num { "height" } th.num { "value" } } }
                    tbody {
                        @for u in &p.utxos {
                            tr {
                                td { a.hash href={ "/tx/" (u.txid) } { (u.txid) ":" (u.outputIndex) } @if u.coinbase { " (coinbase)" } @if u.spentInMempool { " (spent in mempool)" } }
                                td.num { @match u.height { Some(h) => a href={ "/block/" (h) } { (h) }, None => "mempool" } }
                                td.num { (coins(u.satoshis)) }
                            }
                        }
                    }
                }
            }
            @if p.total_utxos > p.utxos.len() { p.muted { "showing the newest " (p.utxos.len()) } }
            h2 { "History (newest first)" }
            ul.history #history {
                @for t in &p.history { li { (hash_link("tx", t)) } }
            }
            @if p.total_history > p.history.len() { p.muted { "showing the newest " (p.history.len()) } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_764_720_000), "2025-12-03 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(61), "1m 1s");
        assert_eq!(duration(3_600 * 25), "1d 1h");
        assert_eq!(duration(-5), "-5s");
        assert_eq!(age(5), "5s ago");
        assert_eq!(age(-65), "1m 5s ahead");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.5 kB");
        assert_eq!(si(1_234_567.0, "H/s"), "1.23 MH/s");
        assert_eq!(si(0.000_21, "H/s"), "2.10e-4 H/s");
        assert_eq!(number(4.656542373906925e-10), "4.66e-10");
        assert_eq!(number(0.5), "0.5000");
        assert_eq!(number(0.0), "0");
        assert_eq!(coins(150_000_000), "1.50000000");
        assert_eq!(printable(b"hello, world"), Some("hello, world"));
        assert_eq!(printable(b"\x00\x01"), None);
        assert_eq!(printable(&[0xff, 0xfe]), None);
        assert_eq!(printable(b""), None);
    }

    #[test]
    fn op_return_text_is_shown_escaped() {
        let s = Script::new_op_return(b"<b>hi</b>").unwrap();
        let info = ScriptPubKeyInfo {
            hex: hex::encode(s.as_bytes()),
            kind: "nulldata".into(),
            address: None,
        };
        let out = script(&info).into_string();
        assert!(out.contains("&lt;b&gt;hi&lt;/b&gt;"), "{out}");
        let bin = Script::new_op_return(&[0, 1, 2]).unwrap();
        let info = ScriptPubKeyInfo {
            hex: hex::encode(bin.as_bytes()),
            kind: "nulldata".into(),
            address: None,
        };
        assert!(script(&info).into_string().contains("000102"));
    }
}
