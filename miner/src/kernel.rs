//! SHA-256d nonce search kernels.
//!
//! Every kernel gets a [`Job`] (the header's first 64 bytes already compressed into a midstate)
//! and scans a nonce range: per nonce only the header's second block and the outer hash are
//! computed. Kernels:
//! - `portable`: `sha2`'s compression function (which picks SHA-NI by itself at run time);
//! - `shani`: the SHA extensions, two nonces interleaved (see [`shani`]; VEX-encoded where AVX2
//!   exists);
//! - `shani-avx512`: the same built for AVX-512VL CPUs, three nonces, whose 32 vector registers
//!   hold what would spill to the stack with 16;
//! - `avx2` (8 lanes) and `avx512` (16 lanes): SHA-256 across nonces in SIMD registers, with
//!   the nonce-independent first rounds precomputed, zero padding words skipped, and the outer
//!   hash stopped after round 60, where word 7 of the result is already known.
//!
//! SIMD lanes only pre-filter: a lane whose word 7 could meet the target is re-hashed with
//! `sha2` and compared with the full target, so a kernel can never report a wrong solution.

use std::fmt;
use std::time::{Duration, Instant};

use chaincore::pow::Target;
use chaincore::BlockHash;

#[cfg(target_arch = "x86_64")]
mod shani;

/// SHA-256 round constants.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 initial state.
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A header to search nonces for, with what every kernel precomputes once.
#[derive(Clone, Debug)]
pub struct Job {
    /// The 80-byte header (its nonce bytes are ignored).
    pub header: [u8; 80],
    /// The target a solution must meet.
    pub target: Target,
    /// SHA-256 state after the header's first 64 bytes.
    midstate: [u32; 8],
    /// Header bytes 64..76 (end of merkle root, time, bits) as big-endian words.
    tail: [u32; 3],
    /// State after rounds 0..3 of the second block, which do not involve the nonce.
    pre3: [u32; 8],
    /// A lane is a candidate only if `word7 & h7_mask == 0`: the bits that must be zero for the
    /// hash's top 32 bits (byte-swapped word 7) to stay under the target's.
    h7_mask: u32,
}

impl Job {
    /// Precomputes a job for `header` and `target`.
    pub fn new(header: [u8; 80], target: Target) -> Job {
        let mut midstate = IV;
        let first: &[u8; 64] = header[..64].try_into().expect("80 > 64");
        compress(&mut midstate, first);
        let word =
            |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let tail = [word(64), word(68), word(72)];
        let mut s = midstate;
        for (t, w) in tail.iter().enumerate() {
            round(&mut s, K[t].wrapping_add(*w));
        }
        let target_top = u32::from_be_bytes(
            target.to_be_bytes()[..4]
                .try_into()
                .expect("4 bytes of a 32-byte array"),
        );
        // Zero bits required at the top of the hash's top 32 bits, then mapped into word 7's
        // byte order.
        let zeros = target_top.leading_zeros();
        let top_mask = if zeros == 0 {
            0
        } else {
            u32::MAX << (32 - zeros)
        };
        Job {
            header,
            target,
            midstate,
            tail,
            pre3: s,
            h7_mask: top_mask.swap_bytes(),
        }
    }

    /// The header with `nonce` filled in.
    pub fn header_with(&self, nonce: u32) -> [u8; 80] {
        let mut h = self.header;
        h[76..].copy_from_slice(&nonce.to_le_bytes());
        h
    }

    /// The full check: SHA-256d of the header with `nonce` meets the target.
    pub fn meets_target(&self, nonce: u32) -> bool {
        self.target.is_met_by(&block_hash(&self.header_with(nonce)))
    }
}

/// SHA-256d of an 80-byte header as a block hash (used to verify candidates).
pub fn block_hash(header: &[u8; 80]) -> BlockHash {
    BlockHash(chaincore::hash::sha256d(header))
}

/// One SHA-256 compression of a 64-byte block with `sha2`.
fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(state, &[(*block).into()]);
}

/// One scalar SHA-256 round with `k_plus_w` = K[t] + W[t].
fn round(s: &mut [u32; 8], k_plus_w: u32) {
    let [a, b, c, d, e, f, g, h] = *s;
    let t1 = h
        .wrapping_add(e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25))
        .wrapping_add((e & f) ^ (!e & g))
        .wrapping_add(k_plus_w);
    let t2 = (a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22))
        .wrapping_add((a & b) ^ (a & c) ^ (b & c));
    *s = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
}

/// How long one round of timing a kernel lasts when the fastest is picked at start.
pub const PICK_ROUND: Duration = Duration::from_millis(40);
/// Rounds of timing per kernel when the fastest is picked at start.
pub const PICK_ROUNDS: usize = 3;

/// The kernels this build knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kernel {
    /// `sha2` compression with a midstate.
    Portable,
    /// SHA-NI, two nonces interleaved.
    Shani,
    /// SHA-NI, three nonces interleaved, with AVX-512VL's 32 vector registers.
    ShaniAvx512,
    /// 8 nonces at once in AVX2 registers.
    Avx2,
    /// 16 nonces at once in AVX-512 registers.
    Avx512,
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kernel::Portable => "portable",
            Kernel::Shani => "shani",
            Kernel::ShaniAvx512 => "shani-avx512",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
        })
    }
}

impl Kernel {
    /// Every kernel this build knows, in the order tables list them.
    const ALL: [Kernel; 5] = [
        Kernel::Portable,
        Kernel::Shani,
        Kernel::ShaniAvx512,
        Kernel::Avx2,
        Kernel::Avx512,
    ];

    /// Kernels the running CPU supports (which is fastest is found by [`Kernel::fastest`]).
    pub fn available() -> Vec<Kernel> {
        Kernel::ALL
            .into_iter()
            .filter(|k| k.is_supported())
            .collect()
    }

    /// Whether the running CPU has this kernel's instructions (`std` caches the detection, so
    /// this is a few loads: cheap enough for every scan).
    pub fn is_supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Kernel::Portable => true,
                Kernel::Shani => has!("sha") && has!("sse4.1"),
                Kernel::ShaniAvx512 => {
                    has!("sha")
                        && has!("sse4.1")
                        && has!("avx2")
                        && has!("avx512f")
                        && has!("avx512vl")
                }
                Kernel::Avx2 => has!("avx2"),
                Kernel::Avx512 => has!("avx512f"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Kernel::Portable
        }
    }

    /// This kernel's speed on one thread in hashes per second: `job` scanned in chunks of
    /// 2^12 nonces until `time` has passed (it scans at least one chunk).
    pub fn measure(self, job: &Job, time: Duration) -> f64 {
        const STEP: u32 = 1 << 12;
        let started = Instant::now();
        let mut hashes = 0u64;
        let mut start = 0u32;
        loop {
            // The count of nonces scanned is what matters; a hit (there is none for an
            // impossible target) would only end a chunk early.
            let found = self.scan(job, start, STEP);
            hashes += found.map_or(u64::from(STEP), |n| u64::from(n - start) + 1);
            start = start.wrapping_add(STEP);
            let elapsed = started.elapsed();
            if elapsed >= time {
                return hashes as f64 / elapsed.as_secs_f64();
            }
        }
    }

    /// Times each of `kernels` on `job` and returns the fastest with every kernel's figure
    /// (hashes per second), in the order given. Each kernel runs [`PICK_ROUNDS`] times for
    /// [`PICK_ROUND`], the kernels taking turns, and keeps its best round, so a burst of
    /// other load on the machine does not decide the choice alone. Returns `None` only for an
    /// empty list.
    pub fn fastest(kernels: &[Kernel], job: &Job) -> Option<(Kernel, Vec<(Kernel, f64)>)> {
        let mut figures: Vec<(Kernel, f64)> = kernels.iter().map(|&k| (k, 0.0)).collect();
        for _ in 0..PICK_ROUNDS {
            for (kernel, best) in figures.iter_mut() {
                *best = best.max(kernel.measure(job, PICK_ROUND));
            }
        }
        let fastest = figures
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|&(k, _)| k)?;
        Some((fastest, figures))
    }

    /// Scans `count` nonces from `start` (the range must end at or below 2^32). Returns the
    /// first nonce whose hash meets the target.
    ///
    /// Panics if the CPU lacks the kernel's features; pick from [`Kernel::available`].
    pub fn scan(self, job: &Job, start: u32, count: u32) -> Option<u32> {
        assert!(
            self.is_supported(),
            "kernel {self} is not supported by this CPU"
        );
        match self {
            Kernel::Portable => scan_portable(job, start, count),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the assert above checked the CPU has SHA and SSE4.1, and the AVX2
            // build is taken only where AVX2 is detected.
            #[allow(unsafe_code)]
            Kernel::Shani => unsafe {
                if std::arch::is_x86_feature_detected!("avx2") {
                    shani::avx2::scan(job, start, count)
                } else {
                    shani::sse::scan(job, start, count)
                }
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the assert above checked the CPU has SHA, SSE4.1, AVX2, AVX-512F and -VL.
            #[allow(unsafe_code)]
            Kernel::ShaniAvx512 => unsafe { shani::avx512::scan(job, start, count) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the assert above checked the CPU has AVX2.
            #[allow(unsafe_code)]
            Kernel::Avx2 => unsafe { x86::avx2::scan(job, start, count) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the assert above checked the CPU has AVX-512F.
            #[allow(unsafe_code)]
            Kernel::Avx512 => unsafe { x86::avx512::scan(job, start, count) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => scan_portable(job, start, count),
        }
    }
}

/// The second header block with `nonce`, padded: what is compressed after the midstate.
fn second_block(job: &Job, nonce: u32) -> [u8; 64] {
    let mut block = [0u8; 64];
    block[..16].copy_from_slice(&job.header_with(nonce)[64..80]);
    block[16] = 0x80;
    block[62..].copy_from_slice(&640u16.to_be_bytes());
    block
}

/// The outer hash's single padded block, around the inner digest.
fn outer_block(inner: &[u32; 8]) -> [u8; 64] {
    let mut block = [0u8; 64];
    for (i, w) in inner.iter().enumerate() {
        block[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
    }
    block[32] = 0x80;
    block[62..].copy_from_slice(&256u16.to_be_bytes());
    block
}

fn scan_portable(job: &Job, start: u32, count: u32) -> Option<u32> {
    let last = start.checked_add(count.checked_sub(1)?)?;
    let mut block = second_block(job, start);
    let outer_pad = outer_block(&[0; 8]);
    for nonce in start..=last {
        block[12..16].copy_from_slice(&nonce.to_le_bytes());
        let mut inner = job.midstate;
        compress(&mut inner, &block);
        let mut outer_in = outer_pad;
        for (i, w) in inner.iter().enumerate() {
            outer_in[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
        }
        let mut outer = IV;
        compress(&mut outer, &outer_in);
        if outer[7] & job.h7_mask == 0 && job.meets_target(nonce) {
            return Some(nonce);
        }
    }
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Job, IV, K};

    /// One SHA-256 round on the state array `$s` with `$kw` = K[t] + W[t].
    macro_rules! sha_round {
        ($s:ident, $kw:expr) => {{
            let t1 = add3(add($s[7], bsig1($s[4])), ch($s[4], $s[5], $s[6]), $kw);
            let t2 = add(bsig0($s[0]), maj($s[0], $s[1], $s[2]));
            $s = [
                add(t1, t2),
                $s[0],
                $s[1],
                $s[2],
                add($s[3], t1),
                $s[4],
                $s[5],
                $s[6],
            ];
        }};
    }

    /// Rounds whose message word is in `$w` (indices are literals, so everything unrolls).
    macro_rules! rounds_w {
        ($s:ident, $w:ident; $($t:literal)*) => {
            $( sha_round!($s, add(splat(K[$t]), $w[$t])); )*
        };
    }

    /// Rounds whose message word is zero padding: only the constant is added.
    macro_rules! rounds_k {
        ($s:ident; $($t:literal)*) => {
            $( sha_round!($s, splat(K[$t])); )*
        };
    }

    /// Message schedule words `$t` from the earlier ones.
    macro_rules! schedule {
        ($w:ident; $($t:literal)*) => {
            $( $w[$t] = add3(add(ssig1($w[$t - 2]), $w[$t - 7]), ssig0($w[$t - 15]), $w[$t - 16]); )*
        };
    }

    /// Double SHA-256 of the header's second block across lanes; shared by the SIMD kernels.
    /// Needs, in scope: `V`, `LANES`, `splat`, `add`, `add3`, `ch`, `maj`, `bsig0`, `bsig1`,
    /// `ssig0`, `ssig1`, `nonce_lanes`, `candidates`.
    macro_rules! simd_scan {
        ($feature:literal) => {
            /// Scans `count` nonces from `start`, `LANES` at a time.
            #[target_feature(enable = $feature)]
            pub fn scan(job: &Job, start: u32, count: u32) -> Option<u32> {
                let end = u64::from(start) + u64::from(count);
                let [w0, w1, w2] = job.tail;
                // Nonce-free schedule words of the second block: W16 and W17 are constants.
                let w16 = ssig0_s(w1).wrapping_add(w0);
                let w17 = ssig1_s(640).wrapping_add(ssig0_s(w2)).wrapping_add(w1);
                // The nonce (W3) enters round 3 only through T1, which is added to `a` and
                // `e`: the state after round 3 is that of nonce 0 plus the nonce in `a` and `e`.
                let mut pre4 = job.pre3;
                super::super::round(&mut pre4, K[3]);
                let pre: [V; 8] = std::array::from_fn(|i| splat(pre4[i]));
                let mid: [V; 8] = std::array::from_fn(|i| splat(job.midstate[i]));
                let iv: [V; 8] = std::array::from_fn(|i| splat(IV[i]));
                // Likewise the outer hash's round 0 from the IV, with its W0 added afterwards.
                let mut iv1 = IV;
                super::super::round(&mut iv1, K[0]);
                let iv1: [V; 8] = std::array::from_fn(|i| splat(iv1[i]));
                let mut base = u64::from(start);
                while base < end {
                    // Inner hash, rounds 4..64, from the state after round 3.
                    let mut w = [splat(0); 64];
                    w[0] = splat(w0);
                    w[1] = splat(w1);
                    w[2] = splat(w2);
                    w[3] = nonce_lanes(base as u32);
                    w[4] = splat(0x8000_0000);
                    w[15] = splat(640);
                    w[16] = splat(w16);
                    w[17] = splat(w17);
                    schedule!(w; 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39
                        40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
                    let mut s = pre;
                    s[0] = add(s[0], w[3]);
                    s[4] = add(s[4], w[3]);
                    rounds_w!(s, w; 4);
                    rounds_k!(s; 5 6 7 8 9 10 11 12 13 14);
                    rounds_w!(s, w; 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35
                        36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59
                        60 61 62 63);
                    // Outer hash of the inner digest: words 0..8 vary, the rest is padding.
                    let mut w = [splat(0); 64];
                    for i in 0..8 {
                        w[i] = add(s[i], mid[i]);
                    }
                    w[8] = splat(0x8000_0000);
                    w[15] = splat(256);
                    schedule!(w; 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37
                        38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60);
                    let mut s = iv1;
                    s[0] = add(s[0], w[0]);
                    s[4] = add(s[4], w[0]);
                    rounds_w!(s, w; 1 2 3 4 5 6 7 8);
                    rounds_k!(s; 9 10 11 12 13 14);
                    rounds_w!(s, w; 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35
                        36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59
                        60);
                    // After round 60, `e` is what `h` will be after round 63: word 7.
                    let h7 = add(s[4], iv[7]);
                    let mut hits = candidates(h7, job.h7_mask);
                    while hits != 0 {
                        let nonce = base + u64::from(hits.trailing_zeros());
                        if nonce < end && job.meets_target(nonce as u32) {
                            return Some(nonce as u32);
                        }
                        hits &= hits - 1;
                    }
                    base += u64::from(LANES);
                }
                None
            }

            fn ssig0_s(x: u32) -> u32 {
                x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
            }

            fn ssig1_s(x: u32) -> u32 {
                x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
            }
        };
    }

    pub mod avx2 {
        use super::{Job, IV, K};
        use std::arch::x86_64::*;

        type V = __m256i;
        const LANES: u32 = 8;

        #[inline]
        #[target_feature(enable = "avx2")]
        fn splat(x: u32) -> V {
            _mm256_set1_epi32(x as i32)
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        fn add(a: V, b: V) -> V {
            _mm256_add_epi32(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        fn add3(a: V, b: V, c: V) -> V {
            _mm256_add_epi32(_mm256_add_epi32(a, b), c)
        }
        macro_rules! ror {
            ($x:expr, $n:literal) => {
                _mm256_or_si256(
                    _mm256_srli_epi32::<$n>($x),
                    _mm256_slli_epi32::<{ 32 - $n }>($x),
                )
            };
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        fn xor3(a: V, b: V, c: V) -> V {
            _mm256_xor_si256(_mm256_xor_si256(a, b), c)
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        fn bsig0(x: V) -> V {
            xor3(ror!(x, 2), ror!(x, 13), ror!(x, 22))
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        fn bsig1(x: V) -> V {
            xor3(ror!(x, 6), ror!(x, 11), ror!(x, 25))
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        fn ssig0(x: V) -> V {
            xor3(ror!(x, 7), ror!(x, 18), _mm256_srli_epi32::<3>(x))
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        fn ssig1(x: V) -> V {
            xor3(ror!(x, 17), ror!(x, 19), _mm256_srli_epi32::<10>(x))
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        fn ch(e: V, f: V, g: V) -> V {
            // g ^ (e & (f ^ g))
            _mm256_xor_si256(g, _mm256_and_si256(e, _mm256_xor_si256(f, g)))
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        fn maj(a: V, b: V, c: V) -> V {
            // (a & b) | (c & (a | b))
            _mm256_or_si256(
                _mm256_and_si256(a, b),
                _mm256_and_si256(c, _mm256_or_si256(a, b)),
            )
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        fn nonce_lanes(base: u32) -> V {
            let n = |i: u32| base.wrapping_add(i).swap_bytes() as i32;
            _mm256_setr_epi32(n(0), n(1), n(2), n(3), n(4), n(5), n(6), n(7))
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        fn candidates(h7: V, mask: u32) -> u32 {
            let masked = _mm256_and_si256(h7, splat(mask));
            let zero = _mm256_cmpeq_epi32(masked, _mm256_setzero_si256());
            _mm256_movemask_ps(_mm256_castsi256_ps(zero)) as u32
        }

        simd_scan!("avx2");
    }

    pub mod avx512 {
        use super::{Job, IV, K};
        use std::arch::x86_64::*;

        type V = __m512i;
        const LANES: u32 = 16;

        #[inline]
        #[target_feature(enable = "avx512f")]
        fn splat(x: u32) -> V {
            _mm512_set1_epi32(x as i32)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn add(a: V, b: V) -> V {
            _mm512_add_epi32(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn add3(a: V, b: V, c: V) -> V {
            _mm512_add_epi32(_mm512_add_epi32(a, b), c)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn xor3(a: V, b: V, c: V) -> V {
            _mm512_ternarylogic_epi32::<0x96>(a, b, c)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn bsig0(x: V) -> V {
            xor3(
                _mm512_ror_epi32::<2>(x),
                _mm512_ror_epi32::<13>(x),
                _mm512_ror_epi32::<22>(x),
            )
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn bsig1(x: V) -> V {
            xor3(
                _mm512_ror_epi32::<6>(x),
                _mm512_ror_epi32::<11>(x),
                _mm512_ror_epi32::<25>(x),
            )
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn ssig0(x: V) -> V {
            xor3(
                _mm512_ror_epi32::<7>(x),
                _mm512_ror_epi32::<18>(x),
                _mm512_srli_epi32::<3>(x),
            )
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn ssig1(x: V) -> V {
            xor3(
                _mm512_ror_epi32::<17>(x),
                _mm512_ror_epi32::<19>(x),
                _mm512_srli_epi32::<10>(x),
            )
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn ch(e: V, f: V, g: V) -> V {
            _mm512_ternarylogic_epi32::<0xCA>(e, f, g)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn maj(a: V, b: V, c: V) -> V {
            _mm512_ternarylogic_epi32::<0xE8>(a, b, c)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn nonce_lanes(base: u32) -> V {
            let n = |i: u32| base.wrapping_add(i).swap_bytes() as i32;
            _mm512_setr_epi32(
                n(0),
                n(1),
                n(2),
                n(3),
                n(4),
                n(5),
                n(6),
                n(7),
                n(8),
                n(9),
                n(10),
                n(11),
                n(12),
                n(13),
                n(14),
                n(15),
            )
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn candidates(h7: V, mask: u32) -> u32 {
            // Lanes where (h7 & mask) == 0.
            u32::from(_mm512_testn_epi32_mask(h7, splat(mask)))
        }

        simd_scan!("avx512f");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn job(seed: u8, bits: u32) -> Job {
        let mut header = [0u8; 80];
        for (i, b) in header.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
        }
        Job::new(header, Target::from_compact(bits).unwrap())
    }

    /// The reference: every nonce in the range hashed with `sha2` directly.
    fn reference(job: &Job, start: u32, count: u32) -> Option<u32> {
        (0..count).map(|i| start + i).find(|&n| job.meets_target(n))
    }

    #[test]
    fn every_kernel_matches_sha2_on_easy_targets() {
        // Targets that hit often (every 2, ~256 and ~65,536 hashes): many hits and misses.
        for bits in [0x207fffff, 0x2000ffff, 0x1f00ffff] {
            for seed in 0..6 {
                let j = job(seed, bits);
                for kernel in Kernel::available() {
                    for start in [0u32, 5, 1_000] {
                        assert_eq!(
                            kernel.scan(&j, start, 3_000),
                            reference(&j, start, 3_000),
                            "{kernel} bits {bits:#x} seed {seed} start {start}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn kernels_respect_the_range_end_and_the_top_of_the_nonce_space() {
        let j = job(9, 0x207fffff);
        for kernel in Kernel::available() {
            // A range shorter than the lane count must not report nonces past its end.
            for count in 0..20 {
                assert_eq!(
                    kernel.scan(&j, 100, count),
                    reference(&j, 100, count),
                    "{kernel} {count}"
                );
            }
            let top = u32::MAX - 40;
            assert_eq!(
                kernel.scan(&j, top, 41),
                reference(&j, top, 41),
                "{kernel} top"
            );
        }
    }

    #[test]
    fn an_impossible_target_finds_nothing() {
        let j = job(1, 0x03000001);
        for kernel in Kernel::available() {
            assert_eq!(kernel.scan(&j, 0, 4_096), None, "{kernel}");
        }
    }

    #[test]
    fn the_fastest_kernel_is_the_one_with_the_best_figure() {
        let j = job(3, 0x03000001);
        assert!(Kernel::fastest(&[], &j).is_none());
        let kernels = Kernel::available();
        let (fastest, figures) = Kernel::fastest(&kernels, &j).unwrap();
        let order: Vec<Kernel> = figures.iter().map(|&(k, _)| k).collect();
        assert_eq!(order, kernels, "one figure per kernel, in the order given");
        assert!(figures.iter().all(|&(_, rate)| rate > 0.0), "{figures:?}");
        let best = figures.iter().map(|&(_, r)| r).fold(0.0, f64::max);
        assert_eq!(
            figures
                .iter()
                .find(|&&(k, _)| k == fastest)
                .map(|&(_, r)| r),
            Some(best)
        );
    }

    /// `shani` runs its AVX2 build where AVX2 exists; its SSE build (for SHA-NI CPUs without
    /// AVX2) is checked here directly.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_sse_build_of_shani_matches_sha2() {
        if !Kernel::Shani.is_supported() {
            return;
        }
        // SAFETY: the CPU has SHA and SSE4.1 (checked just above).
        #[allow(unsafe_code)]
        let scan = |j: &Job, start: u32, count: u32| unsafe { shani::sse::scan(j, start, count) };
        for bits in [0x207fffff, 0x2000ffff, 0x1f00ffff] {
            for seed in 0..6 {
                let j = job(seed, bits);
                for start in [0u32, 5, 1_000] {
                    assert_eq!(scan(&j, start, 3_000), reference(&j, start, 3_000));
                }
            }
        }
        let j = job(9, 0x207fffff);
        for count in 0..20 {
            assert_eq!(scan(&j, 100, count), reference(&j, 100, count), "{count}");
        }
        let top = u32::MAX - 40;
        assert_eq!(scan(&j, top, 41), reference(&j, top, 41));
    }

    proptest! {
        #[test]
        fn kernels_agree_on_random_headers(header in proptest::collection::vec(any::<u8>(), 80), start in any::<u32>()) {
            let header: [u8; 80] = header.try_into().unwrap();
            let j = Job::new(header, Target::from_compact(0x2000ffff).unwrap());
            let start = start.min(u32::MAX - 600);
            let expected = reference(&j, start, 600);
            for kernel in Kernel::available() {
                prop_assert_eq!(kernel.scan(&j, start, 600), expected, "{}", kernel);
            }
            #[cfg(target_arch = "x86_64")]
            if Kernel::Shani.is_supported() {
                // SAFETY: the CPU has SHA and SSE4.1 (checked just above).
                #[allow(unsafe_code)]
                let sse = unsafe { shani::sse::scan(&j, start, 600) };
                prop_assert_eq!(sse, expected, "shani SSE build");
            }
        }
    }
}
