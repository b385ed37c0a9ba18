//! `chaincore-node`: the ChainCore full node daemon.
//!
//! # Layout
//! - [`config`]: command line, environment and config file.
//! - [`store`]: the redb database and its tables.
//! - [`chain`]: block index, acceptance, chain selection, connect/disconnect.
//! - [`devnet`]: the `devnet` command (several local nodes at once).
//! - [`monitor`]: the `monitor` command (several nodes side by side).
//! - [`mempool`]: unconfirmed transactions and template selection.
//! - [`mining`]: block templates and the in-process miner.
//! - [`node`]: the node's operations, as RPC and P2P call them.
//! - [`writer`]: the one thread that changes chain and mempool.
//! - [`indexer`]: the thread that builds the tx and address indexes from connected blocks.
//! - [`snapshot`]: the immutable view of chain and mempool readers use.
//! - [`signatures`]: the signature pools and their checks.
//! - [`p2p`]: peers, headers-first sync and relay.
//! - [`rpc`]: the JSON-RPC methods and server.
//! - [`logging`]: the terminal, `debug.log` and their format.
//! - [`verify`]: UTXO-set statistics and `verifychain`.
//! - [`web`]: unauthenticated read-only REST, the event stream, `/metrics`, block export.
//! - [`metrics`]: the Prometheus metrics.

mod chain;
mod config;
mod devnet;
mod fees;
mod indexer;
mod logging;
mod mempool;
mod metrics;
mod mining;
mod monitor;
mod node;
mod p2p;
mod priority;
mod rpc;
mod signatures;
mod snapshot;
mod store;
mod verify;
mod web;
mod writer;

use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::Parser;

/// Runs the node; an error is printed as one line of causes and exits with status 1. Not
/// through `main`'s `Result`, which prints `Debug`: with `RUST_BACKTRACE=1` (common among
/// Rust users) that adds a backtrace to every port in use or permission denied. Panics keep
/// theirs.
fn main() {
    if let Err(e) = start() {
        eprintln!("error: {}", causes(&e));
        std::process::exit(1);
    }
}

/// `e` and its causes, joined by `: `, leaving out a cause whose text is already said (error
/// types that show their source in their own message would otherwise repeat it).
fn causes(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out += ": ";
        }
        out += &text;
    }
    out
}

fn start() -> anyhow::Result<()> {
    let args = config::Args::parse();
    if args.print_default_config {
        print!("{}", config::default_config_text()?);
        return Ok(());
    }
    if let Some(config::Command::Devnet {
        nodes,
        base_port,
        mine,
        datadir,
    }) = args.command.clone()
    {
        let dir = match datadir {
            Some(d) => d,
            None => args.clone().resolve()?.data_dir.with_file_name("devnet"),
        };
        return devnet::run(nodes, base_port, mine, &dir);
    }
    if let Some(config::Command::Monitor {
        rpc,
        rpccookiefile,
        once,
        json,
        interval,
    }) = args.command.clone()
    {
        return monitor(&rpc, &rpccookiefile, once, json, interval);
    }
    if let Some(config::Command::Export {
        from,
        to,
        format,
        output,
    }) = args.command.clone()
    {
        return export(args.resolve()?, from, to, format, output);
    }
    let config = args.resolve()?;
    // Held to the end: dropping it flushes debug.log.
    let _log = logging::init(&config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config))
}

async fn run(config: config::Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    tracing::info!(network = %config.network, datadir = %config.data_dir.display(), "starting");
    if let Some(file) = &config.config_file {
        tracing::info!(file = %file.display(), "config file read");
    }
    let dir = config.data_dir.clone();
    let network = config.network;
    let persist = config.persist_mempool;
    let options = config.chain.clone();
    let node = tokio::task::spawn_blocking(move || node::Node::open_with(network, &dir, &options))
        .await?
        .map_err(|e| match e {
            // Says the directory already, and there is nothing to open.
            chain::ChainError::Store(e @ store::StoreError::InUse(_)) => anyhow::Error::new(e),
            e => anyhow::Error::new(e).context(format!(
                "cannot open the chain in {}",
                config.data_dir.display()
            )),
        })?;
    if persist {
        node.load_mempool().await;
    }
    {
        let tip = *node.tip.borrow();
        tracing::info!(height = tip.height, tip = %tip.hash, "chain loaded");
    }
    let p2p = p2p::P2pHandle::start(node.clone(), config.p2p.clone()).await?;
    if config.persist_mempool {
        tokio::spawn(save_mempool_loop(node.clone()));
    }
    let server = rpc::server::start(node.clone(), p2p.clone(), &config).await?;

    let mut shutdown = node.shutdown.subscribe();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        _ = sigterm.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = shutdown.wait_for(|s| *s) => tracing::info!("stop requested, shutting down"),
    }
    node.stopping.store(true, Ordering::Release);
    server.stop().await;
    // Ends every P2P task, the manager last (it saves the address book on its way out).
    let running = p2p.shutdown(std::time::Duration::from_secs(10)).await;
    if running > 0 {
        tracing::warn!(running, "P2P tasks still running at shutdown");
    }
    if config.persist_mempool {
        let node3 = node.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || node3.save_mempool()).await? {
            tracing::warn!("mempool not saved: {e}");
        }
    }
    // Let the writer finish what it was sent before the store is dropped.
    let node2 = node.clone();
    tokio::task::spawn_blocking(move || node2.stop_writer()).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// `chaincore-node monitor`: builds a target per URL and polls them.
fn monitor(
    urls: &[String],
    cookies: &[std::path::PathBuf],
    once: bool,
    json: bool,
    interval: f64,
) -> anyhow::Result<()> {
    if cookies.len() > 1 && cookies.len() != urls.len() {
        anyhow::bail!(
            "{} --rpccookiefile for {} --rpc: give one for all, or one per --rpc",
            cookies.len(),
            urls.len()
        );
    }
    let targets = urls
        .iter()
        .enumerate()
        .map(|(i, url)| monitor::Target::new(url, cookies.get(i).or(cookies.first())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        if once {
            monitor::once(&targets, json).await
        } else {
            monitor::watch(&targets, std::time::Duration::from_secs_f64(interval), json).await
        }
    })
}

/// `chaincore-node export`: opens the stopped node's store and writes blocks `from..=to`.
fn export(
    config: config::Config,
    from: u32,
    to: u32,
    format: web::export::Format,
    output: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let node = node::Node::open(config.network, &config.data_dir).with_context(|| {
        format!(
            "cannot open the chain in {} (stop the node first: it locks its store; \
             a running node serves the same at /rest/blocks/FROM/TO.jsonl)",
            config.data_dir.display()
        )
    })?;
    let snap = node.snapshot();
    let written = match &output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            web::export::write_range(&snap, config.network, from, to, format, &mut out)
                .and_then(|()| out.into_inner().map_err(|e| e.into_error())?.sync_all())
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            web::export::write_range(&snap, config.network, from, to, format, &mut out)
                .and_then(|()| out.flush())
        }
    };
    drop(snap);
    node.stop_writer();
    written.context("export failed")
}

/// Saves the mempool every [`mempool::persist::SAVE_INTERVAL`], so a crash loses at most
/// what arrived since.
async fn save_mempool_loop(node: std::sync::Arc<node::Node>) {
    let mut every = tokio::time::interval(mempool::persist::SAVE_INTERVAL);
    every.tick().await;
    loop {
        every.tick().await;
        let n = node.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || n.save_mempool()).await {
            tracing::warn!("mempool not saved: {e}");
        }
    }
}
