//! Latency and loss for the network lab without `netem` (this kernel has no such qdisc): a TUN
//! device whose packets a pair of threads in the test process reads, holds for a fixed one-way
//! delay, drops a fraction of, and writes back. [`netns`](crate::netns) routes every packet
//! between two hosts through it once, so a round trip between two hosts takes twice the delay,
//! whether the connection was made to a seed or to an address learned by gossip.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Packets held at once; more are dropped (tail drop, as a router's full queue does).
const QUEUE: usize = 65_536;

/// How often the threads look at their stop flag while idle.
const IDLE: Duration = Duration::from_millis(100);

/// `struct ifreq` as `TUNSETIFF` reads it: the name, then the flags, padded to 40 bytes.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    pad: [u8; 22],
}

/// A running forwarder on one TUN device; dropping it stops its threads (the device goes when
/// its namespace is removed, or with the last open descriptor).
pub struct Forwarder {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    counts: Arc<Counts>,
}

/// Packets seen by a forwarder (counters only).
#[derive(Default)]
struct Counts {
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

/// A small xorshift generator: which packets are lost, reproducible from its seed.
struct Rng(u64);

impl Rng {
    /// A number in `[0, 1)`.
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Forwarder {
    /// Creates TUN device `name` (at most 15 bytes) in the calling thread's network namespace
    /// and starts forwarding: each packet read from it is written back `delay` later, or with
    /// probability `loss` not at all (losses drawn from `seed`). The device is down and has no
    /// address; the caller moves it where it is wanted (`ip link set NAME netns NS`: the
    /// descriptor stays attached) and routes packets into it.
    pub fn start(name: &str, delay: Duration, loss: f64, seed: u64) -> Result<Forwarder, String> {
        if name.len() > 15 {
            return Err(format!("TUN name {name} is longer than 15 bytes"));
        }
        let file = File::options()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(|e| format!("cannot open /dev/net/tun: {e}"))?;
        let mut req = IfReq {
            name: [0; 16],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
            pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `IfReq` lays out (40
        // bytes, name first, flags at offset 16); the descriptor is open for the call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
        if rc < 0 {
            return Err(format!(
                "TUNSETIFF {name}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let file = Arc::new(file);
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(QUEUE);
        let reader = std::thread::Builder::new()
            .name(format!("{name}-read"))
            .spawn({
                let (file, stop, counts) = (file.clone(), stop.clone(), counts.clone());
                let mut rng = Rng(seed | 1);
                move || {
                    let mut buf = vec![0u8; 65_536];
                    while !stop.load(Ordering::Acquire) {
                        match readable(&file) {
                            Some(true) => {}
                            Some(false) => continue,
                            None => return,
                        }
                        let n = match (&*file).read(&mut buf) {
                            Ok(n) => n,
                            Err(_) => return,
                        };
                        if loss > 0.0 && rng.next() < loss {
                            counts.dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        match tx.try_send((Instant::now() + delay, buf[..n].to_vec())) {
                            Ok(()) => {}
                            Err(TrySendError::Full(_)) => {
                                counts.dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(TrySendError::Disconnected(_)) => return,
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start a forwarder thread: {e}"))?;
        let writer = std::thread::Builder::new()
            .name(format!("{name}-write"))
            .spawn({
                let (file, stop, counts) = (file, stop.clone(), counts.clone());
                // The delay is the same for every packet, so they leave in the order they came.
                move || loop {
                    match rx.recv_timeout(IDLE) {
                        Ok((due, packet)) => {
                            let now = Instant::now();
                            if due > now {
                                std::thread::sleep(due - now);
                            }
                            // A packet the kernel refuses (its route gone) is lost, as on a wire.
                            if (&*file).write(&packet).is_ok() {
                                counts.forwarded.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Acquire) => {}
                        Err(_) => return,
                    }
                }
            })
            .map_err(|e| format!("cannot start a forwarder thread: {e}"))?;
        Ok(Forwarder {
            stop,
            threads: vec![reader, writer],
            counts,
        })
    }

    /// Packets written back so far, and packets dropped (by `loss` or a full queue).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.forwarded.load(Ordering::Relaxed),
            self.counts.dropped.load(Ordering::Relaxed),
        )
    }
}

/// Waits up to [`IDLE`] for a packet on `file`: `Some(true)` if one can be read, `None` if the
/// device is gone.
fn readable(file: &File) -> Option<bool> {
    let mut fds = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid `pollfd` for a descriptor that is open while `file` lives.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::poll(&mut fds, 1, IDLE.as_millis() as libc::c_int) };
    if rc > 0 && fds.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
        return None;
    }
    Some(rc > 0 && fds.revents & libc::POLLIN != 0)
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
