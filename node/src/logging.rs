//! Where the node's log goes and how it looks: the terminal (with colours only when it is a
//! terminal) and `<datadir>/<network>/debug.log` (Bitcoin Core's file, never coloured), as text
//! or JSON lines.
//!
//! `debug.log` rotates by size with the `file-rotate` crate: past [`ROTATE_BYTES`] it is
//! renamed `debug.log.1` (older ones shift to `.2` …), and at most [`KEEP_ROTATED`] old files
//! are kept. Writes go through `tracing-appender`'s background writer (not lossy: when its
//! queue is full, the thread that logs waits rather than a line being dropped).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// `debug.log` is rotated once it passes this size.
pub const ROTATE_BYTES: usize = 10 * 1024 * 1024;

/// Rotated files kept (`debug.log.1` … `debug.log.5`).
pub const KEEP_ROTATED: usize = 5;

pub use chaincore::config::LogFormat;

/// What [`init`] sets up.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// The filter (`info`, `debug`, or a `RUST_LOG`-style directive).
    pub level: String,
    /// Text or JSON.
    pub format: LogFormat,
    /// `debug.log`'s path, or `None` for the terminal only (`--nodebuglogfile`).
    pub file: Option<PathBuf>,
}

/// Installs the global logger. Keep the returned guard alive until exit: dropping it flushes
/// what the background writer still holds.
pub fn init(settings: &LogSettings) -> anyhow::Result<Option<WorkerGuard>> {
    let filter = || {
        EnvFilter::try_new(&settings.level)
            .with_context(|| format!("invalid --log-level '{}'", settings.level))
    };
    let terminal = std::io::stdout().is_terminal();
    let stdout = tracing_subscriber::fmt::layer().with_ansi(terminal);
    let stdout = match settings.format {
        LogFormat::Text => stdout.boxed(),
        LogFormat::Json => stdout.json().boxed(),
    }
    .with_filter(filter()?);
    let (file, guard) = match &settings.file {
        None => (None, None),
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            // Fails here, with the path, rather than on the first line logged.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot write the log file {}", path.display()))?;
            let rotating = FileRotate::new(
                path,
                AppendCount::new(KEEP_ROTATED),
                ContentLimit::BytesSurpassed(ROTATE_BYTES),
                Compression::None,
                None,
            );
            // Never drop lines: a burst waits for the disk instead.
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .finish(rotating);
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(writer);
            let layer = match settings.format {
                LogFormat::Text => layer.boxed(),
                LogFormat::Json => layer.json().boxed(),
            }
            .with_filter(filter()?);
            (Some(layer), Some(guard))
        }
    };
    tracing_subscriber::registry()
        .with(stdout)
        .with(file)
        .try_init()
        .context("a logger is already installed")?;
    Ok(guard)
}
