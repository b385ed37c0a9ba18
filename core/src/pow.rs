//! Proof of work: compact `bits` ↔ 256-bit [`Target`], chain [`Work`], the ASERT (aserti3-2d)
//! difficulty adjustment and the subsidy schedule.

use std::fmt;
use std::ops::Add;

use primitive_types::{U256, U512};

use crate::amount::Amount;
use crate::hash::BlockHash;

/// A proof-of-work target: a block hash, read as a little-endian 256-bit number, must not exceed
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target(U256);

impl Target {
    /// Decodes compact `bits` like Bitcoin Core's `SetCompact`; `None` if the value is negative,
    /// zero, or overflows 256 bits.
    pub fn from_compact(bits: u32) -> Option<Target> {
        let size = bits >> 24;
        let word = bits & 0x007f_ffff;
        let negative = word != 0 && bits & 0x0080_0000 != 0;
        let overflow =
            word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
        if negative || overflow {
            return None;
        }
        let value = if size <= 3 {
            U256::from(word >> (8 * (3 - size)))
        } else {
            U256::from(word) << (8 * (size - 3))
        };
        (!value.is_zero()).then_some(Target(value))
    }

    /// Encodes to compact `bits` like Bitcoin Core's `GetCompact` (rounding down).
    pub fn to_compact(self) -> u32 {
        let mut size = (self.0.bits() as u32).div_ceil(8);
        let mut compact = if size <= 3 {
            (self.0.low_u64() << (8 * (3 - size))) as u32
        } else {
            (self.0 >> (8 * (size - 3))).low_u64() as u32
        };
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        compact | (size << 24)
    }

    /// The target from its 32 big-endian bytes (the form `getblocktemplate` shows); `None` for
    /// zero.
    pub fn from_be_bytes(bytes: [u8; 32]) -> Option<Target> {
        let v = U256::from_big_endian(&bytes);
        (!v.is_zero()).then_some(Target(v))
    }

    /// The target as 32 big-endian bytes.
    pub fn to_be_bytes(self) -> [u8; 32] {
        self.0.to_big_endian()
    }

    /// # Consensus
    /// A block's proof of work is valid if its hash, as a little-endian number, is at most the
    /// target.
    pub fn is_met_by(self, hash: &BlockHash) -> bool {
        U256::from_little_endian(hash.as_bytes()) <= self.0
    }

    /// The expected number of hashes to meet this target: `2^256 / (target + 1)`.
    pub fn work(self) -> Work {
        // (2^256 - target - 1) / (target + 1) + 1, which avoids needing 257 bits.
        Work((!self.0 / (self.0 + U256::one())) + U256::one())
    }
}

impl fmt::Display for Target {
    /// 64 hex digits, big-endian, as Bitcoin Core's `getblocktemplate` `target`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_be_bytes()))
    }
}

/// Accumulated proof of work (Bitcoin Core's `nChainWork`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Work(U256);

impl Work {
    /// No work.
    pub const ZERO: Work = Work(U256::zero());

    /// From 32 big-endian bytes (as stored).
    pub fn from_be_bytes(bytes: [u8; 32]) -> Work {
        Work(U256::from_big_endian(&bytes))
    }

    /// As 32 big-endian bytes.
    pub fn to_be_bytes(self) -> [u8; 32] {
        self.0.to_big_endian()
    }

    /// An approximation as a float, for log lines and hash-rate estimates.
    pub fn to_f64(self) -> f64 {
        self.to_be_bytes()
            .iter()
            .fold(0.0, |acc, &b| acc * 256.0 + f64::from(b))
    }
}

impl Add for Work {
    type Output = Work;

    /// Saturates instead of wrapping (unreachable in practice: 2^256 hashes).
    fn add(self, rhs: Work) -> Work {
        Work(self.0.saturating_add(rhs.0))
    }
}

impl fmt::Display for Work {
    /// 64 hex digits, big-endian, as Bitcoin Core's `chainwork`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_be_bytes()))
    }
}

/// Bitcoin Core's `GetDifficulty`: how many times harder `bits` is than `0x1d00ffff`.
pub fn difficulty(bits: u32) -> f64 {
    let mut shift = (bits >> 24) & 0xff;
    let mut diff = f64::from(0x0000_ffff) / f64::from((bits & 0x00ff_ffff).max(1));
    while shift < 29 {
        diff *= 256.0;
        shift += 1;
    }
    while shift > 29 {
        diff /= 256.0;
        shift -= 1;
    }
    diff
}

/// Parameters of the ASERT difficulty adjustment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsertParams {
    /// Ideal seconds between blocks.
    pub target_spacing: i64,
    /// Seconds of schedule drift that halve (or double) the target.
    pub half_life: i64,
}

/// # Consensus
/// aserti3-2d (Bitcoin Cash's ASERT, Nov 2020), bit-exact with Bitcoin Cash Node's
/// `CalculateASERT`: the next target is the anchor target times
/// `2^((time_diff - spacing * (height_diff + 1)) / half_life)`, with the power of two
/// approximated by the spec's cubic in 16-bit fixed point, then clamped to `[1, pow_limit]`.
///
/// `time_diff` is the parent block's time minus the anchor block's parent's time, `height_diff`
/// the parent's height minus the anchor's height. Intermediate values use 512 bits, so unlike the
/// reference this needs no headroom above `pow_limit`; where the reference's assumptions hold,
/// results are identical.
pub fn asert_next_target(
    anchor_target: Target,
    pow_limit: Target,
    params: AsertParams,
    time_diff: i64,
    height_diff: i64,
) -> Target {
    let drift =
        i128::from(time_diff) - i128::from(params.target_spacing) * (i128::from(height_diff) + 1);
    let exponent = drift * 65536 / i128::from(params.half_life);
    // Floor division by 2^16 (arithmetic shift), as the reference requires.
    let shifts = (exponent >> 16) - 16;
    let frac = (exponent & 0xffff) as u128;
    let factor = 65536
        + ((195_766_423_245_049 * frac
            + 971_821_376 * frac * frac
            + 5127 * frac * frac * frac
            + (1 << 47))
            >> 48);
    let product = U512::from(anchor_target.0) * U512::from(factor as u64);
    let next = if shifts > 256 {
        return pow_limit;
    } else if shifts >= 0 {
        product << (shifts as usize)
    } else if shifts > -512 {
        product >> ((-shifts) as usize)
    } else {
        U512::zero()
    };
    if next.is_zero() {
        return Target(U256::one());
    }
    match U256::try_from(next) {
        Ok(v) if v <= pow_limit.0 => Target(v),
        _ => pow_limit,
    }
}

/// Base units created per block before any halving: 50 coins.
pub const INITIAL_SUBSIDY: Amount = Amount::from_units(50 * 100_000_000);

/// Blocks between subsidy halvings.
pub const HALVING_INTERVAL: u32 = 210_000;

/// # Consensus
/// The block subsidy: 50 coins, halved every 210,000 blocks, zero after 64 halvings.
pub fn block_subsidy(height: u32) -> Amount {
    let halvings = height / HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_units(INITIAL_SUBSIDY.to_units() >> halvings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compact_round_trips_known_values() {
        // Bitcoin mainnet's pow limit and the compact forms Bitcoin Core's tests use.
        let t = Target::from_compact(0x1d00ffff).unwrap();
        assert_eq!(
            t.to_string(),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(t.to_compact(), 0x1d00ffff);
        assert_eq!(
            Target::from_compact(0x05009234).unwrap().to_compact(),
            0x05009234
        );
        assert_eq!(Target::from_compact(0x04923456), None, "negative");
        assert_eq!(Target::from_compact(0x01003456), None, "zero");
        assert_eq!(Target::from_compact(0xff123456), None, "overflow");
        assert_eq!(
            Target::from_compact(0x207fffff).unwrap().to_compact(),
            0x207fffff
        );
        // 0x01123456 decodes to 0x12 and re-encodes as 0x01120000.
        assert_eq!(
            Target::from_compact(0x01123456).unwrap().to_compact(),
            0x01120000
        );
    }

    #[test]
    fn work_of_bitcoin_genesis_target() {
        // Bitcoin Core reports chainwork 0x100010001 for the genesis block.
        let w = Target::from_compact(0x1d00ffff).unwrap().work();
        assert_eq!(
            w.to_string(),
            "0000000000000000000000000000000000000000000000000000000100010001"
        );
        assert_eq!(Work::from_be_bytes(w.to_be_bytes()), w);
    }

    #[test]
    fn difficulty_matches_bitcoin_core() {
        assert_eq!(difficulty(0x1d00ffff), 1.0);
        assert!((difficulty(0x207fffff) - 4.656542373906925e-10).abs() < 1e-20);
    }

    #[test]
    fn subsidy_schedule() {
        assert_eq!(block_subsidy(0), INITIAL_SUBSIDY);
        assert_eq!(block_subsidy(209_999).to_units(), 5_000_000_000);
        assert_eq!(block_subsidy(210_000).to_units(), 2_500_000_000);
        assert_eq!(block_subsidy(210_000 * 33).to_units(), 0);
        let total: i64 = (0..64)
            .map(|h| block_subsidy(h * HALVING_INTERVAL).to_units() * i64::from(HALVING_INTERVAL))
            .sum();
        assert!(total <= Amount::MAX_MONEY.to_units());
    }

    const P: AsertParams = AsertParams {
        target_spacing: 10,
        half_life: 3600,
    };

    fn limit() -> Target {
        Target::from_compact(0x1e0fffff).unwrap()
    }

    proptest! {
        #[test]
        fn compact_encoding_is_stable(bits in any::<u32>()) {
            if let Some(t) = Target::from_compact(bits) {
                let again = Target::from_compact(t.to_compact()).unwrap();
                prop_assert_eq!(again.to_compact(), t.to_compact());
                prop_assert!(again <= t);
            }
        }

        #[test]
        fn asert_on_schedule_keeps_target(height in 0i64..10_000_000, bits in 0x1a00_8000u32..0x1e0f_ffff) {
            let anchor = Target::from_compact(bits);
            prop_assume!(anchor.is_some());
            let anchor = anchor.unwrap();
            let next = asert_next_target(anchor, limit(), P, (height + 1) * 10, height);
            prop_assert_eq!(next, anchor);
        }

        #[test]
        fn asert_fast_blocks_get_harder_slow_easier(height in 1i64..1_000_000, early in 1i64..100_000) {
            let anchor = Target::from_compact(0x1c0fffff).unwrap();
            let on_time = (height + 1) * 10;
            let fast = asert_next_target(anchor, limit(), P, on_time - early, height);
            let slow = asert_next_target(anchor, limit(), P, on_time + early, height);
            prop_assert!(fast <= anchor);
            prop_assert!(slow >= anchor);
            // Whole half-lives early/late halve/double the target exactly.
            let k = early % 4 + 1;
            let harder = asert_next_target(anchor, limit(), P, on_time - k * 3600, height);
            prop_assert_eq!(harder.0, anchor.0 >> (k as usize));
            let easier = asert_next_target(anchor, limit(), P, on_time + k * 3600, height);
            prop_assert_eq!(easier.0, anchor.0 << (k as usize));
        }

        #[test]
        fn asert_stays_in_range(time_diff in any::<i32>(), height in 0i64..100_000_000) {
            let next = asert_next_target(limit(), limit(), P, i64::from(time_diff), height);
            prop_assert!(next <= limit());
            prop_assert!(next.0 >= U256::one());
        }
    }
}
