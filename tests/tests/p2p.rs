//! End-to-end: several real `chaincore-node` processes talking P2P on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chaincore::encode::serialize;
use chaincore::key::PrivateKey;
use chaincore::{Address, Amount, Network, OutPoint, Script, TxOut};
use chaincore_tests::peer::RawPeer;
use chaincore_tests::replay::utxo_total;
use chaincore_tests::{wait_for, Node, TempDir};
use serde_json::{json, Value};

fn key() -> PrivateKey {
    PrivateKey::from_bytes(&[0x77; 32]).unwrap()
}

fn addr() -> String {
    Address::p2pkh(key().public_key().pubkey_hash(), Network::Regtest).to_string()
}

fn tip(node: &Node) -> Value {
    node.rpc("getbestblockhash", json!([]))
}

fn wait_same_tip(nodes: &[&Node]) {
    wait_for("nodes to agree on the tip", || {
        let first = tip(nodes[0]);
        nodes.iter().all(|n| tip(n) == first).then_some(())
    });
}

/// Starts nodes in a line: each connects to the one before it.
fn line(dir: &TempDir, n: usize) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let sub = dir.0.join(format!("n{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        let node = match nodes.last() {
            Some(prev) => Node::start(&sub, &["--connect", &prev.p2p_addr()]),
            None => Node::start(&sub, &[]),
        };
        nodes.push(node);
    }
    for pair in nodes.windows(2) {
        wait_for("peers to connect", || {
            (pair[1].rpc("getconnectioncount", json!([])).as_u64()? >= 1).then_some(())
        });
    }
    nodes
}

#[test]
fn blocks_and_transactions_cross_a_line_of_nodes() {
    let dir = TempDir::new("p2p-line");
    let nodes = line(&dir, 5);
    let (first, last) = (&nodes[0], &nodes[4]);
    first.rpc("generatetoaddress", json!([101, addr()]));
    wait_same_tip(&nodes.iter().collect::<Vec<_>>());
    assert_eq!(last.rpc("getblockcount", json!([])), json!(101));

    // A transaction sent to the first node is mined by the last one.
    let coinbase = first.rpc(
        "getblock",
        json!([first.rpc("getblockhash", json!([1])), 2]),
    );
    let txid = coinbase["tx"][0]["txid"].as_str().unwrap().parse().unwrap();
    let tx = chaincore_tests::signed_spend(
        &key(),
        &[OutPoint { txid, vout: 0 }],
        vec![TxOut {
            value: Amount::from_units(24 * 100_000_000),
            script_pubkey: Script::new_p2pkh(&[9; 20]),
        }],
    );
    let sent = first.rpc("sendrawtransaction", json!([hex::encode(serialize(&tx))]));
    wait_for("the transaction to reach the last node", || {
        last.rpc("getrawmempool", json!([]))
            .as_array()?
            .contains(&sent)
            .then_some(())
    });
    // A real miner attached to the last node mines it.
    let mut miner = chaincore_tests::Miner::start(last, &addr(), &["--threads", "1"]);
    wait_for(
        "the transaction to be mined and seen by the first node",
        || {
            let confirmations =
                first.rpc("getrawtransaction", json!([sent, true]))["confirmations"].as_u64()?;
            (confirmations >= 1).then_some(())
        },
    );
    miner.interrupt();
    wait_same_tip(&nodes.iter().collect::<Vec<_>>());
    assert_eq!(first.rpc("getrawmempool", json!([])), json!([]));
    let peers = nodes[1].rpc("getpeerinfo", json!([]));
    assert_eq!(peers.as_array().unwrap().len(), 2);
}

#[test]
fn a_late_node_syncs_and_survives_kill_9_during_sync() {
    let dir = TempDir::new("p2p-sync");
    let source = Node::start(&dir.0.join("a").tap_create(), &[]);
    source.rpc("generatetoaddress", json!([500, addr()]));
    let target = tip(&source);
    let mut late = Node::start(
        &dir.0.join("b").tap_create(),
        &["--connect", &source.p2p_addr()],
    );
    wait_for("sync to start", || {
        (late.rpc("getblockcount", json!([])).as_u64()? >= 50).then_some(())
    });
    late.kill9();
    late.restart();
    wait_for("the late node to finish syncing", || {
        (tip(&late) == target).then_some(())
    });
    assert_eq!(late.rpc("getblockcount", json!([])), json!(500));
    assert_eq!(late.rpc("verifychain", json!([4, 0])), json!(true));
}

#[test]
fn reorg_to_the_heavier_side_after_a_partition() {
    let dir = TempDir::new("p2p-partition");
    let a = Node::start(&dir.0.join("a").tap_create(), &[]);
    let b = Node::start(&dir.0.join("b").tap_create(), &[]);
    a.rpc("generatetoaddress", json!([3, addr()]));
    b.rpc("generatetoaddress", json!([5, addr()]));
    assert_ne!(tip(&a), tip(&b));
    // Heal: a connects to b; both must end on b's longer chain.
    a.rpc("addnode", json!([b.p2p_addr(), "add"]));
    wait_same_tip(&[&a, &b]);
    assert_eq!(a.rpc("getblockcount", json!([])), json!(5));
    assert_eq!(a.rpc("verifychain", json!([4, 0])), json!(true));
}

#[test]
fn hostile_bytes_get_a_peer_disconnected_while_honest_peers_keep_working() {
    let dir = TempDir::new("p2p-hostile");
    let nodes = line(&dir, 2);
    let victim = &nodes[0];
    for garbage in [
        b"\x00\x01\x02\x03garbage-with-a-wrong-magic..".to_vec(),
        {
            // Right magic, oversized length before the handshake.
            let mut m = Network::Regtest.params().magic.to_vec();
            m.extend_from_slice(b"version\0\0\0\0\0");
            m.extend_from_slice(&5_000_000u32.to_le_bytes());
            m.extend_from_slice(&[0; 4]);
            m
        },
        {
            // A well-framed version whose payload is garbage.
            let payload = [0xffu8; 40];
            let mut m = Network::Regtest.params().magic.to_vec();
            m.extend_from_slice(b"version\0\0\0\0\0");
            m.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            m.extend_from_slice(&chaincore::hash::sha256d(&payload)[..4]);
            m.extend_from_slice(&payload);
            m
        },
        {
            // Right magic, bad checksum.
            let mut m = Network::Regtest.params().magic.to_vec();
            m.extend_from_slice(b"ping\0\0\0\0\0\0\0\0");
            m.extend_from_slice(&8u32.to_le_bytes());
            m.extend_from_slice(&[1, 2, 3, 4]);
            m.extend_from_slice(&[0; 8]);
            m
        },
    ] {
        let mut s = TcpStream::connect(victim.p2p_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(&garbage).unwrap();
        // The node closes the connection: read returns 0 or an error (after its version).
        let mut buf = [0u8; 4096];
        let mut closed = false;
        for _ in 0..20 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => {
                    closed = true;
                    break;
                }
                Ok(_) => continue,
            }
        }
        assert!(closed, "the node kept a hostile connection open");
    }
    // The honest peer still syncs.
    victim.rpc("generatetoaddress", json!([2, addr()]));
    wait_same_tip(&[&nodes[0], &nodes[1]]);
    assert!(victim.log_text().contains("disconnecting peer"));
}

trait TapCreate {
    fn tap_create(self) -> Self;
}

impl TapCreate for std::path::PathBuf {
    fn tap_create(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn devnet_runs_connected_mining_nodes_and_stops_them_all() {
    let dir = TempDir::new("devnet");
    // Below Linux's ephemeral range, so other tests' free ports cannot land on these.
    let base = 20_000 + (std::process::id() % 5_000) as u16 * 2;
    let out_path = dir.0.join("devnet.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = std::process::Command::new(chaincore_tests::binary("chaincore-node"))
        .args([
            "devnet",
            "--nodes",
            "3",
            "--mine",
            "--base-port",
            &base.to_string(),
        ])
        .arg("--datadir")
        .arg(dir.0.join("net"))
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    // Not a terminal, so devnet's monitor prints its table as text after every poll.
    wait_for("three nodes on one tip at height 2 or more", || {
        let text = std::fs::read_to_string(&out_path).ok()?;
        let table = text.rsplit("3 nodes, best tip").next()?;
        let rows: Vec<Vec<&str>> = table
            .lines()
            .filter(|l| l.starts_with("http://127.0.0.1:"))
            .map(|l| l.split_whitespace().collect())
            .collect();
        let ok = rows.len() == 3
            && rows.iter().all(|r| {
                r.len() >= 6
                    && r[1] == "ok"
                    && r[2].parse::<u64>().is_ok_and(|h| h >= 2)
                    && r[3] == rows[0][3]
                    && r[5]
                        .split_once('/')
                        .and_then(|(i, o)| Some(i.parse::<u32>().ok()? + o.parse::<u32>().ok()?))
                        == Some(2)
            });
        ok.then_some(())
    });
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = wait_for("devnet to exit", || child.try_wait().unwrap());
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert!(text.contains("devnet stopped"), "{text}");
    // Every node's RPC port is closed again.
    for i in 0..3u16 {
        assert!(
            TcpStream::connect(("127.0.0.1", base + 2 * i)).is_err(),
            "node{i} still running"
        );
    }
}

#[test]
fn peer_management_rpcs_and_a_persisted_address_book() {
    let dir = TempDir::new("p2p-rpc");
    let mut nodes = line(&dir, 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let info = a.rpc("getnetworkinfo", json!([]));
    assert_eq!(info["connections"], json!(1));
    assert!(info["subversion"]
        .as_str()
        .unwrap()
        .starts_with("/chaincore:"));
    // b dialed a, so b's book holds a's address, and it survives a restart.
    let known = b.rpc("getnodeaddresses", json!([10]));
    assert!(
        known
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["port"] == json!(a.p2p_port)),
        "{known}"
    );
    a.rpc("ping", json!([]));
    a.rpc("setban", json!(["10.1.2.3", "add", 600]));
    let banned = a.rpc("listbanned", json!([]));
    assert_eq!(banned[0]["address"], json!("10.1.2.3/32"));
    a.rpc("clearbanned", json!([]));
    assert_eq!(a.rpc("listbanned", json!([])), json!([]));
    assert_eq!(
        a.call("disconnectnode", json!(["127.0.0.1:1"]))
            .unwrap_err()["code"],
        json!(-29)
    );
    // Disconnecting b's link from b's side: the --connect peer comes back by itself.
    let peer = b.rpc("getpeerinfo", json!([]))[0]["addr"]
        .as_str()
        .unwrap()
        .to_string();
    b.rpc("disconnectnode", json!([peer]));
    wait_for("the operator's peer to reconnect", || {
        (b.rpc("getconnectioncount", json!([])).as_u64()? == 1).then_some(())
    });
    // A node that met a peer only through `addnode onetry` keeps its address across a clean
    // restart: it comes from the store, not from the command line.
    let mut c = Node::start(&dir.0.join("c").tap_create(), &[]);
    c.rpc("addnode", json!([nodes[0].p2p_addr(), "onetry"]));
    wait_for("c to connect", || {
        (c.rpc("getconnectioncount", json!([])).as_u64()? >= 1).then_some(())
    });
    // Bytes cross the wire both ways on both nodes (the handshake alone is a few hundred
    // bytes each way; a connection counts before it is done, so wait for it).
    for n in [&c, &nodes[0]] {
        let t = wait_for("the handshake's bytes counted both ways", || {
            let t = n.rpc("getnettotals", json!([]));
            (t["totalbytesrecv"].as_u64()? > 100 && t["totalbytessent"].as_u64()? > 100)
                .then_some(t)
        });
        assert!(t["timemillis"].as_u64().unwrap() > 1_700_000_000_000, "{t}");
    }
    assert!(c.stop().success());
    c.restart();
    let known = c.rpc("getnodeaddresses", json!([10]));
    assert!(
        known
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["port"] == json!(nodes[0].p2p_port)),
        "{known}"
    );
    nodes[1].restart();
}

fn headers_payload(headers: &[chaincore::block::Header]) -> Vec<u8> {
    let mut p = serialize(&chaincore::encode::CompactSize(headers.len() as u64));
    for h in headers {
        p.extend_from_slice(&h.to_bytes());
        p.push(0);
    }
    p
}

#[test]
fn protocol_abuse_after_the_handshake_is_punished_and_honest_peers_carry_on() {
    let dir = TempDir::new("p2p-abuse");
    let nodes = line(&dir, 2);
    let victim = &nodes[0];
    victim.rpc("generatetoaddress", json!([3, addr()]));
    wait_same_tip(&[&nodes[0], &nodes[1]]);
    let tip_hash: chaincore::BlockHash = tip(victim).as_str().unwrap().parse().unwrap();
    let tip_header = chaincore::block::Header {
        prev_blockhash: tip_hash,
        ..Default::default()
    };

    // 2,001 headers: over the protocol limit.
    let mut p = RawPeer::connect(victim);
    p.send("headers", &headers_payload(&vec![tip_header; 2_001]));
    assert!(p.closed(), "2,001 headers were tolerated");

    // Headers that never connect to anything we know, again and again.
    let mut p = RawPeer::connect(victim);
    let stray = chaincore::block::Header {
        prev_blockhash: chaincore::BlockHash([7; 32]),
        bits: 0x207fffff,
        ..Default::default()
    };
    let mut stray = stray;
    while !stray
        .target()
        .unwrap()
        .is_met_by(&stray.compute_block_hash())
    {
        stray.nonce += 1;
    }
    for _ in 0..10 {
        p.send("headers", &headers_payload(&[stray]));
    }
    assert!(p.closed(), "non-connecting headers were tolerated");

    // A block whose proof of work is wrong.
    let mut p = RawPeer::connect(victim);
    let mut block = Network::Regtest.genesis_block().clone();
    block.header.prev_blockhash = tip_hash;
    block.header.bits = 0x207fffff;
    while block
        .header
        .target()
        .unwrap()
        .is_met_by(&block.block_hash())
    {
        block.header.nonce += 1;
    }
    p.send("block", &serialize(&block));
    assert!(p.closed(), "a block with bad proof of work was tolerated");

    // The honest peer still syncs and answers pings.
    victim.rpc("generatetoaddress", json!([2, addr()]));
    wait_same_tip(&[&nodes[0], &nodes[1]]);
    nodes[1].rpc("ping", json!([]));
    assert_eq!(victim.rpc("getconnectioncount", json!([])), json!(1));
    let log = victim.log_text();
    assert!(
        log.contains("headers has too many entries") || log.contains("too many"),
        "{log}"
    );
    assert!(log.contains("high-hash"), "{log}");
}

#[test]
fn partition_heals_onto_the_heavier_side_and_losing_transactions_come_back() {
    let dir = TempDir::new("p2p-split");
    // Two islands: 0-1 and 2-3-4.
    let mk = |i: usize, connect: Option<&Node>| {
        let sub = dir.0.join(format!("n{i}")).tap_create();
        match connect {
            Some(c) => Node::start(&sub, &["--addnode", &c.p2p_addr()]),
            None => Node::start(&sub, &[]),
        }
    };
    let n0 = mk(0, None);
    let n1 = mk(1, Some(&n0));
    let n2 = mk(2, None);
    let n3 = mk(3, Some(&n2));
    let n4 = mk(4, Some(&n3));
    // A common history, mined on n0 and handed to the other island over RPC, so the islands
    // never had a P2P link (discovery has nothing to reconnect to).
    n0.rpc("generatetoaddress", json!([101, addr()]));
    for h in 1..=101 {
        let raw = n0.rpc("getblock", json!([n0.rpc("getblockhash", json!([h])), 0]));
        assert_eq!(n2.rpc("submitblock", json!([raw])), Value::Null);
    }
    wait_same_tip(&[&n0, &n1]);
    wait_same_tip(&[&n2, &n3, &n4]);
    assert_eq!(tip(&n0), tip(&n2));

    // The small island mines 2 blocks including a spend; the large one mines 4.
    let cb = n0.rpc("getblock", json!([n0.rpc("getblockhash", json!([1])), 2]));
    let txid = cb["tx"][0]["txid"].as_str().unwrap().parse().unwrap();
    let lock = Address::p2pkh(key().public_key().pubkey_hash(), Network::Regtest).script_pubkey();
    let tx = chaincore_tests::signed_spend(
        &key(),
        &[OutPoint { txid, vout: 0 }],
        vec![TxOut {
            value: Amount::from_units(24 * 100_000_000),
            script_pubkey: lock.clone(),
        }],
    );
    let sent = n0.rpc("sendrawtransaction", json!([hex::encode(serialize(&tx))]));
    n0.rpc("generatetoaddress", json!([2, addr()]));
    n3.rpc("generatetoaddress", json!([4, addr()]));
    wait_same_tip(&[&n0, &n1]);
    wait_same_tip(&[&n2, &n3, &n4]);
    assert_ne!(tip(&n0), tip(&n2));

    // Heal.
    n1.rpc("addnode", json!([n4.p2p_addr(), "add"]));
    wait_same_tip(&[&n0, &n1, &n2, &n3, &n4]);
    assert_eq!(n0.rpc("getblockcount", json!([])), json!(105));
    // The spend only the losing side had mined is back in a mempool and gets mined again.
    wait_for("the losing side's transaction back in the mempool", || {
        n0.rpc("getrawmempool", json!([]))
            .as_array()?
            .contains(&sent)
            .then_some(())
    });
    wait_for(
        "the returned transaction to be relayed to the miner",
        || {
            n4.rpc("getrawmempool", json!([]))
                .as_array()?
                .contains(&sent)
                .then_some(())
        },
    );
    n4.rpc("generatetoaddress", json!([1, addr()]));
    wait_same_tip(&[&n0, &n1, &n2, &n3, &n4]);
    assert!(
        n0.rpc("getrawtransaction", json!([sent, true]))["confirmations"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // The heavier side never downloaded the lighter side's blocks: a lighter fork costs it
    // nothing, while the losing side keeps its old branch as a fork tip.
    assert_eq!(
        n4.rpc("getchaintips", json!([])).as_array().unwrap().len(),
        1
    );
    assert_eq!(
        n0.rpc("getchaintips", json!([])).as_array().unwrap().len(),
        2
    );
    // No coins created or lost: the UTXO set holds exactly the subsidy of every block (fees
    // went to the miners, and genesis creates nothing).
    for n in [&n0, &n2, &n4] {
        assert_eq!(utxo_total(n).to_units(), 106 * 50 * 100_000_000);
        assert_eq!(n.rpc("verifychain", json!([4, 0])), json!(true));
    }
}

#[test]
fn a_whole_network_restarts_with_its_chain() {
    let dir = TempDir::new("p2p-restart");
    let mut nodes = line(&dir, 3);
    nodes[0].rpc("generatetoaddress", json!([20, addr()]));
    wait_same_tip(&nodes.iter().collect::<Vec<_>>());
    let before = tip(&nodes[0]);
    for n in nodes.iter_mut() {
        assert!(n.stop().success());
    }
    for n in nodes.iter_mut() {
        n.restart();
    }
    for pair in nodes.windows(2) {
        wait_for("peers to reconnect", || {
            (pair[1].rpc("getconnectioncount", json!([])).as_u64()? >= 1).then_some(())
        });
    }
    assert!(nodes.iter().all(|n| tip(n) == before));
    nodes[2].rpc("generatetoaddress", json!([1, addr()]));
    wait_same_tip(&nodes.iter().collect::<Vec<_>>());
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

#[test]
fn a_block_from_the_future_costs_its_peer_nothing_and_is_taken_once_its_time_comes() {
    let dir = TempDir::new("p2p-future");
    let node = Node::start(&dir.0, &[]);
    node.rpc("generatetoaddress", json!([1, addr()]));
    let payout = Address::p2pkh(key().public_key().pubkey_hash(), Network::Regtest).script_pubkey();
    let mut block = chaincore_tests::solve_block(&node, &payout, vec![], 0);
    // Just past the 120 s limit: our clock looks slow to this peer.
    block.header.time = unix_now() + 123;
    let target = block.header.target().unwrap();
    while !target.is_met_by(&block.block_hash()) {
        block.header.nonce += 1;
    }
    let hash = block.block_hash().to_string();
    let mut peer = RawPeer::connect(&node);
    peer.send("block", &serialize(&block));
    // The peer announces it again at once (as an honest peer answering getheaders would):
    // the node must not fetch it again before its time.
    peer.send("headers", &headers_payload(&[block.header]));
    peer.send("headers", &headers_payload(&[block.header]));
    peer.send("ping", &7u64.to_le_bytes());
    loop {
        let (command, payload) = peer.recv().expect("the peer was dropped for time-too-new");
        assert!(
            !(command == "getdata" && payload.ends_with(block.block_hash().as_bytes())),
            "the node asked for the block from the future again at once"
        );
        if command == "pong" && payload == 7u64.to_le_bytes() {
            break;
        }
    }
    assert_eq!(node.rpc("getconnectioncount", json!([])), json!(1));
    assert!(node
        .rpc("listbanned", json!([]))
        .as_array()
        .unwrap()
        .is_empty());
    // Not recorded, as valid or invalid.
    assert_eq!(
        node.call("getblockheader", json!([hash])).unwrap_err()["code"],
        json!(-5)
    );
    assert!(node.log_text().contains("block from the future dropped"));
    // Once its time is within 120 s of the clock, the same block is taken.
    wait_for("the block's time to become valid", || {
        (unix_now() + 120 >= block.header.time).then_some(())
    });
    peer.send("block", &serialize(&block));
    wait_for("the block to be the tip", || {
        (tip(&node) == json!(hash)).then_some(())
    });
}

#[test]
fn non_connecting_headers_are_answered_with_getheaders_never_punished() {
    let dir = TempDir::new("p2p-unconnecting");
    let node = Node::start(&dir.0, &[]);
    node.rpc("generatetoaddress", json!([2, addr()]));
    let tip_hex = node.rpc("getblockheader", json!([tip(&node), false]));
    let tip_header: chaincore::block::Header =
        chaincore::encode::deserialize(&hex::decode(tip_hex.as_str().unwrap()).unwrap()).unwrap();
    let mut stray = chaincore::block::Header {
        prev_blockhash: chaincore::BlockHash([7; 32]),
        bits: 0x207fffff,
        ..Default::default()
    };
    while !stray
        .target()
        .unwrap()
        .is_met_by(&stray.compute_block_hash())
    {
        stray.nonce += 1;
    }
    let mut peer = RawPeer::connect(&node);
    // Mixed with connecting ones, as a long-lived honest peer on a busy network sends them.
    for _ in 0..20 {
        peer.send("headers", &headers_payload(&[stray]));
        peer.send("headers", &headers_payload(&[tip_header]));
    }
    assert!(peer.answers_ping(), "the peer was dropped");
    // Thirty in a row: a peer announcing blocks faster than we connect them sends as many
    // children of blocks we have not connected yet. The connection stays; the node asks for
    // the chain leading to them once, and not again until an answer connects (Core's
    // rate limit), so a peer on another chain cannot keep it in a getheaders loop.
    let getheaders_until_pong = |peer: &mut RawPeer, nonce: u64| {
        peer.send("ping", &nonce.to_le_bytes());
        let mut asked = 0;
        loop {
            match peer.recv() {
                Some((command, _)) if command == "getheaders" => asked += 1,
                Some((command, payload)) if command == "pong" && payload == nonce.to_le_bytes() => {
                    return asked
                }
                Some(_) => {}
                None => panic!("non-connecting headers ended the connection"),
            }
        }
    };
    getheaders_until_pong(&mut peer, 76);
    for _ in 0..30 {
        peer.send("headers", &headers_payload(&[stray]));
    }
    assert_eq!(getheaders_until_pong(&mut peer, 77), 1);
    // Headers that connect end the wait: the next stray one is asked about again.
    peer.send("headers", &headers_payload(&[tip_header]));
    peer.send("headers", &headers_payload(&[stray]));
    assert_eq!(getheaders_until_pong(&mut peer, 78), 1);
    assert_eq!(node.rpc("getconnectioncount", json!([])), json!(1));
}

#[test]
fn peers_that_never_read_cannot_make_the_node_hold_more_than_the_send_budget() {
    use chaincore_tests::builder::Builder;
    let dir = TempDir::new("p2p-budget");
    let node = Node::start(&dir.0, &[]);
    // A chain past coinbase maturity, then a ~1 MB block: one transaction with 10,700
    // 80-byte OP_RETURN outputs spending what block 101 paid the builder's key.
    let mut b = Builder::new();
    let hashes = b.submit_chain(&node, &Network::Regtest.genesis_hash(), 102);
    let parent = *hashes.last().unwrap();
    let data = Script::new_op_return(&[0x5a; 80]).unwrap();
    let mut outputs = vec![
        TxOut {
            value: Amount::ZERO,
            script_pubkey: data,
        };
        10_700
    ];
    outputs.push(TxOut {
        value: Amount::from_units(24 * 100_000_000),
        script_pubkey: Address::p2pkh(key().public_key().pubkey_hash(), Network::Regtest)
            .script_pubkey(),
    });
    let key = b.key().clone();
    let paid = &b.transactions(&hashes[100])[1];
    let spendable = OutPoint {
        txid: paid.compute_txid(),
        vout: 0,
    };
    let fee = paid.output[0].value.to_units() - 24 * 100_000_000;
    let big_tx = chaincore_tests::signed_spend(&key, &[spendable], outputs);
    let big = b.build_with(&parent, vec![big_tx], fee);
    assert!(big.size() > 950_000, "{}", big.size());
    assert_eq!(
        node.rpc("submitblock", json!([hex::encode(serialize(&big))])),
        Value::Null
    );
    let inv = {
        let mut p = serialize(&chaincore::encode::CompactSize(1));
        p.extend_from_slice(&2u32.to_le_bytes());
        p.extend_from_slice(big.block_hash().as_bytes());
        p
    };
    let before = node.rss_bytes();
    // Two peers that complete the handshake, then only ask for the block, 450 times each,
    // and never read (before the limit: about 2 GiB of queued copies).
    let mut peers = vec![RawPeer::connect(&node), RawPeer::connect(&node)];
    for p in &mut peers {
        for _ in 0..450 {
            p.send("getdata", &inv);
        }
    }
    // Watch the node's memory while it serves what the budget allows.
    let mut peak = before;
    let watch = std::time::Instant::now();
    while watch.elapsed() < Duration::from_secs(8) {
        peak = peak.max(node.rss_bytes());
        std::thread::sleep(Duration::from_millis(100));
    }
    let growth = peak.saturating_sub(before);
    eprintln!(
        "RSS {} MiB before, peak {} MiB while two peers asked 450 times each",
        before >> 20,
        peak >> 20
    );
    // Budget: 5 MB queued per peer plus the block that crossed it (PROTOCOL.md); allow
    // generously for allocator slack and the block reads.
    assert!(
        growth < 100 * 1024 * 1024,
        "the node grew by {} MiB",
        growth / 1024 / 1024
    );
    // A peer that takes nothing for the write timeout is dropped.
    wait_for("the non-reading peers to be dropped", || {
        (node.rpc("getconnectioncount", json!([])) == json!(0)).then_some(())
    });
    assert!(node.log_text().contains("peer stopped reading"));
    drop(peers);
}

/// A `version` in Bitcoin's layout as plain Bitcoin software sends it: no `relay` byte and no
/// trailing genesis hash, unless `genesis` is given (then `relay` and the hash follow).
fn bitcoin_version(genesis: Option<[u8; 32]>) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&70_016i32.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&(unix_now() as i64).to_le_bytes());
    v.extend_from_slice(&[0; 52]);
    v.extend_from_slice(&0x5eed_u64.to_le_bytes());
    let agent = b"/Satoshi:27.0.0/";
    v.push(agent.len() as u8);
    v.extend_from_slice(agent);
    v.extend_from_slice(&0i32.to_le_bytes());
    if let Some(g) = genesis {
        v.push(1);
        v.extend_from_slice(&g);
    }
    v
}

#[test]
fn a_plain_bitcoin_version_with_feature_messages_completes_the_handshake_and_syncs() {
    let dir = TempDir::new("p2p-plain-version");
    let node = Node::start(&dir.0, &[]);
    node.rpc("generatetoaddress", json!([5, addr()]));
    let mut peer = RawPeer::open(&node);
    // As Bitcoin Core's test framework does: version, then BIP339/BIP155 before verack.
    peer.send("version", &bitcoin_version(None));
    peer.send("wtxidrelay", &[]);
    peer.send("sendaddrv2", &[]);
    peer.send("verack", &[]);
    let mut seen = Vec::new();
    while !seen.contains(&"verack".to_string()) {
        let (command, payload) = peer.recv().expect("the node kept the connection");
        if command == "version" {
            // The node fills addr_recv with where it sees us: 127.0.0.1.
            // After version, services, timestamp and addr_recv's services.
            assert_eq!(
                &payload[28..44],
                &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]
            );
        }
        seen.push(command);
    }
    assert!(seen.contains(&"version".to_string()), "{seen:?}");
    // Headers from genesis: all five.
    let mut getheaders = 70_016u32.to_le_bytes().to_vec();
    getheaders.push(1);
    getheaders.extend_from_slice(Network::Regtest.genesis_hash().as_bytes());
    getheaders.extend_from_slice(&[0; 32]);
    peer.send("getheaders", &getheaders);
    let headers = loop {
        let (command, payload) = peer.recv().expect("the node kept the connection");
        if command == "headers" && payload.first() == Some(&5) {
            break payload;
        }
    };
    assert_eq!(headers.len(), 1 + 5 * 81);
    assert_eq!(node.rpc("getconnectioncount", json!([])), json!(1));

    // Our trailing genesis field, but another chain's: dropped.
    let mut other = RawPeer::open(&node);
    other.send("version", &bitcoin_version(Some([0x11; 32])));
    assert!(other.closed(), "a peer of another chain was kept");
    // The session logs why after it has closed the socket.
    wait_for("the reason in the log", || {
        node.log_text().contains("genesis differs").then_some(())
    });
}

/// Drives the node with python-bitcoinlib (`tests/outside/bitcoinlib_peer.py`), a Bitcoin
/// library nobody here wrote: its own `version` (protocol 60002, no relay byte, no genesis
/// hash), then headers and a block that it parses and hashes itself. `.ci/run` installs it.
#[test]
fn python_bitcoinlib_handshakes_syncs_headers_and_parses_our_blocks() {
    let check = std::process::Command::new("python3")
        .args(["-c", "import bitcoin.messages"])
        .output();
    assert!(
        check.is_ok_and(|o| o.status.success()),
        "this test drives the node with python-bitcoinlib: pip install python-bitcoinlib==0.12.2 \
         (.ci/run does)"
    );
    let dir = TempDir::new("p2p-bitcoinlib");
    let node = Node::start(&dir.0, &[]);
    node.rpc("generatetoaddress", json!([12, addr()]));
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("outside/bitcoinlib_peer.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(node.p2p_port.to_string())
        .arg(hex::encode(Network::Regtest.params().magic))
        .arg(Network::Regtest.genesis_hash().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log_text()
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["version"], json!(70016));
    assert!(report["user_agent"]
        .as_str()
        .unwrap()
        .starts_with("/chaincore:"));
    assert_eq!(report["headers"], json!(12));
    assert_eq!(report["block1_hash"], node.rpc("getblockhash", json!([1])));
    assert_eq!(report["block1_merkle_ok"], json!(true));
    assert_eq!(report["block1_txs"], json!(1));
}

#[test]
fn an_addr_flood_from_one_peer_neither_evicts_the_book_nor_spreads() {
    let dir = TempDir::new("p2p-addr-flood");
    // Addresses the operator named (nobody listens there): the book's own entries.
    let named: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", chaincore_tests::free_port()))
        .collect();
    let a = Node::start(
        &dir.0.join("a").tap_create(),
        &["--addnode", &named[0], "--addnode", &named[1]],
    );
    let b = Node::start(&dir.0.join("b").tap_create(), &["--addnode", &a.p2p_addr()]);
    wait_for("b to connect to a", || {
        (a.rpc("getconnectioncount", json!([])) == json!(1)).then_some(())
    });
    // 10,000 addresses in ten full `addr` messages (loopback ones, so any dial stays here).
    let mut peer = RawPeer::connect(&a);
    for m in 0..10u32 {
        let mut payload = serialize(&chaincore::encode::CompactSize(1_000));
        for i in 0..1_000u32 {
            payload.extend_from_slice(&unix_now().to_le_bytes());
            payload.extend_from_slice(&0u64.to_le_bytes());
            payload.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 1]);
            payload.push(m as u8);
            payload.push((i % 250) as u8 + (i / 250) as u8);
            payload.extend_from_slice(&(1_000 + i as u16).to_be_bytes());
        }
        peer.send("addr", &payload);
    }
    assert!(
        peer.answers_ping(),
        "the flooding peer was dropped, or is still being read"
    );
    let book_of = |n: &Node| -> Vec<String> {
        n.rpc("getnodeaddresses", json!([1000]))
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{}:{}", e["address"].as_str().unwrap(), e["port"]))
            .collect()
    };
    let book = book_of(&a);
    for n in &named {
        assert!(book.contains(n), "{n} evicted from {book:?}");
    }
    // Unsolicited addresses are taken at 0.1 per second (one to start with).
    let flooded = book.iter().filter(|e| e.starts_with("127.1.")).count();
    assert!(flooded <= 3, "{flooded} flood addresses kept");
    // And a flood is not gossip: b hears none of it.
    assert!(book_of(&b).iter().all(|e| !e.starts_with("127.1.")));
}

#[test]
fn a_child_relayed_before_its_parent_gets_in_and_orphans_are_bounded() {
    use chaincore_tests::builder::Builder;
    let dir = TempDir::new("p2p-orphans");
    let node = Node::start(&dir.0, &[]);
    let mut b = Builder::new();
    let hashes = b.submit_chain(&node, &Network::Regtest.genesis_hash(), 101);
    let key = b.key().clone();
    let lock = Address::p2pkh(key.public_key().pubkey_hash(), Network::Regtest).script_pubkey();
    let coinbase = OutPoint {
        txid: b.transactions(&hashes[1])[0].compute_txid(),
        vout: 0,
    };
    let pay = |units: i64| TxOut {
        value: Amount::from_units(units),
        script_pubkey: lock.clone(),
    };
    let parent_tx =
        chaincore_tests::signed_spend(&key, &[coinbase], vec![pay(25 * 100_000_000 - 1_000)]);
    let parent_id = parent_tx.compute_txid();
    let child_tx = chaincore_tests::signed_spend(
        &key,
        &[OutPoint {
            txid: parent_id,
            vout: 0,
        }],
        vec![pay(25 * 100_000_000 - 2_000)],
    );
    let child_id = child_tx.compute_txid();

    let mut peer = RawPeer::connect(&node);
    peer.send("tx", &serialize(&child_tx));
    // The node asks this peer for the missing parent.
    loop {
        let (command, payload) = peer.recv().expect("the node kept the connection");
        if command == "getdata" && payload[5..37] == *parent_id.as_bytes() {
            break;
        }
    }
    let info = node.rpc("getmempoolinfo", json!([]));
    assert_eq!(
        (info["size"].clone(), info["orphans"].clone()),
        (json!(0), json!(1))
    );
    peer.send("tx", &serialize(&parent_tx));
    wait_for("parent and child in the mempool", || {
        let pool = node.rpc("getrawmempool", json!([]));
        let has = |t: &chaincore::Txid| {
            pool.as_array()?
                .contains(&json!(t.to_string()))
                .then_some(())
        };
        has(&parent_id)?;
        has(&child_id)
    });
    assert_eq!(node.rpc("getmempoolinfo", json!([]))["orphans"], json!(0));

    // 150 orphans from one peer: the pool keeps 100, and they go when the peer does.
    let mut flooder = RawPeer::connect(&node);
    for n in 0..150u32 {
        let mut missing = [0u8; 32];
        missing[..4].copy_from_slice(&n.to_le_bytes());
        missing[4] = 0xee;
        let tx = chaincore_tests::signed_spend(
            &key,
            &[OutPoint {
                txid: chaincore::Txid(missing),
                vout: 0,
            }],
            vec![pay(1_000)],
        );
        flooder.send("tx", &serialize(&tx));
    }
    assert!(flooder.answers_ping());
    assert_eq!(node.rpc("getmempoolinfo", json!([]))["orphans"], json!(100));
    drop(flooder);
    wait_for("the peer's orphans to go with it", || {
        (node.rpc("getmempoolinfo", json!([]))["orphans"] == json!(0)).then_some(())
    });
}

#[test]
fn a_heavier_fork_deeper_than_the_pending_header_cap_is_followed() {
    use chaincore_tests::builder::Builder;
    let dir = TempDir::new("p2p-deep-fork");
    // The cap lowered from 20,000 to 300 headers (a regtest-only knob), so a fork a few times
    // deeper than it, and deeper than one 2,000-header batch, proves it in seconds.
    let light = Node::start(
        &dir.0.join("light").tap_create(),
        &["--pending-headers", "300"],
    );
    let heavy = Node::start(&dir.0.join("heavy").tap_create(), &[]);
    let mut b = Builder::new();
    let common = b.build(&Network::Regtest.genesis_hash());
    let branch = |b: &mut Builder, n: usize| {
        let mut parent = common.block_hash();
        (0..n)
            .map(|_| {
                let block = b.build(&parent);
                parent = block.block_hash();
                hex::encode(serialize(&block))
            })
            .collect::<Vec<_>>()
    };
    let light_blocks = branch(&mut b, 2_100);
    let heavy_blocks = branch(&mut b, 2_200);
    let common_hex = hex::encode(serialize(&common));
    std::thread::scope(|s| {
        for (node, blocks) in [(&light, &light_blocks), (&heavy, &heavy_blocks)] {
            let common_hex = &common_hex;
            s.spawn(move || {
                node.rpc("submitblock", json!([common_hex]));
                for raw in blocks {
                    assert_eq!(node.rpc("submitblock", json!([raw])), Value::Null);
                }
            });
        }
    });
    assert_eq!(light.rpc("getblockcount", json!([])), json!(2_101));
    light.rpc("addnode", json!([heavy.p2p_addr(), "add"]));
    wait_for("the light node to follow the heavier fork", || {
        (tip(&light) == tip(&heavy)).then_some(())
    });
    assert_eq!(light.rpc("getblockcount", json!([])), json!(2_201));
}
