//! Nodes on separate hosts: six real nodes, each in its own network namespace with its own
//! address (root only; the test fails, saying so, where namespaces cannot be made). Each knows
//! only one seed; they must find each other through `version`'s `addr_recv` and `addr`
//! gossip, and when the network splits 3 + 3, each side must follow its own miner.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chaincore::key::PrivateKey;
use chaincore::{Address, Network};
use chaincore_tests::netns::{Lab, Wiring};
use chaincore_tests::{wait_for, Node, TempDir};
use serde_json::{json, Value};

fn addr() -> String {
    let key = PrivateKey::from_bytes(&[0x31; 32]).unwrap();
    Address::p2pkh(key.public_key().pubkey_hash(), Network::Regtest).to_string()
}

fn tip(node: &Node) -> Value {
    node.rpc("getbestblockhash", json!([]))
}

/// The hosts (by address) `node` is connected to.
fn peers_of(node: &Node) -> HashSet<String> {
    node.rpc("getpeerinfo", json!([]))
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["addr"].as_str()?.split(':').next().map(str::to_string))
        .collect()
}

#[test]
fn six_hosts_find_each_other_from_one_seed_and_split_sides_follow_their_own_miner() {
    let sides = [[0usize, 1, 2], [3, 4, 5]];
    let lab = Lab::on_subnet("ho", 77, 6, &Wiring::split(&sides[1])).unwrap_or_else(|e| {
        panic!("this test needs root to create network namespaces (CI runs as root): {e}")
    });
    let dir = TempDir::new("hosts");
    let (ns, host) = lab.host(0);
    let seed = Node::start_in_netns(&dir.sub("n0"), &[], ns, host);
    let seed_addr = seed.p2p_addr();
    let mut nodes = vec![seed];
    for i in 1..6 {
        let (ns, host) = lab.host(i);
        nodes.push(Node::start_in_netns(
            &dir.sub(&format!("n{i}")),
            &["--addnode", &seed_addr],
            ns,
            host,
        ));
    }
    // Within a minute every node has at least 3 connections, though each knew only the seed.
    let started = Instant::now();
    loop {
        let counts: Vec<usize> = nodes.iter().map(|n| peers_of(n).len()).collect();
        if counts.iter().all(|&c| c >= 3) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "after a minute, connections per node: {counts:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // A common history, then every node linked to the others of its side before the split.
    nodes[0].rpc("generatetoaddress", json!([2, addr()]));
    wait_for("all six on one tip", || {
        let t = tip(&nodes[0]);
        nodes.iter().all(|n| tip(n) == t).then_some(())
    });
    wait_for("each side fully linked", || {
        sides
            .iter()
            .all(|side| {
                side.iter().all(|&i| {
                    let peers = peers_of(&nodes[i]);
                    side.iter()
                        .filter(|&&j| j != i)
                        .all(|&j| peers.contains(lab.host(j).1))
                })
            })
            .then_some(())
    });

    lab.partition(&sides[0], &sides[1]).unwrap();
    nodes[0].rpc("generatetoaddress", json!([2, addr()]));
    nodes[3].rpc("generatetoaddress", json!([4, addr()]));
    for side in &sides {
        let miner = &nodes[side[0]];
        wait_for("a side to follow its own miner", || {
            let t = tip(miner);
            side.iter().all(|&i| tip(&nodes[i]) == t).then_some(())
        });
    }
    assert_ne!(tip(&nodes[0]), tip(&nodes[3]));
    assert_eq!(nodes[1].rpc("getblockcount", json!([])), json!(4));
    assert_eq!(nodes[4].rpc("getblockcount", json!([])), json!(6));

    // Healed, everyone follows the heavier side.
    lab.heal(&sides[0], &sides[1]).unwrap();
    let heavier = tip(&nodes[3]);
    wait_for("all six on the heavier side's tip", || {
        nodes.iter().all(|n| tip(n) == heavier).then_some(())
    });
}
