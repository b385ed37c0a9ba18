//! The SHA-NI kernels: nonces hashed interleaved with the SHA extensions, built twice: with SSE4.1
//! ([`sse`], kernel `shani`, two nonces; [`avx2`] in its place where AVX2 exists) and with
//! AVX-512VL ([`avx512`], kernel `shani-avx512`, three nonces).
//!
//! One nonce alone leaves the SHA unit idle most of the time, since each `sha256rnds2` waits
//! for the one before it; independent nonces side by side keep its pipeline full.
//!
//! What is done once per job rather than per nonce:
//! - rounds 0..4 of the second header block, with the nonce word taken as zero: the nonce (the
//!   block's word 3) enters round 3 only through T1, which is added to both `a` and `e`, so the
//!   state after round 3 for any nonce is that state plus the nonce in `a` and `e`;
//! - every message word of that block but the nonce is a constant, so rounds 4..16 add only
//!   constants, W16 and W17 are constants, and W18 and W19 are constants plus `σ0(nonce)` and
//!   the nonce;
//! - the outer hash's padding words 8..16 and what they contribute to the message schedule.
//!
//! The outer hash stops after its round 61: word 7 of the result is `e` after round 60 (plus
//! the IV), and that word alone pre-filters the nonces worth re-hashing with `sha2`.
//!
//! Register layout (Intel's): a state is two vectors, `abef` holding lanes `[f, e, b, a]` and
//! `cdgh` holding `[h, g, d, c]` (lane 0 first); message vectors hold four words in order.

/// Nonces hashed side by side with 16 XMM registers (2 measured 5–10% faster than 3 on this
/// host, side by side on one CPU: 3 spills its message words to the stack; 4 is 22% slower).
pub const WAYS_SSE: usize = 2;
/// Nonces hashed side by side with AVX-512VL's 32 XMM registers (the SHA instructions reach
/// only the lower 16, but message words and copies live in the upper ones instead of on the
/// stack; 3 measured as fast as 2 and faster than 4 and 5).
pub const WAYS_AVX512: usize = 3;

/// The whole kernel for one set of target features and lane count, so the compiler allocates
/// registers (and picks instruction encodings) for each.
macro_rules! kernel {
    ($features:literal, $ways:expr) => {
        use std::arch::x86_64::*;

        use super::super::{Job, IV, K};
        use super::{ssig0, ssig1};

        /// Nonces hashed side by side.
        const WAYS: usize = $ways;

        /// The lanes of a `[u32; 4]` as a vector, lane 0 first.
        #[inline]
        #[target_feature(enable = $features)]
        fn v(x: [u32; 4]) -> __m128i {
            _mm_setr_epi32(x[0] as i32, x[1] as i32, x[2] as i32, x[3] as i32)
        }

        /// `K[t..t + 4]` plus the message words `w`, as a vector.
        #[inline]
        #[target_feature(enable = $features)]
        fn kw(t: usize, w: [u32; 4]) -> __m128i {
            v(std::array::from_fn(|i| K[t + i].wrapping_add(w[i])))
        }

        /// The upper two words of `x` moved to the bottom (what the second `sha256rnds2` of four
        /// rounds reads).
        #[inline]
        #[target_feature(enable = $features)]
        fn high(x: __m128i) -> __m128i {
            _mm_shuffle_epi32::<0x0E>(x)
        }

        /// A state `[a, b, c, d, e, f, g, h]` in the `(abef, cdgh)` layout.
        #[inline]
        #[target_feature(enable = $features)]
        fn pack(s: [u32; 8]) -> (__m128i, __m128i) {
            (v([s[5], s[4], s[1], s[0]]), v([s[7], s[6], s[3], s[2]]))
        }

        /// Keeps the lanes interleaved: an empty `asm!` block per lane that the compiler may not move
        /// past the others, so it cannot finish one lane before it starts the next (it does that to
        /// save registers, which leaves the SHA unit waiting on one dependency chain).
        #[inline]
        #[target_feature(enable = $features)]
        fn interleave(abef: &mut [__m128i; WAYS]) {
            for x in abef.iter_mut() {
                // SAFETY: the block is empty: it reads and writes back one register and does nothing.
                #[allow(unsafe_code)]
                unsafe {
                    std::arch::asm!(
                        "/* {0} */",
                        inout(xmm_reg) * x,
                        options(nomem, nostack, preserves_flags)
                    );
                }
            }
        }

        /// Four rounds on every lane with `wk` = K + W for them.
        #[inline]
        #[target_feature(enable = $features)]
        fn rounds4(abef: &mut [__m128i; WAYS], cdgh: &mut [__m128i; WAYS], wk: [__m128i; WAYS]) {
            for i in 0..WAYS {
                cdgh[i] = _mm_sha256rnds2_epu32(cdgh[i], abef[i], wk[i]);
            }
            for i in 0..WAYS {
                abef[i] = _mm_sha256rnds2_epu32(abef[i], cdgh[i], high(wk[i]));
            }
            interleave(abef);
        }

        /// Four rounds on every lane whose K + W is the same constant for all lanes, given as its
        /// lower and upper halves.
        #[inline]
        #[target_feature(enable = $features)]
        fn rounds4_const(
            abef: &mut [__m128i; WAYS],
            cdgh: &mut [__m128i; WAYS],
            (lo, hi): (__m128i, __m128i),
        ) {
            for i in 0..WAYS {
                cdgh[i] = _mm_sha256rnds2_epu32(cdgh[i], abef[i], lo);
            }
            for i in 0..WAYS {
                abef[i] = _mm_sha256rnds2_epu32(abef[i], cdgh[i], hi);
            }
            interleave(abef);
        }

        /// Four rounds on every lane from message vector `m` (words `t..t + 4`).
        #[inline]
        #[target_feature(enable = $features)]
        fn rounds4_m(
            abef: &mut [__m128i; WAYS],
            cdgh: &mut [__m128i; WAYS],
            m: &[__m128i; WAYS],
            t: usize,
        ) {
            let k = kw(t, [0; 4]);
            rounds4(abef, cdgh, std::array::from_fn(|i| _mm_add_epi32(m[i], k)));
        }

        /// The next four message words from the previous sixteen (`m0` oldest).
        #[inline]
        #[target_feature(enable = $features)]
        fn schedule(m0: __m128i, m1: __m128i, m2: __m128i, m3: __m128i) -> __m128i {
            let x = _mm_add_epi32(_mm_sha256msg1_epu32(m0, m1), _mm_alignr_epi8::<4>(m3, m2));
            _mm_sha256msg2_epu32(x, m3)
        }

        /// `schedule` over every lane.
        #[inline]
        #[target_feature(enable = $features)]
        fn schedule_n(
            m0: &[__m128i; WAYS],
            m1: &[__m128i; WAYS],
            m2: &[__m128i; WAYS],
            m3: &[__m128i; WAYS],
        ) -> [__m128i; WAYS] {
            std::array::from_fn(|i| schedule(m0[i], m1[i], m2[i], m3[i]))
        }

        /// Scans `count` nonces from `start`, `WAYS` at a time.
        #[target_feature(enable = $features)]
        pub fn scan(job: &Job, start: u32, count: u32) -> Option<u32> {
            let end = u64::from(start) + u64::from(count);
            let [w0, w1, w2] = job.tail;
            // Inner block words: 0..3 from the header, 3 the nonce, 4 padding, 15 the length.
            let m1_in = [0x8000_0000, 0, 0, 0];
            let m3_in = [0, 0, 0, 640];
            // State after rounds 0..4 with the nonce word zero.
            let mut s4 = job.pre3;
            super::super::round(&mut s4, K[3]);
            let (pre_abef, pre_cdgh) = pack(s4);
            let (mid_abef, mid_cdgh) = pack(job.midstate);
            let const4 = |t: usize, w: [u32; 4]| {
                let x = kw(t, w);
                (x, high(x))
            };
            let kw4 = const4(4, m1_in);
            let kw8 = const4(8, [0; 4]);
            let kw12 = const4(12, m3_in);
            // W16..W20: constants plus [0, 0, σ0(nonce), nonce] = msg1([0, 0, 0, nonce], 0).
            let w16 = ssig0(w1).wrapping_add(w0);
            let w17 = ssig1(640).wrapping_add(ssig0(w2)).wrapping_add(w1);
            let w18 = ssig1(w16).wrapping_add(w2);
            let w19 = ssig1(w17).wrapping_add(ssig0(0x8000_0000));
            let m4_const = v([w16, w17, w18, w19]);
            // W20..W24 = msg2(msg1(M1, M2) + [W13, W14, W15, W16], M4), the first operand constant.
            let c5 = _mm_add_epi32(
                _mm_sha256msg1_epu32(v(m1_in), v([0; 4])),
                v([0, 0, 640, w16]),
            );
            // msg1(M3, M4) for W28..W32 only reads W12..W16: a constant.
            let c7 = v([0, 0, ssig0(640), 640u32.wrapping_add(ssig0(w16))]);
            // Outer block: words 8..16 are padding.
            let m2_out = v([0x8000_0000, 0, 0, 0]);
            let m3_out = v([0, 0, 0, 256]);
            let kw8_out = const4(8, [0x8000_0000, 0, 0, 0]);
            let kw12_out = const4(12, [0, 0, 0, 256]);
            // msg1(M2, M3) of the outer block: W8 + σ0(W9), ..., all constant.
            let c6_out = _mm_sha256msg1_epu32(m2_out, m3_out);
            let (iv_abef, iv_cdgh) = pack(IV);
            let k01 = v([K[0], K[1], 0, 0]);
            let k23 = v([K[2], K[3], 0, 0]);
            // Nonce lanes: byte-swapped into [0, n, 0, n] (added to a and e) and [0, 0, 0, n].
            let swap_ae = _mm_setr_epi8(-1, -1, -1, -1, 7, 6, 5, 4, -1, -1, -1, -1, 15, 14, 13, 12);
            let swap_w3 = _mm_setr_epi8(
                -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 15, 14, 13, 12,
            );
            let zero = _mm_setzero_si128();
            let lane_offsets: [__m128i; WAYS] = std::array::from_fn(|i| _mm_set1_epi32(i as i32));
            let mut base = u64::from(start);
            while base < end {
                let n0 = _mm_set1_epi32(base as u32 as i32);
                let nonce: [__m128i; WAYS] =
                    std::array::from_fn(|i| _mm_add_epi32(n0, lane_offsets[i]));
                // Inner hash from round 4.
                let mut abef: [__m128i; WAYS] = std::array::from_fn(|i| {
                    _mm_add_epi32(pre_abef, _mm_shuffle_epi8(nonce[i], swap_ae))
                });
                let mut cdgh = [pre_cdgh; WAYS];
                rounds4_const(&mut abef, &mut cdgh, kw4);
                rounds4_const(&mut abef, &mut cdgh, kw8);
                rounds4_const(&mut abef, &mut cdgh, kw12);
                let m4: [__m128i; WAYS] = std::array::from_fn(|i| {
                    let w3 = _mm_shuffle_epi8(nonce[i], swap_w3);
                    _mm_add_epi32(m4_const, _mm_sha256msg1_epu32(w3, zero))
                });
                rounds4_m(&mut abef, &mut cdgh, &m4, 16);
                let m5: [__m128i; WAYS] = std::array::from_fn(|i| _mm_sha256msg2_epu32(c5, m4[i]));
                rounds4_m(&mut abef, &mut cdgh, &m5, 20);
                let m6: [__m128i; WAYS] = std::array::from_fn(|i| {
                    _mm_sha256msg2_epu32(_mm_alignr_epi8::<4>(m5[i], m4[i]), m5[i])
                });
                rounds4_m(&mut abef, &mut cdgh, &m6, 24);
                let m7: [__m128i; WAYS] = std::array::from_fn(|i| {
                    let x = _mm_add_epi32(c7, _mm_alignr_epi8::<4>(m6[i], m5[i]));
                    _mm_sha256msg2_epu32(x, m6[i])
                });
                rounds4_m(&mut abef, &mut cdgh, &m7, 28);
                let (mut a, mut b, mut c, mut d) = (m4, m5, m6, m7);
                for t in (32..64).step_by(4) {
                    let next = schedule_n(&a, &b, &c, &d);
                    rounds4_m(&mut abef, &mut cdgh, &next, t);
                    (a, b, c, d) = (b, c, d, next);
                }
                // Outer hash of the inner digest.
                let mut o0 = [zero; WAYS];
                let mut o1 = [zero; WAYS];
                let mut wk0 = [zero; WAYS];
                let mut wk1 = [zero; WAYS];
                for i in 0..WAYS {
                    // [a, b, e, f] and [c, d, g, h] of the digest.
                    let abef_r = _mm_shuffle_epi32::<0x1B>(_mm_add_epi32(abef[i], mid_abef));
                    let cdgh_r = _mm_shuffle_epi32::<0x1B>(_mm_add_epi32(cdgh[i], mid_cdgh));
                    o0[i] = _mm_unpacklo_epi64(abef_r, cdgh_r);
                    o1[i] = _mm_unpackhi_epi64(abef_r, cdgh_r);
                    wk0[i] = _mm_add_epi32(abef_r, k01);
                    wk1[i] = _mm_add_epi32(cdgh_r, k23);
                }
                let mut abef = [iv_abef; WAYS];
                let mut cdgh = [iv_cdgh; WAYS];
                for i in 0..WAYS {
                    cdgh[i] = _mm_sha256rnds2_epu32(cdgh[i], abef[i], wk0[i]);
                }
                for i in 0..WAYS {
                    abef[i] = _mm_sha256rnds2_epu32(abef[i], cdgh[i], wk1[i]);
                }
                rounds4_m(&mut abef, &mut cdgh, &o1, 4);
                rounds4_const(&mut abef, &mut cdgh, kw8_out);
                rounds4_const(&mut abef, &mut cdgh, kw12_out);
                let m4: [__m128i; WAYS] = std::array::from_fn(|i| {
                    _mm_sha256msg2_epu32(_mm_sha256msg1_epu32(o0[i], o1[i]), m3_out)
                });
                rounds4_m(&mut abef, &mut cdgh, &m4, 16);
                let m5 = schedule_n(&o1, &[m2_out; WAYS], &[m3_out; WAYS], &m4);
                rounds4_m(&mut abef, &mut cdgh, &m5, 20);
                let m6: [__m128i; WAYS] = std::array::from_fn(|i| {
                    let x = _mm_add_epi32(c6_out, _mm_alignr_epi8::<4>(m5[i], m4[i]));
                    _mm_sha256msg2_epu32(x, m5[i])
                });
                rounds4_m(&mut abef, &mut cdgh, &m6, 24);
                let m7 = schedule_n(&[m3_out; WAYS], &m4, &m5, &m6);
                rounds4_m(&mut abef, &mut cdgh, &m7, 28);
                let (mut a, mut b, mut c, mut d) = (m4, m5, m6, m7);
                for t in (32..60).step_by(4) {
                    let next = schedule_n(&a, &b, &c, &d);
                    rounds4_m(&mut abef, &mut cdgh, &next, t);
                    (a, b, c, d) = (b, c, d, next);
                }
                // Rounds 60 and 61: lane 0 (f) of the new abef is e after round 60.
                let w60 = schedule_n(&a, &b, &c, &d);
                let k60 = kw(60, [0; 4]);
                for i in 0..WAYS {
                    let abef = _mm_sha256rnds2_epu32(cdgh[i], abef[i], _mm_add_epi32(w60[i], k60));
                    let h7 = (_mm_cvtsi128_si32(abef) as u32).wrapping_add(IV[7]);
                    let nonce = base + i as u64;
                    if h7 & job.h7_mask == 0 && nonce < end && job.meets_target(nonce as u32) {
                        return Some(nonce as u32);
                    }
                }
                base += WAYS as u64;
            }
            None
        }
    };
}

/// SHA-NI with SSE4.1 (legacy encodings, 16 XMM registers): any CPU with the SHA extensions.
pub mod sse {
    kernel!("sha,sse2,ssse3,sse4.1", super::WAYS_SSE);
}

/// SHA-NI with the other instructions in VEX encodings (three operands: fewer register copies),
/// 16 XMM registers: CPUs with AVX2, where it measured 3–5% faster than [`sse`].
pub mod avx2 {
    kernel!("sha,sse2,ssse3,sse4.1,avx,avx2", super::WAYS_SSE);
}

/// SHA-NI with the other instructions in EVEX encodings and 32 XMM registers: CPUs with
/// AVX-512VL.
pub mod avx512 {
    kernel!(
        "sha,sse2,ssse3,sse4.1,avx,avx2,avx512f,avx512vl",
        super::WAYS_AVX512
    );
}

/// σ0 of the message schedule.
fn ssig0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

/// σ1 of the message schedule.
fn ssig1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}
