//! [`Amount`]: a quantity of coins in base units (1 coin = 100,000,000 units).
//!
//! Like Bitcoin Core's `CAmount` it is a signed 64-bit integer, so that a negative output value can
//! be decoded and then rejected by the consensus rules instead of wrapping around.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use crate::encode::{Decodable, Encodable, Error};

/// A signed number of base units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

/// Why a coin amount string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseAmountError {
    /// Not a decimal number.
    #[error("amount must be a decimal number of coins, like 12.5")]
    Malformed,
    /// Negative amounts are not allowed where a user types one.
    #[error("amount must not be negative")]
    Negative,
    /// More than eight decimal places.
    #[error("amount has more than 8 decimal places")]
    TooPrecise,
    /// More than the maximum money supply.
    #[error("amount exceeds the maximum of 21000000 coins")]
    TooLarge,
}

impl Amount {
    /// Zero units.
    pub const ZERO: Amount = Amount(0);
    /// Units in one coin.
    pub const ONE_COIN: Amount = Amount(100_000_000);
    /// # Consensus
    /// No amount may exceed 21,000,000 coins.
    pub const MAX_MONEY: Amount = Amount(21_000_000 * 100_000_000);

    /// An amount of `units` base units.
    pub const fn from_units(units: i64) -> Amount {
        Amount(units)
    }

    /// The amount in base units.
    pub const fn to_units(self) -> i64 {
        self.0
    }

    /// True if `0 <= self <= MAX_MONEY` (Bitcoin Core's `MoneyRange`).
    pub fn is_valid_money(self) -> bool {
        (0..=Self::MAX_MONEY.0).contains(&self.0)
    }

    /// Sum, or `None` on overflow.
    pub fn checked_add(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_add(rhs.0).map(Amount)
    }

    /// Difference, or `None` on overflow.
    pub fn checked_sub(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_sub(rhs.0).map(Amount)
    }

    /// Parses a non-negative coin amount with up to 8 decimals (`"12.5"`, `"0.00000001"`).
    pub fn from_coins_str(s: &str) -> Result<Amount, ParseAmountError> {
        let s = s.trim();
        if s.starts_with('-') {
            return Err(ParseAmountError::Negative);
        }
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
            return Err(ParseAmountError::Malformed);
        }
        if frac.len() > 8 {
            return Err(ParseAmountError::TooPrecise);
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 8 {
            return Err(ParseAmountError::TooLarge);
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| ParseAmountError::Malformed)?
        };
        let frac_units: i64 = format!("{frac:0<8}")
            .parse()
            .map_err(|_| ParseAmountError::Malformed)?;
        let amount = Amount(whole * Self::ONE_COIN.0 + frac_units);
        if amount > Self::MAX_MONEY {
            return Err(ParseAmountError::TooLarge);
        }
        Ok(amount)
    }
}

impl FromStr for Amount {
    type Err = ParseAmountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Amount::from_coins_str(s)
    }
}

/// Shows the amount in coins with exactly 8 decimals, like `12.50000000`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:08}", abs / 100_000_000, abs % 100_000_000)
    }
}

impl std::ops::Add for Amount {
    type Output = Amount;

    /// Panics on overflow in debug builds like any integer addition; consensus code uses
    /// [`Amount::checked_add`] on untrusted values.
    fn add(self, rhs: Amount) -> Amount {
        Amount(self.0 + rhs.0)
    }
}

impl std::ops::Sub for Amount {
    type Output = Amount;

    fn sub(self, rhs: Amount) -> Amount {
        Amount(self.0 - rhs.0)
    }
}

impl std::iter::Sum for Amount {
    fn sum<I: Iterator<Item = Amount>>(iter: I) -> Amount {
        iter.fold(Amount::ZERO, |a, b| a + b)
    }
}

impl Encodable for Amount {
    fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<usize> {
        self.0.consensus_encode(w)
    }
}

impl Decodable for Amount {
    fn consensus_decode<R: Read + ?Sized>(r: &mut R) -> Result<Self, Error> {
        Ok(Amount(i64::consensus_decode(r)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_coin_strings() {
        assert_eq!("12.5".parse::<Amount>(), Ok(Amount(1_250_000_000)));
        assert_eq!("0.00000001".parse::<Amount>(), Ok(Amount(1)));
        assert_eq!("21000000".parse::<Amount>(), Ok(Amount::MAX_MONEY));
        assert_eq!(".5".parse::<Amount>(), Ok(Amount(50_000_000)));
        assert_eq!("-1".parse::<Amount>(), Err(ParseAmountError::Negative));
        assert_eq!(
            "0.000000001".parse::<Amount>(),
            Err(ParseAmountError::TooPrecise)
        );
        assert_eq!(
            "21000000.00000001".parse::<Amount>(),
            Err(ParseAmountError::TooLarge)
        );
        assert_eq!(
            "99999999999999999999".parse::<Amount>(),
            Err(ParseAmountError::TooLarge)
        );
        for bad in ["", ".", "1e5", "abc", "1.2.3", "+1", " 1 2"] {
            assert_eq!(
                bad.parse::<Amount>(),
                Err(ParseAmountError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn displays_eight_decimals() {
        assert_eq!(Amount(1_250_000_000).to_string(), "12.50000000");
        assert_eq!(Amount(-1).to_string(), "-0.00000001");
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(units in 0..=Amount::MAX_MONEY.0) {
            let a = Amount(units);
            prop_assert_eq!(a.to_string().parse::<Amount>().unwrap(), a);
        }

        #[test]
        fn encoding_round_trips(units in any::<i64>()) {
            let bytes = crate::encode::serialize(&Amount(units));
            prop_assert_eq!(crate::encode::deserialize::<Amount>(&bytes).unwrap(), Amount(units));
        }
    }
}
