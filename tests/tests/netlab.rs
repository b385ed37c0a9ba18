//! The network lab's scenarios (issue #19): 12 real nodes, each on its own host (a network
//! namespace with its own address), that know only one or two seeds. Blocks come from
//! `generatetoaddress` calls on chosen miners (regtest difficulty is fixed). Each scenario has a
//! deadline ([`chaincore_tests::DEADLINE`] per wait) and asserts its outcome; speed figures
//! are the bench's (`cargo bench -p chaincore-tests --bench netlab`), never asserted here.
//! Root only, as CI is: without it every scenario fails, saying so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::collections::HashSet;
use std::time::Duration;

use chaincore::encode::serialize;
use chaincore::{Amount, BlockHash, OutPoint, Transaction, TxOut};
use chaincore_tests::builder::Builder;
use chaincore_tests::lab::{exclusive, payout, Net};
use chaincore_tests::netns::Wiring;
use chaincore_tests::{signed_spend, wait_for};
use serde_json::json;

/// Builds `n` back-dated blocks on genesis and submits them to node 0; waits until the nodes
/// `which` have them all.
fn history(net: &Net, builder: &mut Builder, n: usize, which: &[usize]) -> Vec<BlockHash> {
    let genesis = chaincore::Network::Regtest.genesis_hash();
    let hashes = builder.submit_chain(net.node(0), &genesis, n);
    let tip = hashes.last().unwrap().to_string();
    net.wait_tip(which, &tip, "the pre-built history on every node");
    hashes
}

/// A spend of output `vout` of the builder's own spend in block `hash` (height ≥ 101), back
/// to the builder's key, paying a 10,000-unit fee.
fn spend_from(builder: &Builder, hash: &BlockHash, vout: u32) -> Transaction {
    let parent = &builder.transactions(hash)[1];
    let value = parent.output[vout as usize].value;
    signed_spend(
        builder.key(),
        &[OutPoint {
            txid: parent.compute_txid(),
            vout,
        }],
        vec![TxOut {
            value: value - Amount::from_units(10_000),
            script_pubkey: builder.script(),
        }],
    )
}

fn send(net: &Net, i: usize, tx: &Transaction) -> String {
    let txid = net
        .node(i)
        .rpc("sendrawtransaction", json!([hex::encode(serialize(tx))]));
    txid.as_str().unwrap().to_string()
}

/// True if node `i`'s active chain holds block `hash`.
fn on_active_chain(net: &Net, i: usize, hash: &str) -> bool {
    net.node(i)
        .call("getblockheader", json!([hash]))
        .is_ok_and(|h| h["confirmations"].as_i64().unwrap_or(-1) >= 1)
}

/// Waits until each side's nodes are connected among themselves (the side's own links form
/// one connected graph), so a partition leaves each side a working network.
fn wait_sides_linked(net: &Net, sides: &[&[usize]]) {
    wait_for("each side linked within itself", || {
        sides
            .iter()
            .all(|side| {
                let mut reached = vec![side[0]];
                let mut i = 0;
                while i < reached.len() {
                    let peers = net.peers_of(reached[i]);
                    for &j in side.iter() {
                        if !reached.contains(&j) && peers.contains(net.lab.host(j).1) {
                            reached.push(j);
                        }
                    }
                    i += 1;
                }
                reached.len() == side.len()
            })
            .then_some(())
    });
}

#[test]
fn twelve_nodes_two_miners_every_active_block_reaches_every_node_and_stales_are_counted() {
    let _one = exclusive();
    let net = Net::start("la", 78, 12, 12, &[], &Wiring::default());
    net.wait_connected(3);
    let all: Vec<usize> = (0..12).collect();
    // Two miners (not seeds) mine at the same moment, 20 times: some blocks race.
    let (a, b) = (net.node(4).client(), net.node(9).client());
    let mut mined = Vec::new();
    for _ in 0..20 {
        let other = std::thread::spawn({
            let b = b.client();
            move || b.rpc("generatetoaddress", json!([1, payout(9)]))
        });
        let ours = a.rpc("generatetoaddress", json!([1, payout(4)]));
        for h in [ours, other.join().unwrap()] {
            mined.push(h[0].as_str().unwrap().to_string());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    // A last block settles any tie; then every node is on one tip whose chain holds every
    // mined block that is not stale. A block that lost a race is relayed no further than the
    // nodes that took it first (as in Bitcoin, only a new best tip is announced).
    mined.extend(net.mine(4, 1));
    let tip = net.wait_agree(&all, "all twelve on one tip");
    let stale: Vec<&String> = mined
        .iter()
        .filter(|h| !on_active_chain(&net, 0, h))
        .collect();
    for i in all.iter().copied() {
        for h in mined.iter().filter(|h| !stale.contains(h)) {
            assert!(on_active_chain(&net, i, h), "node {i} lacks block {h}");
        }
    }
    let height = net.assert_one_utxo_set(&all);
    assert_eq!(height as usize, mined.len() - stale.len(), "tip {tip}");
    // The nodes' own count (their chain tips) names the same stale blocks.
    let known: HashSet<&String> = stale.iter().copied().collect();
    let counted = net.stale_blocks(&all);
    assert_eq!(counted.iter().collect::<HashSet<_>>(), known);
    println!("{} blocks mined, {} stale", mined.len(), stale.len());
}

#[test]
fn partition_five_seven_heals_onto_the_most_work_chain_and_losing_transactions_return() {
    let _one = exclusive();
    let (small, big): (&[usize], &[usize]) = (&[0, 2, 3, 4, 5], &[1, 6, 7, 8, 9, 10, 11]);
    let net = Net::start("lb", 79, 12, 12, &[], &Wiring::split(big));
    net.wait_connected(3);
    let mut builder = Builder::new();
    let all: Vec<usize> = (0..12).collect();
    let hashes = history(&net, &mut builder, 110, &all);
    wait_sides_linked(&net, &[small, big]);

    net.lab.partition(small, big).unwrap();
    // Each side mines on its own; a transaction only the smaller side sees is mined there.
    let lost = spend_from(&builder, &hashes[100], 0);
    let lost_txid = send(&net, 3, &lost);
    let kept = spend_from(&builder, &hashes[101], 0);
    let kept_txid = send(&net, 7, &kept);
    wait_for("each transaction on its own side", || {
        (small.iter().all(|&i| net.mempool(i).contains(&lost_txid))
            && big.iter().all(|&i| net.mempool(i).contains(&kept_txid)))
        .then_some(())
    });
    let small_tip = net.mine(2, 2).pop().unwrap();
    let big_tip = net.mine(8, 4).pop().unwrap();
    net.wait_tip(small, &small_tip, "the smaller side on its own tip");
    net.wait_tip(big, &big_tip, "the bigger side on its own tip");
    assert!(
        !net.mempool(3).contains(&lost_txid),
        "mined on the small side"
    );

    net.lab.heal(small, big).unwrap();
    net.wait_tip(&all, &big_tip, "all twelve on the most-work chain");
    // The losing branch's transaction is pending again everywhere, and the next block has it.
    wait_for(
        "the losing branch's transaction back in every mempool",
        || {
            all.iter()
                .all(|&i| net.mempool(i).contains(&lost_txid))
                .then_some(())
        },
    );
    let template = net
        .node(9)
        .rpc("getblocktemplate", json!([{"rules": ["segwit"]}]));
    assert!(template["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["txid"] == lost_txid));
    let last = net.mine(9, 1).pop().unwrap();
    net.wait_tip(&all, &last, "all twelve on the block that mined it");
    for i in all.iter().copied() {
        let out = net.node(i).rpc("gettxout", json!([lost_txid, 0]));
        assert_eq!(out["confirmations"], 1, "node {i}");
        assert!(net.mempool(i).is_empty(), "node {i}");
    }
    assert_eq!(net.node(0).rpc("getblockcount", json!([])), json!(115));
    net.assert_one_utxo_set(&all);
}

#[test]
fn churn_kill_nine_and_restart_random_nodes_all_agree_at_the_end() {
    let _one = exclusive();
    let mut net = Net::start("lc", 80, 12, 12, &[], &Wiring::default());
    net.wait_connected(3);
    let all: Vec<usize> = (0..12).collect();
    // Nodes 0 and 1 mine; every other is fair game. The choice is seeded and printed.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("churn seed {seed}");
    let mut killed = HashSet::new();
    for round in 0..10 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let victim = 2 + (seed % 10) as usize;
        net.node_mut(victim).kill9();
        killed.insert(victim);
        net.mine(round % 2, 2);
        std::thread::sleep(Duration::from_secs(1));
        // Restarted on the same data directory: it must open it as it was left.
        net.node_mut(victim).restart();
    }
    let tip = net.mine(0, 1).pop().unwrap();
    net.wait_tip(&all, &tip, "all twelve on the miners' tip after the churn");
    net.assert_one_utxo_set(&all);
    println!("killed and restarted: {killed:?}");
}

#[test]
fn late_joiner_syncs_five_hundred_blocks_and_the_mempool_from_gossiped_peers() {
    let _one = exclusive();
    let mut net = Net::start("ld", 81, 13, 12, &[], &Wiring::default());
    net.wait_connected(3);
    let mut builder = Builder::new();
    let running: Vec<usize> = (0..12).collect();
    let hashes = history(&net, &mut builder, 500, &running);
    let pending: HashSet<String> = (0..3)
        .map(|k| send(&net, 5, &spend_from(&builder, &hashes[100 + k], 1)))
        .collect();
    wait_for("the pending transactions on every node", || {
        running
            .iter()
            .all(|&i| net.mempool(i) == pending)
            .then_some(())
    });

    net.start_node(12);
    let tip = hashes.last().unwrap().to_string();
    net.wait_tip(&[12], &tip, "the late joiner at the tip");
    wait_for("the late joiner's mempool", || {
        (net.mempool(12) == pending).then_some(())
    });
    let template = net
        .node(12)
        .rpc("getblocktemplate", json!([{"rules": ["segwit"]}]));
    let in_template: HashSet<String> = template["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["txid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(in_template, pending);
    // It knew only the two seeds; the rest it learned from their `addr` gossip.
    let seeds: HashSet<String> = [0, 1].iter().map(|&i| net.lab.host(i).1.into()).collect();
    wait_for("the late joiner connected beyond the seeds", || {
        net.peers_of(12).difference(&seeds).next().map(|_| ())
    });
    net.assert_one_utxo_set(&(0..13).collect::<Vec<_>>());
}

#[test]
fn deep_partition_past_the_pending_header_cap_the_lighter_side_follows_after_heal() {
    let _one = exclusive();
    let (light, heavy): (&[usize], &[usize]) = (&[0, 1], &[2, 3]);
    let net = Net::start(
        "le",
        82,
        4,
        4,
        &["--pending-headers", "5"],
        &Wiring::split(heavy),
    );
    net.wait_connected(2);
    let all = [0, 1, 2, 3];
    let common = net.mine(0, 2).pop().unwrap();
    net.wait_tip(&all, &common, "a common history");
    wait_sides_linked(&net, &[light, heavy]);

    net.lab.partition(light, heavy).unwrap();
    // Both sides run well past the 5-header cap on a fork's pending headers.
    let light_tip = net.mine(0, 12).pop().unwrap();
    let heavy_tip = net.mine(2, 20).pop().unwrap();
    net.wait_tip(light, &light_tip, "the light side on its own tip");
    net.wait_tip(heavy, &heavy_tip, "the heavy side on its own tip");

    net.lab.heal(light, heavy).unwrap();
    net.wait_tip(&all, &heavy_tip, "all four on the heavier side's tip");
    assert_eq!(net.node(1).rpc("getblockcount", json!([])), json!(22));
    net.assert_one_utxo_set(&all);
}

#[test]
fn twenty_ms_on_every_path_between_hosts_a_block_reaches_all_and_round_trips_take_twice_that() {
    let _one = exclusive();
    let delay = Duration::from_millis(20);
    let wiring = Wiring {
        delay,
        ..Wiring::default()
    };
    let net = Net::start("lf", 83, 12, 12, &[], &wiring);
    net.wait_connected(3);
    let all: Vec<usize> = (0..12).collect();
    let tip = net.mine(7, 1).pop().unwrap();
    net.wait_tip(&all, &tip, "the block on all twelve");
    // Every P2P connection, to a seed or to a peer learned by gossip, crosses the delay once
    // each way: no round trip the kernel measured on it is shorter than twice the delay.
    let seeds: HashSet<String> = [0, 1].iter().map(|&i| net.lab.host(i).1.into()).collect();
    let mut gossiped = 0;
    for i in all {
        let rtts = net.p2p_rtts(i);
        assert!(!rtts.is_empty(), "node {i} has no P2P connection");
        for (peer, rtt) in rtts {
            assert!(rtt >= 2 * delay, "node {i} to {peer}: round trip {rtt:?}");
            gossiped += usize::from(!seeds.contains(&peer) && i > 1);
        }
    }
    assert!(gossiped > 0, "no connection beyond the seeds");
    assert!(
        net.lab.forwarded().0 > 0,
        "nothing went through the forwarders"
    );
}
