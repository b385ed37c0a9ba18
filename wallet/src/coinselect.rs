//! Coin selection and fees: which coins to spend, whether to make change, and the fee from
//! the fee rate and the transaction's size.

use chaincore::{Amount, OutPoint, Script, TxOut};

/// Change worth less than this is not worth creating and the node would not relay it: the
/// dust threshold of a P2PKH output (core's [`TxOut::dust_threshold`], 546 units). Change
/// below it goes to the fee.
pub fn dust() -> i64 {
    TxOut {
        value: Amount::ZERO,
        script_pubkey: Script::new_p2pkh(&[0; 20]),
    }
    .dust_threshold()
    .to_units()
}

/// A fee rate, held in units per 1,000 bytes (as Bitcoin Core holds sat/kvB) so that rates
/// with decimals are exact: `--fee-rate 1.5` (units per byte) is 1,500.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeeRate(u64);

impl FeeRate {
    /// The node's minimum relay fee, 1 unit per byte.
    pub const MIN_RELAY: FeeRate = FeeRate::per_byte(1);

    /// `units` per byte.
    pub const fn per_byte(units: u64) -> FeeRate {
        FeeRate(units * 1_000)
    }

    /// `units` per 1,000 bytes.
    pub const fn per_kb(units: u64) -> FeeRate {
        FeeRate(units)
    }

    /// The fee for `size` bytes, rounded up to a whole unit, so the rate paid is never below
    /// this one.
    pub fn fee(self, size: usize) -> Amount {
        let milli = u128::from(self.0) * size as u128;
        Amount::from_units(i64::try_from(milli.div_ceil(1_000)).unwrap_or(i64::MAX))
    }
}

impl std::fmt::Display for FeeRate {
    /// Units per byte, with as many decimals as it has (`2`, `1.5`, `0.001`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, milli) = (self.0 / 1_000, self.0 % 1_000);
        if milli == 0 {
            write!(f, "{whole}")
        } else {
            let decimals = format!("{milli:03}");
            write!(f, "{whole}.{}", decimals.trim_end_matches('0'))
        }
    }
}

impl std::str::FromStr for FeeRate {
    type Err = String;

    /// Units per byte with up to three decimals: `2`, `1.5`, `0.25`.
    fn from_str(s: &str) -> Result<FeeRate, String> {
        let bad = || {
            format!("'{s}' is not a fee rate: give units per byte, a number like 2 or 1.5 (up to 3 decimals)")
        };
        let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty())
            || !digits(whole)
            || !digits(fraction)
            || fraction.len() > 3
        {
            return Err(bad());
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let milli: u64 = format!("{fraction:0<3}").parse().map_err(|_| bad())?;
        whole
            .checked_mul(1_000)
            .and_then(|w| w.checked_add(milli))
            .filter(|&r| r <= 1_000_000_000)
            .map(FeeRate)
            .ok_or_else(|| format!("fee rate '{s}' is absurdly high"))
    }
}

/// Largest serialized size of a signed P2PKH input: outpoint 36, script length 1, script
/// (push 73 = 72-byte DER signature + hash type, push 33-byte key) 108, sequence 4.
pub const MAX_INPUT_SIZE: usize = 149;

/// Serialized size of a P2PKH output.
pub const P2PKH_OUTPUT_SIZE: usize = 34;

/// A coin the wallet can spend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coin {
    /// Where it is.
    pub outpoint: OutPoint,
    /// Its value.
    pub value: Amount,
    /// The wallet address it pays.
    pub address: String,
}

/// The chosen coins and outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Coins to spend.
    pub inputs: Vec<Coin>,
    /// Payment (and data) outputs, in order.
    pub outputs: Vec<TxOut>,
    /// Change to return to the wallet, if worth making.
    pub change: Option<Amount>,
    /// Fee paid.
    pub fee: Amount,
}

/// Why no selection is possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// Not enough money.
    #[error("insufficient funds: {available} coins available, {needed} coins needed (including a fee of {fee})")]
    InsufficientFunds {
        /// Spendable total.
        available: Amount,
        /// Amount plus fee.
        needed: Amount,
        /// The fee that was included.
        fee: Amount,
    },
    /// After the fee, nothing (or only dust) would be sent.
    #[error("the amount after fees would be dust ({0} coins)")]
    Dust(Amount),
}

/// Size of a transaction with `inputs` P2PKH inputs and these outputs, signatures counted at
/// their largest.
pub fn max_size(inputs: usize, outputs: &[TxOut], change: bool) -> usize {
    let n_out = outputs.len() + usize::from(change);
    4 + compact_len(inputs)
        + inputs * MAX_INPUT_SIZE
        + compact_len(n_out)
        + outputs.iter().map(output_size).sum::<usize>()
        + if change { P2PKH_OUTPUT_SIZE } else { 0 }
        + 4
}

fn output_size(out: &TxOut) -> usize {
    8 + compact_len(out.script_pubkey.len()) + out.script_pubkey.len()
}

fn compact_len(n: usize) -> usize {
    chaincore::encode::CompactSize::encoded_len(n as u64)
}

/// Fee for `size` bytes at `rate`, rounded up to a whole unit.
pub fn fee_for(size: usize, rate: FeeRate) -> Amount {
    rate.fee(size)
}

/// Chooses coins to pay `outputs` at `rate`: one coin that fits without change if there is
/// one, else the largest coins first until the payment and fee are covered; change below
/// [`dust`] is left to the fee instead of creating a useless output.
pub fn select(
    coins: &[Coin],
    outputs: Vec<TxOut>,
    rate: FeeRate,
) -> Result<Selection, SelectError> {
    let target: i64 = outputs.iter().map(|o| o.value.to_units()).sum();
    let change_cost = dust() + fee_for(P2PKH_OUTPUT_SIZE, rate).to_units();
    let fits_without_change = |total: i64, n: usize| {
        let need = target + fee_for(max_size(n, &outputs, false), rate).to_units();
        total >= need && total - need < change_cost
    };

    // 1. The smallest single coin that pays exactly enough (within the cost of change).
    let mut by_value: Vec<&Coin> = coins.iter().collect();
    by_value.sort_by_key(|c| c.value);
    if let Some(c) = by_value
        .iter()
        .find(|c| fits_without_change(c.value.to_units(), 1))
    {
        return Ok(finish(vec![(*c).clone()], outputs, rate, false));
    }

    // 2. Largest first, stopping as soon as the total covers payment and fee.
    let mut chosen = Vec::new();
    let mut total = 0i64;
    for c in by_value.iter().rev() {
        chosen.push((*c).clone());
        total += c.value.to_units();
        if fits_without_change(total, chosen.len()) {
            return Ok(finish(chosen, outputs, rate, false));
        }
        let with_change = target + fee_for(max_size(chosen.len(), &outputs, true), rate).to_units();
        if total >= with_change + dust() {
            return Ok(finish(chosen, outputs, rate, true));
        }
    }
    let fee = fee_for(max_size(coins.len().max(1), &outputs, false), rate);
    Err(SelectError::InsufficientFunds {
        available: Amount::from_units(total),
        needed: Amount::from_units(target) + fee,
        fee,
    })
}

/// Spends every coin to one destination (plus any data outputs): the amount is the total minus
/// the fee.
pub fn select_all(
    coins: &[Coin],
    to: Script,
    data: Vec<TxOut>,
    rate: FeeRate,
) -> Result<Selection, SelectError> {
    let total: i64 = coins.iter().map(|c| c.value.to_units()).sum();
    let mut outputs = vec![TxOut {
        value: Amount::ZERO,
        script_pubkey: to,
    }];
    outputs.extend(data);
    let fee = fee_for(max_size(coins.len(), &outputs, false), rate);
    let amount = total - fee.to_units();
    if coins.is_empty() || amount < 0 {
        return Err(SelectError::InsufficientFunds {
            available: Amount::from_units(total),
            needed: fee,
            fee,
        });
    }
    if amount < dust() {
        return Err(SelectError::Dust(Amount::from_units(amount)));
    }
    outputs[0].value = Amount::from_units(amount);
    Ok(Selection {
        inputs: coins.to_vec(),
        outputs,
        change: None,
        fee,
    })
}

fn finish(inputs: Vec<Coin>, outputs: Vec<TxOut>, rate: FeeRate, change: bool) -> Selection {
    let total: i64 = inputs.iter().map(|c| c.value.to_units()).sum();
    let target: i64 = outputs.iter().map(|o| o.value.to_units()).sum();
    let fee = fee_for(max_size(inputs.len(), &outputs, change), rate);
    let (change, fee) = if change {
        (
            Some(Amount::from_units(total - target - fee.to_units())),
            fee,
        )
    } else {
        (None, Amount::from_units(total - target))
    };
    Selection {
        inputs,
        outputs,
        change,
        fee,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaincore::Txid;

    fn coin(n: u8, units: i64) -> Coin {
        Coin {
            outpoint: OutPoint {
                txid: Txid([n; 32]),
                vout: 0,
            },
            value: Amount::from_units(units),
            address: String::new(),
        }
    }

    fn pay(units: i64) -> Vec<TxOut> {
        vec![TxOut {
            value: Amount::from_units(units),
            script_pubkey: Script::new_p2pkh(&[1; 20]),
        }]
    }

    #[test]
    fn sizes_match_real_transactions() {
        // 1 input, 2 P2PKH outputs: 10 + 149 + 68 = 227 at most (226 with a 71-byte signature).
        assert_eq!(max_size(1, &pay(1), true), 227);
        assert_eq!(max_size(2, &pay(1), false), 4 + 1 + 298 + 1 + 34 + 4);
        assert_eq!(fee_for(227, FeeRate::per_byte(3)), Amount::from_units(681));
    }

    #[test]
    fn exact_single_coin_avoids_change() {
        let fee = fee_for(max_size(1, &pay(1), false), FeeRate::per_byte(1)).to_units();
        let coins = [
            coin(1, 1_000_000),
            coin(2, 50_000 + fee + 100),
            coin(3, 10_000_000),
        ];
        let s = select(&coins, pay(50_000), FeeRate::per_byte(1)).unwrap();
        assert_eq!(s.inputs, vec![coins[1].clone()]);
        assert_eq!(s.change, None);
        assert_eq!(
            s.fee.to_units(),
            fee + 100,
            "the tiny excess goes to the fee"
        );
    }

    #[test]
    fn largest_first_with_change() {
        let coins = [coin(1, 30_000), coin(2, 40_000), coin(3, 100_000)];
        let s = select(&coins, pay(120_000), FeeRate::per_byte(2)).unwrap();
        assert_eq!(s.inputs.len(), 2);
        assert_eq!(s.inputs[0], coins[2]);
        let fee = fee_for(max_size(2, &pay(1), true), FeeRate::per_byte(2));
        assert_eq!(s.fee, fee);
        assert_eq!(
            s.change,
            Some(Amount::from_units(140_000 - 120_000 - fee.to_units()))
        );
        // Inputs = outputs + change + fee.
        assert_eq!(
            140_000,
            120_000 + s.change.unwrap().to_units() + s.fee.to_units()
        );
    }

    #[test]
    fn insufficient_funds_reports_what_is_available() {
        let coins = [coin(1, 30_000), coin(2, 40_000)];
        let err = select(&coins, pay(100_000), FeeRate::per_byte(1)).unwrap_err();
        assert!(
            matches!(err, SelectError::InsufficientFunds { available, .. } if available.to_units() == 70_000)
        );
        assert!(err.to_string().contains("0.00070000 coins available"));
    }

    #[test]
    fn send_all_leaves_nothing() {
        let coins = [coin(1, 30_000), coin(2, 40_000)];
        let s = select_all(
            &coins,
            Script::new_p2pkh(&[2; 20]),
            vec![],
            FeeRate::per_byte(1),
        )
        .unwrap();
        assert_eq!(s.outputs[0].value.to_units() + s.fee.to_units(), 70_000);
        assert_eq!(s.change, None);
        assert!(matches!(
            select_all(&[coin(1, 300)], Script::new(), vec![], FeeRate::per_byte(1)),
            Err(SelectError::Dust(_)) | Err(SelectError::InsufficientFunds { .. })
        ));
        assert!(select_all(&[], Script::new(), vec![], FeeRate::per_byte(1)).is_err());
    }

    #[test]
    fn fee_rates_take_decimals_and_fees_round_up() {
        let r: FeeRate = "1.5".parse().unwrap();
        assert_eq!(r, FeeRate::per_kb(1_500));
        assert_eq!(r.fee(226), Amount::from_units(339));
        assert_eq!(r.fee(227), Amount::from_units(341), "340.5 rounds up");
        assert_eq!("0.5".parse::<FeeRate>().unwrap(), FeeRate::per_kb(500));
        assert_eq!(".25".parse::<FeeRate>().unwrap(), FeeRate::per_kb(250));
        assert_eq!("2".parse::<FeeRate>().unwrap(), FeeRate::per_byte(2));
        assert_eq!("2.".parse::<FeeRate>().unwrap(), FeeRate::per_byte(2));
        assert_eq!(FeeRate::per_kb(1_500).to_string(), "1.5");
        assert_eq!(FeeRate::per_kb(1_250).to_string(), "1.25");
        assert_eq!(FeeRate::per_byte(3).to_string(), "3");
        for bad in [
            "",
            ".",
            "-1",
            "1.2345",
            "abc",
            "1,5",
            "1e3",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<FeeRate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn change_is_never_dust() {
        assert_eq!(dust(), 546, "core's P2PKH dust threshold");
        // Every amount around the point where change stops being worth making.
        let rate = FeeRate::per_byte(1);
        let coins = [coin(1, 100_000)];
        for paid in 98_000..99_800 {
            let s = select(&coins, pay(paid), rate).unwrap();
            if let Some(change) = s.change {
                assert!(change.to_units() >= dust(), "{paid}: change {change}");
            }
        }
    }
}
