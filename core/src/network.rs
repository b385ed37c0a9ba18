//! The three networks (`main`, `test`, `regtest`), their parameters and genesis blocks.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use crate::amount::Amount;
use crate::block::{Block, Header};
use crate::hash::BlockHash;
use crate::pow::{AsertParams, Target};
use crate::script::Script;
use crate::transaction::Transaction;

/// One of the three ChainCore networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The production network.
    Main,
    /// The public test network (easier proof of work, its own coins).
    Test,
    /// Local regression testing: minimal proof of work, no difficulty adjustment.
    Regtest,
}

/// Everything that differs between networks.
#[derive(Debug)]
pub struct Params {
    /// Which network these are.
    pub network: Network,
    /// First four bytes of every P2P message.
    pub magic: [u8; 4],
    /// Default P2P port.
    pub p2p_port: u16,
    /// Default JSON-RPC port.
    pub rpc_port: u16,
    /// Base58Check version byte of P2PKH addresses.
    pub address_version: u8,
    /// Base58Check version byte of WIF private keys.
    pub wif_version: u8,
    /// The easiest allowed target, in compact form.
    pub pow_limit_bits: u32,
    /// Regtest: every block uses `pow_limit_bits`, no adjustment.
    pub no_retargeting: bool,
    /// ASERT parameters (anchor: the genesis block).
    pub asert: AsertParams,
    /// Genesis block time, Unix seconds.
    pub genesis_time: u32,
    /// Genesis block nonce (found once and fixed).
    pub genesis_nonce: u32,
}

/// ASERT as DESIGN.md fixes it: 10-second blocks, one-hour half-life.
const ASERT: AsertParams = AsertParams {
    target_spacing: 10,
    half_life: 3600,
};

/// 2026-11-22 00:00:00 UTC.
const GENESIS_TIME: u32 = 1_795_305_600;

const MAIN: Params = Params {
    network: Network::Main,
    magic: [0xcc, 0xc0, 0xe1, 0xd9],
    p2p_port: 8733,
    rpc_port: 8732,
    address_version: 28,
    wif_version: 28 + 128,
    pow_limit_bits: 0x1e0f_ffff,
    no_retargeting: false,
    asert: ASERT,
    genesis_time: GENESIS_TIME,
    genesis_nonce: 1_239_757,
};

const TEST: Params = Params {
    network: Network::Test,
    magic: [0xcc, 0x7e, 0x57, 0x0b],
    p2p_port: 18733,
    rpc_port: 18732,
    address_version: 127,
    wif_version: 127 + 128,
    pow_limit_bits: 0x1f00_ffff,
    no_retargeting: false,
    asert: ASERT,
    genesis_time: GENESIS_TIME,
    genesis_nonce: 21_539,
};

const REGTEST: Params = Params {
    network: Network::Regtest,
    magic: [0xcc, 0x4e, 0x67, 0x7a],
    p2p_port: 18744,
    rpc_port: 18743,
    address_version: 122,
    wif_version: 122 + 128,
    pow_limit_bits: 0x207f_ffff,
    no_retargeting: true,
    asert: ASERT,
    genesis_time: GENESIS_TIME,
    genesis_nonce: 0,
};

/// The message in every genesis coinbase.
const GENESIS_MESSAGE: &[u8] = b"ChainCore 2026-11-22: small enough to read, built to run";

impl Network {
    /// All networks, main first.
    pub const ALL: [Network; 3] = [Network::Main, Network::Test, Network::Regtest];

    /// The network's parameters.
    pub fn params(self) -> &'static Params {
        match self {
            Network::Main => &MAIN,
            Network::Test => &TEST,
            Network::Regtest => &REGTEST,
        }
    }

    /// The network's genesis block, built once.
    pub fn genesis_block(self) -> &'static Block {
        static BLOCKS: [OnceLock<Block>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        BLOCKS[self as usize].get_or_init(|| build_genesis(self.params()))
    }

    /// The genesis block's hash.
    pub fn genesis_hash(self) -> BlockHash {
        self.genesis_block().block_hash()
    }

    /// The easiest allowed target.
    pub fn pow_limit(self) -> Target {
        Target::from_compact(self.params().pow_limit_bits)
            .expect("every network's pow limit is a valid compact target")
    }
}

/// The genesis block: one coinbase with an empty `OP_RETURN` output, so genesis creates no
/// spendable coins.
fn build_genesis(params: &Params) -> Block {
    let mut script_sig = Script::new();
    script_sig.push_int(0).push_slice(GENESIS_MESSAGE);
    let coinbase = Transaction::new_coinbase(
        script_sig,
        Amount::ZERO,
        Script::new_op_return(&[]).expect("empty data fits"),
    );
    let merkle_root = crate::hash::TxMerkleNode(coinbase.compute_txid().0);
    Block {
        header: Header {
            version: 1,
            prev_blockhash: BlockHash::ZERO,
            merkle_root,
            time: params.genesis_time,
            bits: params.pow_limit_bits,
            nonce: params.genesis_nonce,
        },
        txdata: vec![coinbase],
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Network::Main => "main",
            Network::Test => "test",
            Network::Regtest => "regtest",
        })
    }
}

/// An unknown network name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown network '{0}': use main, test or regtest")]
pub struct UnknownNetwork(String);

impl FromStr for Network {
    type Err = UnknownNetwork;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "main" | "mainnet" => Ok(Network::Main),
            "test" | "testnet" => Ok(Network::Test),
            "regtest" => Ok(Network::Regtest),
            other => Err(UnknownNetwork(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::check_block;

    #[test]
    fn genesis_hashes_are_pinned() {
        let expected = [
            (
                Network::Main,
                "00000ade8ec0d45f8f6a6b425291370e11cbcaa58e88cea5f9c8f928c3cd3c0a",
            ),
            (
                Network::Test,
                "0000f56900ab1a5efedf83c8549dd2adaa68a3a82862c65575ec4dc795a5d27e",
            ),
            (
                Network::Regtest,
                "10db5f0f2a91b7d0dcd3dfb62226f300492f2eb5dbf0122974ba12630b69f488",
            ),
        ];
        for (net, hash) in expected {
            assert_eq!(net.genesis_hash().to_string(), hash, "{net}");
            assert_eq!(
                net.genesis_block().header.merkle_root.to_string(),
                "9ddecbb9eb5ab8d7bbbf912ba9b65982dcae3b92217e209a774fb44957fb417d"
            );
            check_block(net.genesis_block(), net).unwrap();
        }
    }

    #[test]
    fn networks_are_distinct_and_avoid_bitcoin() {
        let bitcoin_ports = [
            8332, 8333, 18332, 18333, 18443, 18444, 38332, 38333, 48332, 48333,
        ];
        for (i, a) in Network::ALL.iter().enumerate() {
            let p = a.params();
            assert!(!bitcoin_ports.contains(&p.p2p_port) && !bitcoin_ports.contains(&p.rpc_port));
            assert!(![0, 5, 111, 196].contains(&p.address_version));
            assert_eq!(a.to_string().parse::<Network>().unwrap(), *a);
            for b in &Network::ALL[i + 1..] {
                let q = b.params();
                assert_ne!(p.magic, q.magic);
                assert_ne!(p.address_version, q.address_version);
                assert_ne!((p.p2p_port, p.rpc_port), (q.p2p_port, q.rpc_port));
            }
        }
        assert!("bitcoin".parse::<Network>().is_err());
    }
}
