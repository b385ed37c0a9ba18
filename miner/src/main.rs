//! `chaincore-miner`: a standalone SHA-256d miner for `chaincore-node`.
//!
//! # Layout
//! - [`kernel`]: nonce search kernels (portable, SHA-NI, AVX2, AVX-512), their job setup and
//!   the timing that picks the fastest at start.
//! - [`work`]: templates, the miner's coinbase, merkle branch and headers.
//! - [`workers`]: pinned hashing threads and the state they share with the controller.
//!
//! The controller (this file) fetches templates with long poll, refreshes them every
//! `--scantime`, submits solutions after checking they are still on the tip, backs off
//! exponentially while the node is away, and reports hash rates.

mod kernel;
mod work;
mod workers;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chaincore::config::RpcArgs;
use chaincore::pow::Target;
use chaincore::rpc::mining::TemplateRequest;
use chaincore::rpc::{http_client, is_auth_failure, MiningClient};
use chaincore::validation::MAX_FUTURE_BLOCK_TIME;
use chaincore::Address;
use clap::Parser;
use jsonrpsee_http_client::HttpClient;

use crate::kernel::{Job, Kernel};
use crate::work::{Template, Work};
use crate::workers::{Shared, Solution};

/// ChainCore miner: mines blocks for a chaincore-node on every core.
#[derive(Parser, Debug)]
#[command(name = "chaincore-miner", version, about)]
struct Args {
    /// Address the block rewards go to (required unless --benchmark).
    #[arg(long, env = "CHAINCORE_ADDRESS", required_unless_present = "benchmark")]
    address: Option<String>,
    /// How to reach the node (also from chaincore.conf).
    #[command(flatten)]
    node: RpcArgs,
    /// Worker threads [default: one per CPU].
    #[arg(long, env = "CHAINCORE_THREADS")]
    threads: Option<usize>,
    /// Pin each worker to its own core.
    #[arg(long, env = "CHAINCORE_CPU_AFFINITY", default_value = "on")]
    cpu_affinity: OnOff,
    /// Seconds between template refreshes (new transactions, time).
    #[arg(long, env = "CHAINCORE_SCANTIME", default_value_t = 10)]
    scantime: u64,
    /// Hash kernel [default: the fastest this CPU supports, timed at start].
    #[arg(long, env = "CHAINCORE_KERNEL")]
    kernel: Option<Kernel>,
    /// Hash without a node and print a table of every kernel's hash rate.
    #[arg(long)]
    benchmark: bool,
    /// How long each --benchmark measurement runs (each kernel is measured on one thread and
    /// on --threads threads).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Log filter: error, warn, info, debug, trace, or a RUST_LOG-style directive.
    #[arg(long, env = "CHAINCORE_LOG_LEVEL", default_value = "info")]
    log_level: String,
}

/// `on` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Seconds without a fresh template after which workers pause.
const PAUSE_AFTER: Duration = Duration::from_secs(60);
/// Hash rate report interval.
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// First and largest retry delay while the node is unreachable.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Long poll requests may wait this long (the node answers within 60 s).
const RPC_TIMEOUT: Duration = Duration::from_secs(90);

fn main() {
    let mut args = Args::parse();
    // The benchmark needs no node, so neither the config file.
    let config_file = if args.benchmark {
        None
    } else {
        args.node.load().unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(1);
        })
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    if let Some(file) = config_file {
        tracing::info!(file = %file.display(), "config file read");
    }
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(run(args)));
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let threads = args.threads.unwrap_or_else(num_cpus::get).max(1);
    if let Some(k) = args.kernel {
        if !Kernel::available().contains(&k) {
            bail!(
                "kernel {k} is not supported by this CPU (available: {})",
                list(&Kernel::available())
            )
        }
    }
    if args.benchmark {
        return benchmark(
            threads,
            args.kernel,
            args.cpu_affinity == OnOff::On,
            args.seconds,
        );
    }
    let address = args.address.as_deref().context("--address is required")?;
    let payout = Address::parse(address, args.node.network)
        .with_context(|| format!("bad --address '{address}'"))?
        .script_pubkey();
    let url = args.node.url();
    let auth = Auth::from_args(&args)?;
    // Listening from here on: a signal during the kernel timing below still ends us cleanly.
    let signals = Signals::new()?;
    let kernel = match args.kernel {
        Some(k) => k,
        None => pick_kernel()?,
    };

    tracing::info!(%url, threads, %kernel, "mining to {address}");
    Controller {
        client: None,
        url,
        auth,
        payout,
        shared: Shared::new(threads),
        threads,
        kernel,
        pin: args.cpu_affinity == OnOff::On,
        scantime: Duration::from_secs(args.scantime.max(1)),
        tally: Tally::default(),
        last_fresh: Instant::now(),
        paused: None,
        signals,
    }
    .run()
    .await
}

/// SIGINT (Ctrl-C) and SIGTERM, listened for from start-up on.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// Waits for either signal; returns its name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }

    /// Sleeps for `d` unless a signal comes first; returns the signal's name if one did.
    async fn sleep(&mut self, d: Duration) -> Option<&'static str> {
        tokio::select! {
            _ = tokio::time::sleep(d) => None,
            s = self.recv() => Some(s),
        }
    }
}

/// Hash rate in the unit that fits it: `812 H/s`, `41.3 kH/s`, `35.2 MH/s`, `1.20 GH/s`.
fn format_rate(hashes_per_second: f64) -> String {
    let (value, prefix) = scaled(hashes_per_second);
    format!("{value} {prefix}H/s")
}

/// A count of hashes the same way: `812 hashes`, `41.3 k hashes`.
fn format_hashes(hashes: f64) -> String {
    match scaled(hashes) {
        (value, "") => format!("{value} hashes"),
        (value, prefix) => format!("{value} {prefix} hashes"),
    }
}

/// `x` with an SI prefix, to three significant digits: (`41.3`, `k`).
fn scaled(x: f64) -> (String, &'static str) {
    let (value, prefix) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(scale, _)| x >= *scale)
        .map_or((x, ""), |(scale, p)| (x / scale, p));
    let decimals = if value >= 100.0 || prefix.is_empty() {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    (format!("{value:.decimals$}"), prefix)
}

/// A header no nonce solves (target 1): what kernels are timed and benchmarked on.
fn unsolvable_template() -> anyhow::Result<Template> {
    let impossible = Target::from_compact(0x0300_0001).context("constant target")?;
    Ok(Template {
        version: 1,
        prev_blockhash: Default::default(),
        height: 1,
        bits: 0x0300_0001,
        target: impossible,
        curtime: 0,
        coinbase_value: chaincore::Amount::ZERO,
        transactions: Vec::new(),
        txids: Vec::new(),
        longpollid: None,
    })
}

/// Times every kernel this CPU supports for a moment on one thread, logs the figures and
/// returns the fastest.
fn pick_kernel() -> anyhow::Result<Kernel> {
    let template = unsolvable_template()?;
    let job = Job::new([0; 80], template.target);
    let (fastest, figures) =
        Kernel::fastest(&Kernel::available(), &job).context("no kernel is available")?;
    let figures: Vec<String> = figures
        .iter()
        .map(|(k, rate)| format!("{k} {:.2}", rate / 1e6))
        .collect();
    tracing::info!(
        "kernel speeds on one thread (MH/s): {}; using {fastest}",
        figures.join(", ")
    );
    Ok(fastest)
}

fn list(kernels: &[Kernel]) -> String {
    kernels
        .iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// RPC credentials, and the cookie file they came from (re-read when the node restarts, and
/// until it exists: a miner started before its node waits for the node's cookie).
struct Auth {
    current: Option<String>,
    cookie: Option<PathBuf>,
}

impl Auth {
    fn from_args(args: &Args) -> anyhow::Result<Auth> {
        let cookie = args.node.cookie_path().map_err(|e| anyhow::anyhow!(e))?;
        let current = match &cookie {
            None => Some(args.node.credentials().map_err(|e| anyhow::anyhow!(e))?),
            Some(path) => chaincore::config::read_cookie(path).ok(),
        };
        Ok(Auth { current, cookie })
    }

    /// The credentials, reading the cookie file if it was missing so far.
    fn credentials(&mut self) -> Result<String, String> {
        if let Some(c) = &self.current {
            return Ok(c.clone());
        }
        let path = self.cookie.as_deref().ok_or("no credentials")?;
        let c = chaincore::config::read_cookie(path)?;
        self.current = Some(c.clone());
        Ok(c)
    }

    /// After a 401: a restarted node writes a new cookie. True if it changed.
    fn refresh(&mut self) -> bool {
        match self.cookie.as_deref().map(chaincore::config::read_cookie) {
            Some(Ok(new)) if self.current.as_ref() != Some(&new) => {
                self.current = Some(new);
                true
            }
            _ => false,
        }
    }
}

/// What one `--benchmark` run measured.
struct BenchRun {
    /// Hashes per second of each worker.
    per_thread: Vec<f64>,
    /// Hashes per second of all workers together.
    total: f64,
    /// How long each work switch took (new work published → every worker hashing it), sorted.
    switches: Vec<Duration>,
}

/// `--benchmark`: for each kernel (the one `--kernel` names, or every one this CPU supports),
/// hashes an unsolvable header on one worker and then on `threads` workers for `seconds`
/// each, and prints a table of MH/s per thread and the scaling; then which kernel the
/// start-up measurement picks, and how fast workers switch to new work.
fn benchmark(
    threads: usize,
    forced: Option<Kernel>,
    pin: bool,
    seconds: u64,
) -> anyhow::Result<()> {
    let template = unsolvable_template()?;
    let work = Arc::new(Work::new(template, chaincore::Script::new_p2pkh(&[0; 20])));
    let kernels = match forced {
        Some(k) => vec![k],
        None => Kernel::available(),
    };
    let seconds = seconds.max(1);
    println!(
        "{:<13} {:>16} {:>18} {:>8}",
        "kernel",
        "1 thread MH/s",
        format!("{threads} threads MH/s"),
        "scaling"
    );
    let mut last_switches = Vec::new();
    for &kernel in &kernels {
        let one = bench_run(1, kernel, pin, seconds, &work);
        let many_run = (threads > 1).then(|| bench_run(threads, kernel, pin, seconds, &work));
        let many = many_run.as_ref().unwrap_or(&one);
        let per_thread: Vec<String> = many
            .per_thread
            .iter()
            .map(|r| format!("{:.2}", r / 1e6))
            .collect();
        println!(
            "{:<13} {:>16.2} {:>18.2} {:>7.2}x   (per thread: {})",
            kernel.to_string(),
            one.total / 1e6,
            many.total / 1e6,
            many.total / one.total,
            per_thread.join(" ")
        );
        last_switches = many.switches.clone();
    }
    if forced.is_none() {
        let job = Job::new(work.header(0), work.template.target);
        if let Some((fastest, _)) = Kernel::fastest(&kernels, &job) {
            println!("start-up measurement picks: {fastest}");
        }
    }
    if let (Some(median), Some(max)) = (
        last_switches.get(last_switches.len() / 2),
        last_switches.last(),
    ) {
        println!(
            "work switch (new work → every worker hashing it, last row): median {:.1} ms, max {:.1} ms over {} switches",
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            last_switches.len()
        );
    }
    Ok(())
}

/// Runs `threads` workers with `kernel` on `work` for `seconds`, publishing the work anew
/// every half second and timing how long until every worker hashes it.
fn bench_run(
    threads: usize,
    kernel: Kernel,
    pin: bool,
    seconds: u64,
    work: &Arc<Work>,
) -> BenchRun {
    let shared = Shared::new(threads);
    shared.set_work(work.clone());
    let (tx, _rx) = std::sync::mpsc::channel::<Solution>();
    let start = Instant::now();
    let handles = workers::start(threads, kernel, pin, false, &shared, tx);
    let deadline = start + Duration::from_secs(seconds);
    let mut switches = Vec::new();
    while Instant::now() + Duration::from_millis(600) < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let published = Instant::now();
        let generation = shared.set_work(work.clone());
        while shared
            .working_on
            .iter()
            .any(|w| w.load(Ordering::Acquire) < generation)
        {
            std::thread::sleep(Duration::from_micros(100));
        }
        switches.push(published.elapsed());
    }
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    shared.stop.store(true, Ordering::Release);
    for h in handles {
        let _ = h.join();
    }
    let secs = start.elapsed().as_secs_f64();
    switches.sort();
    BenchRun {
        per_thread: shared
            .hashes
            .iter()
            .map(|h| h.load(Ordering::Relaxed) as f64 / secs)
            .collect(),
        total: shared.total_hashes() as f64 / secs,
        switches,
    }
}

/// Counts of submitted blocks.
#[derive(Default)]
struct Tally {
    accepted: u64,
    stale: u64,
    rejected: u64,
    /// Accepted since the last report, and the lowest and highest height among them.
    recent: u64,
    recent_heights: Option<(u32, u32)>,
}

/// Why the workers are paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pause {
    /// No fresh work for [`PAUSE_AFTER`]: the node is away.
    NodeAway,
    /// The template's time is too far ahead of our clock for a block to be accepted.
    Clock,
}

struct Controller {
    /// `None` until the credentials are known (the cookie may not exist yet).
    client: Option<HttpClient>,
    url: String,
    auth: Auth,
    payout: chaincore::Script,
    shared: Arc<Shared>,
    threads: usize,
    kernel: Kernel,
    pin: bool,
    scantime: Duration,
    tally: Tally,
    last_fresh: Instant,
    paused: Option<Pause>,
    signals: Signals,
}

impl Controller {
    /// Pauses the workers for `why`; logs only a change of reason.
    fn pause(&mut self, why: Pause) {
        if self.paused != Some(why) {
            match why {
                Pause::NodeAway => tracing::warn!(
                    "no fresh work for {} s: workers paused until the node is back",
                    PAUSE_AFTER.as_secs()
                ),
                Pause::Clock => tracing::info!(
                    "block times are ahead of the clock: workers paused until it catches up"
                ),
            }
        }
        self.paused = Some(why);
        self.shared.paused.store(true, Ordering::Release);
    }

    /// The RPC client, made once the credentials are known: `Ok(Err(why))` while the cookie
    /// cannot be read yet (the node has not started), an error if the URL is unusable.
    fn client(&mut self) -> anyhow::Result<Result<HttpClient, String>> {
        if let Some(c) = &self.client {
            return Ok(Ok(c.clone()));
        }
        let credentials = match self.auth.credentials() {
            Ok(c) => c,
            Err(why) => return Ok(Err(why)),
        };
        let c =
            http_client(&self.url, &credentials, RPC_TIMEOUT).map_err(|e| anyhow::anyhow!(e))?;
        self.client = Some(c.clone());
        Ok(Ok(c))
    }

    async fn run(mut self) -> anyhow::Result<()> {
        let (found_tx, found_rx) = std::sync::mpsc::channel::<Solution>();
        // Bridge worker solutions (std channel) into the async loop.
        let (sol_tx, mut solutions) = tokio::sync::mpsc::channel::<Solution>(64);
        std::thread::spawn(move || {
            while let Ok(s) = found_rx.recv() {
                if sol_tx.blocking_send(s).is_err() {
                    return;
                }
            }
        });
        let handles = workers::start(
            self.threads,
            self.kernel,
            self.pin,
            true,
            &self.shared,
            found_tx,
        );
        let mut backoff = BACKOFF_START;
        let mut attempt = 0u32;
        let mut longpollid: Option<String> = None;
        let mut refreshed = Instant::now();
        let mut report = tokio::time::interval(REPORT_EVERY);
        report.tick().await;
        let mut last_report = (Instant::now(), vec![0u64; self.threads]);
        let started = Instant::now();
        let mut cookie_warned = false;
        let signal = 'mine: loop {
            let client = match self.client()? {
                Ok(c) => c,
                Err(e) => {
                    // No cookie yet: the node has not started (or not written it). Wait for it.
                    if !cookie_warned {
                        tracing::warn!("waiting for the node: {e}");
                        cookie_warned = true;
                    }
                    let delay = jitter(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    if let Some(s) = self.signals.sleep(delay).await {
                        break 'mine s;
                    }
                    continue;
                }
            };
            // Long poll while the work is fresh enough; a plain request when it is due.
            let request = TemplateRequest {
                rules: vec!["segwit".to_string()],
                longpollid: longpollid
                    .clone()
                    .filter(|_| refreshed.elapsed() < self.scantime),
            };
            let wait = self.scantime.saturating_sub(refreshed.elapsed());
            // Set by an arm that must wait before the next request; the wait itself happens
            // below, where a signal can cut it short.
            let mut nap: Option<Duration> = None;
            tokio::select! {
                answer = client.get_block_template(Some(request.into())) => match answer {
                    Ok(v) => {
                        backoff = BACKOFF_START;
                        attempt = 0;
                        match Template::from_rpc(&v) {
                            Ok(t) if i64::from(t.curtime) > unix_now() + MAX_FUTURE_BLOCK_TIME - 5 => {
                                // Blocks came faster than the median-time rule lets time advance:
                                // a block now would be time-too-new. Wait for the clock.
                                self.pause(Pause::Clock);
                                longpollid = None;
                                nap = Some(Duration::from_secs(1));
                            }
                            Ok(t) => {
                                longpollid = t.longpollid.clone();
                                refreshed = Instant::now();
                                self.install(t);
                            }
                            Err(e) => tracing::warn!("node sent an unusable template: {e:#}"),
                        }
                    }
                    Err(e) if is_auth_failure(&e) => {
                        if self.auth.refresh() {
                            tracing::info!("the node's cookie changed (node restarted): reconnecting");
                            self.client = None;
                            continue;
                        }
                        self.shared.stop.store(true, Ordering::Release);
                        bail!("the node refused the RPC credentials: check --rpc-cookie, or --rpc-user and --rpc-password");
                    }
                    Err(e) => {
                        attempt += 1;
                        longpollid = None;
                        let delay = jitter(backoff);
                        tracing::warn!(attempt, "node unavailable ({e}); retrying in {} ms", delay.as_millis());
                        if self.last_fresh.elapsed() > PAUSE_AFTER {
                            self.pause(Pause::NodeAway);
                        }
                        nap = Some(delay);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                },
                Some(solution) = solutions.recv() => match self.submit(solution).await {
                    Ok(true) => {
                        // Our block is the new tip: stop hashing on its parent and fetch
                        // fresh work at once.
                        self.shared.clear_work();
                        longpollid = None;
                    }
                    Ok(false) => {}
                    Err(s) => break 'mine s,
                },
                _ = tokio::time::sleep(wait) => {}
                _ = report.tick() => {
                    let now: Vec<u64> = self.shared.hashes.iter().map(|h| h.load(Ordering::Relaxed)).collect();
                    let secs = last_report.0.elapsed().as_secs_f64();
                    let rates: Vec<String> = now.iter().zip(&last_report.1).map(|(n, o)| format_rate((n - o) as f64 / secs)).collect();
                    let total: u64 = now.iter().zip(&last_report.1).map(|(n, o)| n - o).sum();
                    if let Some((low, high)) = self.tally.recent_heights.take() {
                        tracing::info!(
                            "accepted {} blocks in the last {secs:.0} s (heights {low}–{high})",
                            std::mem::take(&mut self.tally.recent)
                        );
                    }
                    tracing::info!(
                        "hashrate {} (per worker: {}) accepted {} stale {} rejected {}",
                        format_rate(total as f64 / secs), rates.join(", "), self.tally.accepted, self.tally.stale, self.tally.rejected
                    );
                    last_report = (Instant::now(), now);
                }
                s = self.signals.recv() => {
                    break 'mine s;
                }
            }
            if let Some(d) = nap {
                if let Some(s) = self.signals.sleep(d).await {
                    break 'mine s;
                }
            }
        };
        tracing::info!("{signal} received: stopping");
        self.shared.stop.store(true, Ordering::Release);
        for h in handles {
            let _ = h.join();
        }
        let secs = started.elapsed().as_secs_f64();
        let hashes = self.shared.total_hashes() as f64;
        println!(
            "summary: {} blocks accepted, {} stale, {} rejected, {} in {secs:.1} s ({})",
            self.tally.accepted,
            self.tally.stale,
            self.tally.rejected,
            format_hashes(hashes),
            format_rate(hashes / secs.max(1e-3))
        );
        Ok(())
    }

    /// Publishes a template to the workers unless it is the same work already being hashed.
    fn install(&mut self, t: Template) {
        self.last_fresh = Instant::now();
        match self.paused.take() {
            Some(Pause::NodeAway) => tracing::info!("node is back: workers resumed"),
            Some(Pause::Clock) => tracing::info!("the clock caught up: workers resumed"),
            None => {}
        }
        self.shared.paused.store(false, Ordering::Release);
        if let Some(current) = self.shared.work() {
            let c = &current.template;
            if c.prev_blockhash == t.prev_blockhash && c.txids == t.txids && c.curtime == t.curtime
            {
                return;
            }
            if c.prev_blockhash != t.prev_blockhash {
                tracing::info!(height = t.height, prev = %t.prev_blockhash, "new tip: switching work");
            }
        }
        self.shared
            .set_work(Arc::new(Work::new(t, self.payout.clone())));
    }

    /// Submits a solution if it still builds on the current tip; logs the node's answer.
    /// Returns true if the node accepted it, or the signal that came while the node was
    /// answering (a slow node does not hold up Ctrl-C either).
    async fn submit(&mut self, s: Solution) -> Result<bool, &'static str> {
        let hash = kernel::block_hash(&s.header);
        let current_prev = self.shared.work().map(|w| w.template.prev_blockhash);
        if current_prev != Some(s.work.template.prev_blockhash) {
            self.tally.stale += 1;
            tracing::info!(%hash, "stale: the tip moved before submission");
            return Ok(false);
        }
        let hex = match s.work.block_hex(s.extranonce, &s.header) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("cannot build the solved block: {e:#}");
                return Ok(false);
            }
        };
        let Some(client) = self.client.clone() else {
            return Ok(false);
        };
        let answer = tokio::select! {
            answer = client.submit_block(hex.into(), None) => answer,
            signal = self.signals.recv() => return Err(signal),
        };
        match answer {
            Ok(None) => {
                let height = s.work.template.height;
                self.tally.accepted += 1;
                self.tally.recent += 1;
                let (low, high) = self.tally.recent_heights.unwrap_or((height, height));
                self.tally.recent_heights = Some((low.min(height), high.max(height)));
                // One line per block would flood the log on regtest (hundreds a second): each
                // at debug, a count per report at info.
                tracing::debug!(%hash, worker = s.worker, height, "accepted");
                return Ok(true);
            }
            Ok(Some(reason)) => {
                if reason == "duplicate"
                    || reason == "inconclusive"
                    || reason == "prev-blk-not-found"
                {
                    self.tally.stale += 1;
                    tracing::info!(%hash, "stale: {reason}");
                } else {
                    self.tally.rejected += 1;
                    tracing::warn!(%hash, "rejected: {reason}");
                }
            }
            Err(e) => {
                self.tally.rejected += 1;
                tracing::warn!(%hash, "submitblock failed: {e}");
            }
        }
        Ok(false)
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `d` ± 25%, so many miners do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    use rand_core::RngCore;
    let spread = d.as_millis() as u64 / 2 + 1;
    let offset = rand_core::OsRng.next_u64() % spread;
    Duration::from_millis(d.as_millis() as u64 * 3 / 4 + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses_and_refuses_bad_input() {
        assert!(Args::try_parse_from(["m"]).is_err(), "address required");
        let a =
            Args::try_parse_from(["m", "--benchmark", "--threads", "2", "--seconds", "1"]).unwrap();
        assert!(a.benchmark && a.threads == Some(2));
        assert!(Args::try_parse_from(["m", "--address", "x", "--cpu-affinity", "maybe"]).is_err());
        assert!(Args::try_parse_from(["m", "--address", "x", "--kernel", "gpu"]).is_err());
        // The password may come from chaincore.conf, so the pair is checked once the file is
        // read (none in a data directory that does not exist).
        let mut a = Args::try_parse_from([
            "m",
            "--address",
            "x",
            "--datadir",
            "/nonexistent/cc",
            "--rpc-user",
            "u",
        ])
        .unwrap();
        assert!(a.node.load().is_err(), "user needs password");
    }

    #[test]
    fn hash_rates_are_shown_in_a_fitting_unit() {
        assert_eq!(format_rate(0.0), "0 H/s");
        assert_eq!(format_rate(812.4), "812 H/s");
        assert_eq!(format_rate(41_300.0), "41.3 kH/s");
        assert_eq!(format_rate(3_520_000.0), "3.52 MH/s");
        assert_eq!(format_rate(35_200_000.0), "35.2 MH/s");
        assert_eq!(format_rate(1_200_000_000.0), "1.20 GH/s");
        assert_eq!(format_hashes(16_000.0), "16.0 k hashes");
        assert_eq!(format_hashes(7.0), "7 hashes");
    }

    #[test]
    fn backoff_jitter_stays_near_the_delay() {
        for ms in [100u64, 1_000, 30_000] {
            for _ in 0..50 {
                let j = jitter(Duration::from_millis(ms)).as_millis() as u64;
                assert!(j >= ms * 3 / 4 && j <= ms * 5 / 4 + 1, "{ms} -> {j}");
            }
        }
    }
}
