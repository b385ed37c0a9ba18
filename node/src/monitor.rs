//! `chaincore-node monitor`: polls several nodes over JSON-RPC and shows them side by side — a
//! terminal table redrawn in place (ratatui), or JSON for scripts — flagging nodes that are
//! unreachable, behind the most-work tip, or on another branch (a fork).
//!
//! Each poll asks every node, at once, for `getblockchaininfo`, `getpeerinfo`, `getmempoolinfo`
//! and `getmininginfo`. The node with the most chain work is the reference; a node on another
//! tip is *behind* if its tip is the reference's block at that height (one `getblockhash` to the
//! reference) and on a *fork* otherwise.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use chaincore::rpc::{http_client, BlockchainClient, MempoolClient, MiningClient, NetClient};
use chaincore::BlockHash;
use jsonrpsee_http_client::HttpClient;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::Constraint;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Row, Table};
use serde::Serialize;

/// How long one RPC call may take before the node counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One node to watch: its URL as shown (no credentials) and a client.
pub struct Target {
    /// The URL without user and password.
    pub url: String,
    client: HttpClient,
}

impl Target {
    /// A target for `url` (`http://[user:password@]host:port`). Credentials come from the URL's
    /// user and password if it has them, else from `cookie` (a node's `.cookie` file).
    pub fn new(url: &str, cookie: Option<&PathBuf>) -> anyhow::Result<Target> {
        let mut parsed =
            url::Url::parse(url).with_context(|| format!("--rpc '{url}' is not a URL"))?;
        if parsed.scheme() != "http" {
            bail!("--rpc '{url}': only http:// URLs are supported");
        }
        let credentials = if !parsed.username().is_empty() {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let user = decode(parsed.username());
            let password = decode(parsed.password().unwrap_or(""));
            // Cannot fail for an http URL with a host.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            format!("{user}:{password}")
        } else if let Some(path) = cookie {
            std::fs::read_to_string(path)
                .map(|c| c.trim().to_string())
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read the cookie {} for --rpc '{url}' ({e}): is that node \
                         running? or put user:password in the URL",
                        path.display()
                    )
                })?
        } else {
            bail!(
                "no credentials for --rpc '{url}': put user:password in the URL \
                 (http://user:password@host:port) or give --rpccookiefile"
            );
        };
        let shown = parsed.as_str().trim_end_matches('/').to_string();
        let client =
            http_client(&shown, &credentials, CALL_TIMEOUT).map_err(|e| anyhow::anyhow!(e))?;
        Ok(Target { url: shown, client })
    }
}

/// Where a node stands against the most-work tip of the nodes polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// On the most-work tip.
    Ok,
    /// On the most-work chain, some blocks behind its tip.
    Behind,
    /// On another branch: its tip is not on the most-work chain.
    Fork,
    /// Its tip differs but the reference node could not be asked where it stands.
    Unknown,
    /// Did not answer (down, refused the credentials, or too slow).
    Unreachable,
}

/// What a node reported.
#[derive(Debug, Clone, Serialize)]
pub struct Reading {
    /// Network name.
    pub chain: String,
    /// Height of its best block.
    pub height: u32,
    /// Its best block.
    pub tip: BlockHash,
    /// Seconds since the best block's timestamp.
    pub tip_age_secs: i64,
    /// Total work of its best chain, 64 hex digits.
    pub chainwork: String,
    /// Share of the known chain verified.
    pub verification_progress: f64,
    /// Inbound peers.
    pub peers_in: usize,
    /// Outbound peers.
    pub peers_out: usize,
    /// Transactions in its mempool.
    pub mempool_txs: usize,
    /// Serialized bytes of those transactions.
    pub mempool_bytes: usize,
    /// Its estimate of the network's hash rate (hashes per second).
    pub network_hashps: f64,
}

/// One node's line in a report.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    /// The node's URL (no credentials).
    pub url: String,
    /// Where it stands.
    pub status: Status,
    /// Blocks behind the most-work tip (for `behind`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behind_by: Option<u32>,
    /// Why it is unreachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it reported (absent when unreachable).
    #[serde(flatten)]
    pub reading: Option<Reading>,
}

/// One poll of every node.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Unix time of the poll.
    pub time: u64,
    /// True if any node is on another branch than the most-work tip.
    pub fork: bool,
    /// Nodes that did not answer.
    pub unreachable: usize,
    /// The most-work tip among the nodes that answered.
    pub best_tip: Option<BlockHash>,
    /// Its height.
    pub best_height: Option<u32>,
    /// The nodes, in the order given.
    pub nodes: Vec<NodeReport>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Asks one node for everything a row shows.
async fn read(client: &HttpClient) -> Result<Reading, String> {
    let (info, peers, pool, mining) = tokio::join!(
        client.get_blockchain_info(),
        client.get_peer_info(),
        client.get_mempool_info(),
        client.get_mining_info(),
    );
    let info = info.map_err(|e| e.to_string())?;
    let peers = peers.map_err(|e| e.to_string())?;
    let pool = pool.map_err(|e| e.to_string())?;
    let mining = mining.map_err(|e| e.to_string())?;
    let inbound = peers.iter().filter(|p| p.inbound).count();
    Ok(Reading {
        chain: info.chain,
        height: info.blocks,
        tip: info.bestblockhash,
        tip_age_secs: unix_now() as i64 - i64::from(info.time),
        chainwork: info.chainwork,
        verification_progress: info.verificationprogress,
        peers_in: inbound,
        peers_out: peers.len() - inbound,
        mempool_txs: pool.size,
        mempool_bytes: pool.bytes,
        network_hashps: mining.networkhashps,
    })
}

/// Polls every target at once and classifies each against the most-work tip.
pub async fn poll(targets: &[Target]) -> Report {
    let mut set = tokio::task::JoinSet::new();
    for (i, t) in targets.iter().enumerate() {
        let client = t.client.clone();
        set.spawn(async move { (i, read(&client).await) });
    }
    let mut readings: Vec<Result<Reading, String>> =
        (0..targets.len()).map(|_| Err(String::new())).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined {
            readings[i] = r;
        }
    }
    // The reference: most chain work (fixed-width hex compares as numbers), first on a tie.
    let best = readings
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().ok().map(|r| (i, r)))
        .fold(None::<(usize, &Reading)>, |acc, (i, r)| match acc {
            Some((_, b)) if b.chainwork >= r.chainwork => acc,
            _ => Some((i, r)),
        })
        .map(|(i, r)| (i, r.tip, r.height));
    let mut nodes = Vec::with_capacity(targets.len());
    for (t, r) in targets.iter().zip(readings) {
        let node = match r {
            Err(e) => NodeReport {
                url: t.url.clone(),
                status: Status::Unreachable,
                behind_by: None,
                error: Some(if e.is_empty() { "no answer".into() } else { e }),
                reading: None,
            },
            Ok(reading) => {
                let (status, behind_by) = match best {
                    Some((_, tip, _)) if tip == reading.tip => (Status::Ok, None),
                    Some((_, _, height)) if reading.height >= height => (Status::Fork, None),
                    Some((b, _, height)) => {
                        match targets[b]
                            .client
                            .get_block_hash(i64::from(reading.height).into())
                            .await
                        {
                            Ok(h) if h == reading.tip => {
                                (Status::Behind, Some(height - reading.height))
                            }
                            Ok(_) => (Status::Fork, None),
                            Err(_) => (Status::Unknown, None),
                        }
                    }
                    None => (Status::Ok, None),
                };
                NodeReport {
                    url: t.url.clone(),
                    status,
                    behind_by,
                    error: None,
                    reading: Some(reading),
                }
            }
        };
        nodes.push(node);
    }
    Report {
        time: unix_now(),
        fork: nodes.iter().any(|n| n.status == Status::Fork),
        unreachable: nodes
            .iter()
            .filter(|n| n.status == Status::Unreachable)
            .count(),
        best_tip: best.map(|b| b.1),
        best_height: best.map(|b| b.2),
        nodes,
    }
}

/// `1.5 MH/s`-style hash rate.
fn hashrate(h: f64) -> String {
    let units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"];
    let mut v = h;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}

/// `42s`, `7m`, `3h`, `2d`.
fn age(secs: i64) -> String {
    match secs {
        // Block times may run up to two hours ahead of this clock.
        s if s < -120 => "future".into(),
        s if s < 0 => "0s".into(),
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

fn status_text(n: &NodeReport) -> String {
    match (n.status, n.behind_by) {
        (Status::Behind, Some(b)) => format!("behind {b}"),
        (Status::Ok, _) => "ok".into(),
        (Status::Behind, None) => "behind".into(),
        (Status::Fork, _) => "FORK".into(),
        (Status::Unknown, _) => "?".into(),
        (Status::Unreachable, _) => "UNREACHABLE".into(),
    }
}

/// The columns of a row: node, status, height, tip, age, peers, mempool, hash rate.
fn cells(n: &NodeReport) -> [String; 8] {
    match &n.reading {
        Some(r) => [
            n.url.clone(),
            status_text(n),
            r.height.to_string(),
            r.tip.to_string()[..16].to_string(),
            age(r.tip_age_secs),
            format!("{}/{}", r.peers_in, r.peers_out),
            format!("{} ({} kB)", r.mempool_txs, r.mempool_bytes.div_ceil(1000)),
            hashrate(r.network_hashps),
        ],
        None => [
            n.url.clone(),
            status_text(n),
            String::new(),
            n.error.clone().unwrap_or_default(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ],
    }
}

const HEADER: [&str; 8] = [
    "node", "status", "height", "tip", "age", "in/out", "mempool", "hashrate",
];

/// The one-line summary above the table.
fn summary(report: &Report) -> String {
    let best = match (report.best_height, report.best_tip) {
        (Some(h), Some(t)) => format!("best tip {h} {t}"),
        _ => "no node answered".into(),
    };
    let mut s = format!("{} nodes, {best}", report.nodes.len());
    if report.fork {
        s += ", FORK: nodes on different branches";
    }
    if report.unreachable > 0 {
        s += &format!(", {} unreachable", report.unreachable);
    }
    s
}

/// The report as plain text: a summary line and a fixed-width table.
pub fn text(report: &Report) -> String {
    let rows: Vec<[String; 8]> = report.nodes.iter().map(cells).collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: Vec<&str>| {
        let mut l = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        l.truncate(l.trim_end().len());
        l + "\n"
    };
    let mut out = summary(report) + "\n";
    out += &line(HEADER.to_vec());
    for row in &rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Draws the report as a ratatui table: fork rows red, unreachable grey, behind yellow.
fn draw(frame: &mut ratatui::Frame, report: &Report, interval: Duration) {
    let rows = report.nodes.iter().map(|n| {
        let style = match n.status {
            Status::Ok => Style::default(),
            Status::Behind | Status::Unknown => Style::default().fg(Color::Yellow),
            Status::Fork => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            Status::Unreachable => Style::default().fg(Color::DarkGray),
        };
        Row::new(cells(n).map(Cell::from)).style(style)
    });
    let url_width = report.nodes.iter().map(|n| n.url.len()).max().unwrap_or(4);
    let widths = [
        Constraint::Length(u16::try_from(url_width).unwrap_or(u16::MAX)),
        Constraint::Length(11),
        Constraint::Length(8),
        Constraint::Length(17),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(16),
        Constraint::Length(11),
    ];
    let title = Line::from(format!(
        " {} · every {:.1}s · q quits ",
        summary(report),
        interval.as_secs_f64()
    ));
    let table = Table::new(rows, widths)
        .header(Row::new(HEADER).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(Block::bordered().title(title));
    frame.render_widget(table, frame.area());
}

/// Polls once and prints the report (JSON or the table) to standard output.
pub async fn once(targets: &[Target], json: bool) -> anyhow::Result<()> {
    let report = poll(targets).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(())
}

/// Polls every `interval` until Ctrl-C (or `q` in the terminal table). On a terminal the table
/// is redrawn in place; otherwise each poll is printed as text, or as one JSON line with `json`.
pub async fn watch(targets: &[Target], interval: Duration, json: bool) -> anyhow::Result<()> {
    let tui = !json && std::io::stdout().is_terminal();
    let (quit_tx, mut quit) = tokio::sync::watch::channel(false);
    let ctrl_c = quit_tx.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = ctrl_c.send(true);
        }
    });
    let mut terminal = None;
    if tui {
        terminal = Some(ratatui::try_init().context("cannot set up the terminal")?);
        // In raw mode Ctrl-C is a key, not a signal: a thread reads keys and says when to quit.
        let keys = quit_tx.clone();
        std::thread::spawn(move || loop {
            match event::poll(Duration::from_millis(200)) {
                Ok(true) => {
                    if let Ok(Event::Key(k)) = event::read() {
                        let ctrl_c = k.code == KeyCode::Char('c')
                            && k.modifiers.contains(KeyModifiers::CONTROL);
                        if k.kind == KeyEventKind::Press
                            && (ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc))
                        {
                            let _ = keys.send(true);
                            return;
                        }
                    }
                }
                Ok(false) if keys.is_closed() => return,
                Ok(false) => {}
                Err(_) => return,
            }
        });
    }
    let result = async {
        loop {
            let report = poll(targets).await;
            match terminal.as_mut() {
                Some(t) => {
                    t.draw(|f| draw(f, &report, interval))
                        .context("cannot draw")?;
                }
                None if json => println!("{}", serde_json::to_string(&report)?),
                None => println!("{}", text(&report)),
            }
            let _ = std::io::stdout().flush();
            tokio::select! {
                _ = quit.wait_for(|q| *q) => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    if terminal.is_some() {
        ratatui::restore();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: Status, reading: Option<Reading>) -> Report {
        Report {
            time: 0,
            fork: status == Status::Fork,
            unreachable: usize::from(status == Status::Unreachable),
            best_tip: None,
            best_height: None,
            nodes: vec![NodeReport {
                url: "http://127.0.0.1:1".into(),
                status,
                behind_by: None,
                error: reading.is_none().then(|| "connection refused".into()),
                reading,
            }],
        }
    }

    #[test]
    fn units_read_as_people_write_them() {
        assert_eq!(hashrate(0.0), "0.0 H/s");
        assert_eq!(hashrate(1_500_000.0), "1.5 MH/s");
        assert_eq!(hashrate(2e21), "2000.0 EH/s");
        assert_eq!(age(5), "5s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(10_800), "3h");
        assert_eq!(age(-3), "0s");
        assert_eq!(age(-600), "future");
    }

    #[test]
    fn text_and_json_flag_what_is_wrong() {
        let unreachable = report(Status::Unreachable, None);
        let t = text(&unreachable);
        assert!(t.contains("1 unreachable"), "{t}");
        assert!(
            t.contains("UNREACHABLE") && t.contains("connection refused"),
            "{t}"
        );
        let json = serde_json::to_value(&unreachable).unwrap();
        assert_eq!(json["nodes"][0]["status"], "unreachable");
        assert!(json["nodes"][0].get("height").is_none());

        let fork = report(
            Status::Fork,
            Some(Reading {
                chain: "regtest".into(),
                height: 7,
                tip: BlockHash([7; 32]),
                tip_age_secs: 3,
                chainwork: "0".repeat(64),
                verification_progress: 1.0,
                peers_in: 1,
                peers_out: 2,
                mempool_txs: 4,
                mempool_bytes: 900,
                network_hashps: 10.0,
            }),
        );
        let t = text(&fork);
        assert!(
            t.contains("FORK") && t.contains("1/2") && t.contains("4 (1 kB)"),
            "{t}"
        );
        let json = serde_json::to_value(&fork).unwrap();
        assert_eq!(json["fork"], true);
        assert_eq!(json["nodes"][0]["height"], 7);
    }

    #[test]
    fn a_url_without_credentials_or_cookie_is_refused_with_the_fix() {
        let err = Target::new("http://127.0.0.1:1", None).err().unwrap();
        assert!(err.to_string().contains("user:password"), "{err}");
        let err = Target::new("not a url", None).err().unwrap();
        assert!(err.to_string().contains("not a URL"), "{err}");
        let missing = PathBuf::from("/nonexistent/.cookie");
        let err = Target::new("http://127.0.0.1:1", Some(&missing))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("user:password in the URL"),
            "{err}"
        );
        let t = Target::new("http://u:p%40ss@127.0.0.1:1/", None).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:1");
    }
}
