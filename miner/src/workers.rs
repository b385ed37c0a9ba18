//! Hashing threads: one OS thread per worker, each pinned to its own core, no async runtime in
//! the hash loop. Workers pick up new work by a generation counter they check between chunks,
//! so stale work is dropped within one chunk (a few milliseconds).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::kernel::{Job, Kernel};
use crate::work::{extranonce, Work};

/// Nonces a worker scans before looking for new work (~8 ms at 30 MH/s).
pub const CHUNK: u32 = 1 << 18;

/// A header whose hash meets the target.
#[derive(Debug)]
pub struct Solution {
    /// The work it was found for.
    pub work: Arc<Work>,
    /// The coinbase extranonce.
    pub extranonce: u64,
    /// The solved header.
    pub header: [u8; 80],
    /// Which worker found it.
    pub worker: usize,
}

/// State shared by the controller and the workers.
pub struct Shared {
    work: RwLock<Option<Arc<Work>>>,
    generation: AtomicU64,
    /// Workers idle while set (no fresh work).
    pub paused: AtomicBool,
    /// Workers exit when set.
    pub stop: AtomicBool,
    /// Hashes done per worker (a counter: relaxed is enough).
    pub hashes: Vec<AtomicU64>,
    /// The work generation each worker is hashing (for measuring how fast work switches).
    pub working_on: Vec<AtomicU64>,
}

impl Shared {
    /// State for `workers` workers with no work yet.
    pub fn new(workers: usize) -> Arc<Shared> {
        Arc::new(Shared {
            work: RwLock::new(None),
            generation: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            hashes: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            working_on: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Publishes new work; workers switch to it after their current chunk.
    pub fn set_work(&self, work: Arc<Work>) -> u64 {
        *self.work.write().unwrap_or_else(|p| p.into_inner()) = Some(work);
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Withdraws the current work (after a block is found on it); workers idle until new work.
    pub fn clear_work(&self) {
        *self.work.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The current work generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current work, if any.
    pub fn work(&self) -> Option<Arc<Work>> {
        self.work.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Total hashes so far.
    pub fn total_hashes(&self) -> u64 {
        self.hashes.iter().map(|h| h.load(Ordering::Relaxed)).sum()
    }
}

/// CPU ids to pin workers to: one logical CPU of each physical core first, then their SMT
/// siblings (read from Linux's topology; plain order where that is unavailable).
fn cores_physical_first() -> Vec<core_affinity::CoreId> {
    let mut ids = core_affinity::get_core_ids().unwrap_or_default();
    let core_of = |id: usize| -> Option<(u32, u32)> {
        let base = format!("/sys/devices/system/cpu/cpu{id}/topology");
        let read = |f: &str| {
            std::fs::read_to_string(format!("{base}/{f}"))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        Some((read("physical_package_id")?, read("core_id")?))
    };
    let mut seen = std::collections::HashSet::new();
    ids.sort_by_key(|c| {
        let first_of_core = core_of(c.id).is_none_or(|k| seen.insert(k));
        (!first_of_core, c.id)
    });
    ids
}

/// Starts `n` workers with `kernel`, pinned to cores if `pin`, at the idle scheduling policy
/// if `idle` (mining; the benchmark keeps the caller's, as cpuminer's does); solutions go to
/// `found`.
pub fn start(
    n: usize,
    kernel: Kernel,
    pin: bool,
    idle: bool,
    shared: &Arc<Shared>,
    found: Sender<Solution>,
) -> Vec<JoinHandle<()>> {
    let cores = if pin {
        cores_physical_first()
    } else {
        Vec::new()
    };
    (0..n)
        .map(|i| {
            let shared = shared.clone();
            let found = found.clone();
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    if let Some(core) = core {
                        if !core_affinity::set_for_current(core) {
                            tracing::warn!(worker = i, "could not pin to core {}", core.id);
                        }
                    }
                    if idle {
                        idle_priority(i);
                    }
                    run(i, kernel, &shared, &found);
                })
                .expect("the OS can start a worker thread")
        })
        .collect()
}

/// Moves the calling worker to the idle scheduling policy (Linux `SCHED_IDLE`, where
/// cpuminer's workers run too): on a machine that also runs the node, the node's relay,
/// validation and indexing get a core the moment they want one, a found block first among
/// them. Elsewhere, or if refused, the lowest priority the crate knows instead.
fn idle_priority(worker: usize) {
    use thread_priority::ThreadPriority;
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle).is_ok() {
            return;
        }
    }
    if let Err(e) = thread_priority::set_current_thread_priority(ThreadPriority::Min) {
        tracing::debug!(worker, "worker priority unchanged: {e:?}");
    }
}

fn run(id: usize, kernel: Kernel, shared: &Shared, found: &Sender<Solution>) {
    let worker = u16::try_from(id).unwrap_or(u16::MAX);
    let mut generation = u64::MAX;
    // Set after a solution: no point finding a second block on the same work.
    let mut solved = false;
    let mut current: Option<(Arc<Work>, Job, u64)> = None;
    let mut header_count = 0u64;
    let mut next_nonce = 0u64;
    while !shared.stop.load(Ordering::Acquire) {
        if shared.paused.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let g = shared.generation();
        if g != generation {
            generation = g;
            current = None;
            header_count = 0;
            solved = false;
        }
        if solved {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        if current.is_none() || next_nonce > u64::from(u32::MAX) {
            let Some(work) = shared.work() else {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            };
            let extra = extranonce(worker, header_count);
            header_count += 1;
            let job = Job::new(work.header(extra), work.template.target);
            current = Some((work, job, extra));
            next_nonce = 0;
            shared.working_on[id].store(generation, Ordering::Release);
        }
        let Some((work, job, extra)) = &current else {
            continue;
        };
        let count = (u64::from(u32::MAX) + 1 - next_nonce).min(u64::from(CHUNK)) as u32;
        let start = next_nonce as u32;
        let hit = kernel.scan(job, start, count);
        let done = hit.map_or(u64::from(count), |n| u64::from(n - start) + 1);
        shared.hashes[id].fetch_add(done, Ordering::Relaxed);
        next_nonce += done;
        if let Some(nonce) = hit {
            let solution = Solution {
                work: work.clone(),
                extranonce: *extra,
                header: job.header_with(nonce),
                worker: id,
            };
            if found.send(solution).is_err() {
                return; // the controller is gone
            }
            solved = true;
        }
    }
}
