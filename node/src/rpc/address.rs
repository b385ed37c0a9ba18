//! Address index methods: balances, unspent outputs and txids by address, confirmed (from the
//! address index, as of its best block) and in the mempool. Each first waits, briefly, for an
//! index that has caught up with the chain to take in the latest tip (see
//! [`Node::index_state`]); `getaddressbalance` says when the index is behind the tip, and
//! `getaddressutxos` / `getaddresstxids` name the index's best block when asked
//! (`chainInfo`).

use chaincore::rpc::address::{AddressBalance, AddressTxids, AddressUtxo, AddressUtxos, Addresses};
use chaincore::rpc::{AddressIndexServer, Param};
use chaincore::{Address, Amount, OutPoint, Txid};
use jsonrpsee::core::{async_trait, RpcResult};

use super::{blocking, Rpc};
use crate::indexer::IndexState;
use crate::node::Node;
use crate::store::indexes::IndexKind;
use crate::store::{self};

use super::error::{err, MapError};

/// Longest an index RPC waits for a caught-up index to take in the latest tip.
pub const INDEX_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The address index's state once it has taken in the latest tip (or, if still catching up,
/// now); an error if it is off.
async fn address_index(node: &Node) -> RpcResult<IndexState> {
    node.index_state(IndexKind::Address, INDEX_PATIENCE)
        .await
        .ok_or_else(|| {
            err(
                chaincore::rpc::code::MISC_ERROR,
                "the address index is off: start the node with --addressindex",
            )
        })
}

#[async_trait]
impl AddressIndexServer for Rpc {
    async fn get_address_balance(&self, addresses: Param<Addresses>) -> RpcResult<AddressBalance> {
        let addrs = self.addresses(&addresses.get()?)?;
        let node = self.node.clone();
        address_index(&node).await?;
        blocking(move || {
            let view = AddressView::collect(&node, &addrs)?;
            let confirmed: Amount = view.confirmed.iter().map(|u| u.2.output.value).sum();
            let immature: Amount = view
                .confirmed
                .iter()
                .filter(|u| {
                    u.2.is_coinbase
                        && (view.tip + 1).saturating_sub(u.2.height)
                            < chaincore::validation::COINBASE_MATURITY
                })
                .map(|u| u.2.output.value)
                .sum();
            let received: Amount = view.pending_in.iter().map(|u| u.2.output.value).sum();
            let spent: Amount = view.pending_spent.iter().map(|c| c.output.value).sum();
            Ok(AddressBalance {
                balance: confirmed.to_units(),
                immature: immature.to_units(),
                unconfirmed: (received - spent).to_units(),
                index_height: (view.indexed < view.chain_tip).then_some(view.indexed),
            })
        })
        .await
    }

    async fn get_address_utxos(&self, addresses: Param<Addresses>) -> RpcResult<AddressUtxos> {
        let addresses = addresses.get()?;
        let chain_info = addresses.chain_info();
        let addrs = self.addresses(&addresses)?;
        let node = self.node.clone();
        address_index(&node).await?;
        blocking(move || {
            let view = AddressView::collect(&node, &addrs)?;
            let row = |(addr, op, coin): &(Address, OutPoint, chaincore::validation::Coin),
                       confirmed: bool,
                       spent: bool| {
                AddressUtxo {
                    address: addr.to_string(),
                    txid: op.txid,
                    outputIndex: op.vout,
                    script: hex::encode(coin.output.script_pubkey.as_bytes()),
                    satoshis: coin.output.value.to_units(),
                    height: confirmed.then_some(coin.height),
                    coinbase: coin.is_coinbase,
                    confirmations: if confirmed {
                        (view.tip + 1).saturating_sub(coin.height)
                    } else {
                        0
                    },
                    spentInMempool: spent,
                }
            };
            let mut out: Vec<AddressUtxo> = view
                .confirmed
                .iter()
                .map(|u| row(u, true, view.spent_outpoints.contains(&u.1)))
                .collect();
            out.extend(
                view.pending_in
                    .iter()
                    .map(|u| row(u, false, view.spent_outpoints.contains(&u.1))),
            );
            Ok(match view.best {
                Some(best) if chain_info => AddressUtxos::WithChainInfo {
                    utxos: out,
                    hash: best.hash,
                    height: best.height,
                },
                _ if chain_info => AddressUtxos::WithChainInfo {
                    utxos: out,
                    hash: node.network.genesis_hash(),
                    height: 0,
                },
                _ => AddressUtxos::List(out),
            })
        })
        .await
    }

    async fn get_address_txids(&self, addresses: Param<Addresses>) -> RpcResult<AddressTxids> {
        let addresses = addresses.get()?;
        let chain_info = addresses.chain_info();
        let addrs = self.addresses(&addresses)?;
        let node = self.node.clone();
        address_index(&node).await?;
        blocking(move || {
            let snap = node.snapshot();
            let rtx = node.begin_read().map_misc()?;
            let pool_txids = {
                let hashes: Vec<[u8; 20]> = addrs.iter().map(|a| a.pubkey_hash).collect();
                let pool: Vec<Txid> = snap
                    .mempool
                    .entries()
                    .filter(|e| {
                        e.tx.output.iter().any(|o| {
                            o.script_pubkey
                                .p2pkh_hash()
                                .is_some_and(|h| hashes.contains(&h))
                        }) || e.spent.iter().any(|c| {
                            c.output
                                .script_pubkey
                                .p2pkh_hash()
                                .is_some_and(|h| hashes.contains(&h))
                        })
                    })
                    .map(|e| e.txid)
                    .collect::<Vec<Txid>>();
                pool
            };
            let mut rows = Vec::new();
            for a in &addrs {
                rows.extend(store::read::address_txids(&rtx, &a.pubkey_hash).map_misc()?);
            }
            rows.sort();
            rows.dedup();
            let mut out: Vec<Txid> = rows.into_iter().map(|(_, t)| t).collect();
            out.extend(pool_txids);
            if !chain_info {
                return Ok(AddressTxids::List(out));
            }
            // The same read transaction the rows came from.
            let best = store::read::index_best(&rtx, IndexKind::Address).map_misc()?;
            Ok(AddressTxids::WithChainInfo {
                txids: out,
                hash: best.map_or(node.network.genesis_hash(), |b| b.hash),
                height: best.map_or(0, |b| b.height),
            })
        })
        .await
    }
}

/// Everything the address RPCs need, gathered from the address index (one read transaction)
/// and one snapshot's mempool.
struct AddressView {
    /// Height confirmations count from: the chain's tip, or the index's best block if that is
    /// higher (the index read may be newer than the snapshot).
    tip: u32,
    /// The index's best height.
    indexed: u32,
    /// The index's best block (`None`: nothing indexed yet, genesis).
    best: Option<store::indexes::IndexBest>,
    /// The snapshot's tip height.
    chain_tip: u32,
    confirmed: Vec<(Address, OutPoint, chaincore::validation::Coin)>,
    pending_in: Vec<(Address, OutPoint, chaincore::validation::Coin)>,
    pending_spent: Vec<chaincore::validation::Coin>,
    spent_outpoints: std::collections::HashSet<OutPoint>,
}

impl AddressView {
    fn collect(node: &Node, addrs: &[Address]) -> RpcResult<AddressView> {
        let snap = node.snapshot();
        let rtx = node.begin_read().map_misc()?;
        let chain_tip = snap.index.tip_height();
        let best = store::read::index_best(&rtx, IndexKind::Address).map_misc()?;
        let indexed = best.map_or(0, |b| b.height);
        let tip = chain_tip.max(indexed);
        let mut view = AddressView {
            tip,
            indexed,
            best,
            chain_tip,
            confirmed: Vec::new(),
            pending_in: Vec::new(),
            pending_spent: Vec::new(),
            spent_outpoints: Default::default(),
        };
        for a in addrs {
            for (op, coin) in store::read::address_coins(&rtx, &a.pubkey_hash).map_misc()? {
                view.confirmed.push((*a, op, coin));
            }
        }
        for e in snap.mempool.entries() {
            for (input, coin) in e.tx.input.iter().zip(&e.spent) {
                if addrs
                    .iter()
                    .any(|a| coin.output.script_pubkey.p2pkh_hash() == Some(a.pubkey_hash))
                {
                    view.pending_spent.push(coin.clone());
                    view.spent_outpoints.insert(input.previous_output);
                }
            }
            for (vout, out) in e.tx.output.iter().enumerate() {
                if let Some(a) = addrs
                    .iter()
                    .find(|a| out.script_pubkey.p2pkh_hash() == Some(a.pubkey_hash))
                {
                    let coin = chaincore::validation::Coin {
                        output: out.clone(),
                        height: tip + 1,
                        is_coinbase: false,
                    };
                    view.pending_in.push((
                        *a,
                        OutPoint {
                            txid: e.txid,
                            vout: vout as u32,
                        },
                        coin,
                    ));
                }
            }
        }
        Ok(view)
    }
}
