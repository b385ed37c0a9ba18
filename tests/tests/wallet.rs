//! End-to-end: real `chaincore-wallet` processes against a real regtest `chaincore-node`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use chaincore_tests::{Node, TempDir, Wallet};
use serde_json::{json, Value};

const COIN: i64 = 100_000_000;

/// Parses a coin string like "12.50000000" into units.
fn units(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not an amount: {v}"));
    let (whole, frac) = s.split_once('.').unwrap();
    whole.parse::<i64>().unwrap() * COIN + format!("{frac:0<8}").parse::<i64>().unwrap()
}

/// Creates an HD wallet without a terminal: the words come back in the JSON.
fn create(w: &Wallet) -> Value {
    let created = w.json(&["create", "--show-mnemonic"]);
    assert_eq!(created["mnemonic"].as_str().unwrap().split(' ').count(), 12);
    created
}

/// The text `balance` prints: its trusted, untrusted pending and immature lines add up to its
/// total line.
fn assert_balance_lines_add_up(w: &Wallet) {
    let out = w.run(&["balance"]);
    assert!(out.ok(), "{out:?}");
    let line = |name: &str| {
        let l = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} line: {}", out.stdout));
        units(&json!(l
            .split_whitespace()
            .nth(name.split(' ').count())
            .unwrap()))
    };
    assert_eq!(
        line("trusted") + line("untrusted pending") + line("immature"),
        line("total"),
        "{}",
        out.stdout
    );
}

fn first_address(w: &Wallet) -> String {
    w.json(&["addresses"])[0]["address"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn send_receive_data_and_send_all() {
    let dir = TempDir::new("wallet");
    let node = Node::start(&dir.0, &[]);
    let a = Wallet::new(&dir.0, "a", &node);
    let b = Wallet::new(&dir.0, "b", &node);
    assert_eq!(create(&a)["network"], json!("regtest"));
    create(&b);
    let addr_a = first_address(&a);
    let addr_b = first_address(&b);

    node.rpc("generatetoaddress", json!([101, addr_a]));
    let bal = a.json(&["balance"]);
    // At height 101 the coinbases of heights 1 and 2 can be spent in the next block.
    assert_eq!(units(&bal["trusted"]), 2 * 50 * COIN);
    assert_eq!(units(&bal["immature"]), 99 * 50 * COIN);
    assert_eq!(units(&bal["untrusted_pending"]), 0);
    assert_eq!(units(&bal["total"]), 101 * 50 * COIN);
    assert_balance_lines_add_up(&a);

    // Dry run: shows the plan, sends and saves nothing.
    let before = std::fs::read(&a.path).unwrap();
    let plan = a.json(&["send", &addr_b, "12.5", "--dry-run"]);
    assert_eq!(plan["sent"], json!(false));
    assert!(plan["fee_rate"].as_f64().unwrap() >= 1.0);
    assert_eq!(std::fs::read(&a.path).unwrap(), before);
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([]));

    let sent = a.json(&["send", &addr_b, "12.5", "--fee-rate", "2"]);
    let fee = units(&sent["fee"]);
    let size = sent["size"].as_u64().unwrap() as i64;
    // Fee = rate × exact size (one byte's worth more if re-signing flipped a signature length).
    assert!(
        fee == 2 * size || fee == 2 * (size + 1),
        "fee {fee} for {size} bytes"
    );
    assert!(
        sent["change"]["address"].is_string(),
        "change to a fresh address"
    );
    assert_ne!(sent["change"]["address"], json!(addr_a));
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([sent["txid"]]));

    // Right after the send: the spent coin counts nowhere, its change (ours, unconfirmed) is
    // trusted, and the lines add up to the total less what was sent.
    let bal = a.json(&["balance"]);
    assert_eq!(
        units(&bal["trusted"]),
        2 * 50 * COIN - 1_250_000_000 - fee,
        "{bal}"
    );
    assert_eq!(units(&bal["untrusted_pending"]), 0, "{bal}");
    assert_eq!(units(&bal["immature"]), 99 * 50 * COIN, "{bal}");
    assert_eq!(
        units(&bal["total"]),
        101 * 50 * COIN - 1_250_000_000 - fee,
        "{bal}"
    );
    assert_balance_lines_add_up(&a);
    let bal_b = b.json(&["balance"]);
    assert_eq!(units(&bal_b["untrusted_pending"]), 1_250_000_000);
    assert_eq!(units(&bal_b["trusted"]), 0);
    assert_eq!(units(&bal_b["total"]), 1_250_000_000);
    assert_balance_lines_add_up(&b);

    // One block (to a third party, so A's coinbase total stays 101 blocks).
    node.rpc(
        "generatetoaddress",
        json!([1, "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg"]),
    );
    let bal_b = b.json(&["balance"]);
    assert_eq!(units(&bal_b["trusted"]), 1_250_000_000);
    assert_eq!(units(&bal_b["untrusted_pending"]), 0);

    let bal_a = a.json(&["balance"]);
    let total_a = units(&bal_a["trusted"]) + units(&bal_a["immature"]);
    assert_eq!(total_a, 101 * 50 * COIN - 1_250_000_000 - fee);
    // Height 102: coinbases of heights 1–3 are spendable; one of them paid B.
    assert_eq!(units(&bal_a["immature"]), 98 * 50 * COIN);

    let history_b = b.json(&["history"]);
    assert_eq!(history_b[0]["txid"], sent["txid"]);
    assert_eq!(history_b[0]["direction"], json!("receive"));
    assert_eq!(history_b[0]["address"], json!(addr_b));
    assert_eq!(history_b[0]["amount"], json!("+12.50000000"));
    assert_eq!(history_b[0]["fee"], Value::Null, "B did not pay the fee");
    assert_eq!(history_b[0]["confirmations"], json!(1));
    assert!(history_b[0]["time"].as_u64().unwrap() > 1_600_000_000);
    let history_a = a.json(&["history"]);
    let spend_row = history_a
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["txid"] == sent["txid"])
        .unwrap();
    assert_eq!(spend_row["direction"], json!("send"));
    assert_eq!(spend_row["address"], json!(addr_b));
    assert_eq!(spend_row["amount"], json!("-12.50000000"));
    assert_eq!(units(&spend_row["fee"]), fee);
    assert_eq!(
        units(&json!(spend_row["net"]
            .as_str()
            .unwrap()
            .trim_start_matches('-'))),
        1_250_000_000 + fee
    );
    assert!(history_a
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["direction"] == json!("coinbase")));

    // OP_RETURN data, mined and visible.
    let with_data = a.json(&["send", &addr_b, "0.001", "--data", "hello chaincore"]);
    node.rpc(
        "generatetoaddress",
        json!([1, "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg"]),
    );
    let tx = node.rpc("getrawtransaction", json!([with_data["txid"], true]));
    assert_eq!(tx["confirmations"], json!(1));
    let history_b = b.run(&["history"]);
    assert!(
        history_b.stdout.contains("OP_RETURN \"hello chaincore\"")
            && history_b.stdout.contains("receive"),
        "{history_b:?}"
    );
    let data_out = tx["vout"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["scriptPubKey"]["type"] == json!("nulldata"))
        .expect("an OP_RETURN output");
    assert!(data_out["scriptPubKey"]["hex"]
        .as_str()
        .unwrap()
        .ends_with(&hex::encode("hello chaincore")));

    // B sends everything back: nothing left.
    let all = b.json(&["send", &addr_a, "--send-all"]);
    assert!(all["change"].is_null());
    node.rpc(
        "generatetoaddress",
        json!([1, "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg"]),
    );
    let bal_b = b.json(&["balance"]);
    assert_eq!(units(&bal_b["trusted"]), 0);
    assert_eq!(units(&bal_b["untrusted_pending"]), 0);
    assert_eq!(b.json(&["utxos"]), json!([]));
}

#[test]
fn keys_import_export_and_encryption() {
    let dir = TempDir::new("wallet-keys");
    let node = Node::start(&dir.0, &[]);
    let pass = dir.0.join("pass.txt");
    std::fs::write(&pass, "correct horse battery\n").unwrap();
    let wrong = dir.0.join("wrong.txt");
    std::fs::write(&wrong, "nope\n").unwrap();
    let p = pass.to_str().unwrap();

    let enc = Wallet::new(&dir.0, "enc", &node);
    let created = enc.json(&[
        "--passphrase-file",
        p,
        "create",
        "--encrypt",
        "--show-mnemonic",
    ]);
    assert_eq!(created["encrypted"], json!(true));
    let addr = created["address"].as_str().unwrap().to_string();
    let file = std::fs::read_to_string(&enc.path).unwrap();
    assert!(file.contains("ciphertext") && !file.contains("\"keys\""));

    // Reading works without the passphrase; secrets need it.
    assert_eq!(enc.json(&["info"])["encrypted"], json!(true));
    let out = enc.run(&["export-key", &addr]);
    assert!(
        !out.ok() && out.stderr.contains("--passphrase-file"),
        "{out:?}"
    );
    let before = std::fs::read(&enc.path).unwrap();
    let out = enc.run(&["--passphrase-file", wrong.to_str().unwrap(), "new-address"]);
    assert!(
        !out.ok() && out.stderr.contains("wrong passphrase"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read(&enc.path).unwrap(),
        before,
        "unchanged after a wrong passphrase"
    );
    let wif = enc.json(&["--passphrase-file", p, "export-key", &addr])["wif"]
        .as_str()
        .unwrap()
        .to_string();

    // The key moves to a plain wallet and controls the same address.
    let plain = Wallet::new(&dir.0, "plain", &node);
    create(&plain);
    assert_eq!(plain.json(&["import-key", &wif])["address"], json!(addr));
    let listed = plain.json(&["addresses"]);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["address"] == json!(addr)));
    let labelled = plain.json(&["new-address", "--label", "rent"]);
    assert_eq!(labelled["label"], json!("rent"));
}

#[test]
fn errors_name_the_fix_and_leave_the_file_alone() {
    let dir = TempDir::new("wallet-errors");
    let node = Node::start(&dir.0, &[]);
    let w = Wallet::new(&dir.0, "w", &node);
    let missing = w.run(&["balance"]);
    assert!(
        !missing.ok() && missing.stderr.contains("create one with"),
        "{missing:?}"
    );
    let out = w.run(&["create"]);
    assert!(
        !out.ok() && out.stderr.contains("--show-mnemonic") && !w.path.exists(),
        "without a terminal, create asks for --show-mnemonic: {out:?}"
    );
    create(&w);
    let addr = first_address(&w);
    node.rpc("generatetoaddress", json!([101, addr]));
    let before = std::fs::read(&w.path).unwrap();
    let other = Wallet::new(&dir.0, "other", &node);
    create(&other);
    let to = first_address(&other);

    let check = |args: &[&str], needle: &str| {
        let out = w.run(args);
        assert_ne!(out.code, Some(0), "{args:?} should fail");
        assert!(
            out.stderr.contains(needle),
            "{args:?}: expected '{needle}' in {:?}",
            out.stderr
        );
        assert_eq!(
            std::fs::read(&w.path).unwrap(),
            before,
            "{args:?} changed the wallet file"
        );
    };
    check(
        &["send", &to, "1000"],
        "insufficient funds: 100.00000000 coins available",
    );
    let mut typo = to.clone().into_bytes();
    typo[6] = if typo[6] == b'x' { b'y' } else { b'x' };
    check(
        &["send", std::str::from_utf8(&typo).unwrap(), "1"],
        "checksum",
    );
    let main_addr = chaincore::Address::p2pkh([1; 20], chaincore::Network::Main).to_string();
    check(
        &["send", &main_addr, "1"],
        "address is for the main network",
    );
    check(&["send", &to, "-1"], "bad amount");
    check(&["send", &to, "0"], "must be more than zero");
    check(&["send", &to, "0.123456789"], "more than 8 decimal places");
    check(&["send", &to, "21000001"], "exceeds the maximum");
    check(&["send", &to, "1", "--data", &"x".repeat(81)], "at most 80");

    // Node unreachable and credentials refused.
    let away = Wallet {
        path: w.path.clone(),
        node_url: format!("http://127.0.0.1:{}", chaincore_tests::free_port()),
        cookie: w.cookie.clone(),
        datadir: w.datadir.clone(),
    };
    let out = away.run(&["balance"]);
    assert!(
        !out.ok() && out.stderr.contains("cannot reach the node"),
        "{out:?}"
    );
    let bad_cookie = dir.0.join("bad.cookie");
    std::fs::write(&bad_cookie, "__cookie__:00").unwrap();
    let refused = Wallet {
        path: w.path.clone(),
        node_url: w.node_url.clone(),
        cookie: bad_cookie,
        datadir: w.datadir.clone(),
    };
    let out = refused.run(&["balance"]);
    assert!(
        !out.ok() && out.stderr.contains("refused the RPC credentials"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(&w.path).unwrap(), before);

    // A corrupted wallet file is refused and never overwritten.
    std::fs::write(&w.path, b"{ not json").unwrap();
    let out = w.run(&["new-address"]);
    assert!(!out.ok() && out.stderr.contains("corrupted"), "{out:?}");
    assert_eq!(std::fs::read(&w.path).unwrap(), b"{ not json");
    let out = w.run(&["create"]);
    assert!(
        !out.ok() && out.stderr.contains("refusing to overwrite"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(&w.path).unwrap(), b"{ not json");
}

/// An address nobody here owns, for blocks that should not pay the wallets under test.
const ELSEWHERE: &str = "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg";

/// `(txid, vout, amount, address)` of every coin, sorted, for comparing two wallets.
fn coin_list(w: &Wallet) -> Vec<(String, u64, String, String)> {
    let mut coins: Vec<_> = w
        .json(&["utxos"])
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["txid"].as_str().unwrap().to_string(),
                u["vout"].as_u64().unwrap(),
                u["amount"].as_str().unwrap().to_string(),
                u["address"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    coins.sort();
    coins
}

fn address_set(w: &Wallet) -> std::collections::BTreeSet<String> {
    w.json(&["addresses"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ten_sends_at_once_keep_every_change_key() {
    let dir = TempDir::new("wallet-race");
    let node = Node::start(&dir.0, &[]);
    let a = Wallet::new(&dir.0, "a", &node);
    let b = Wallet::new(&dir.0, "b", &node);
    create(&a);
    create(&b);
    let addr_a = first_address(&a);
    let addr_b = first_address(&b);
    // Height 110: the coinbases of heights 1–11 are spendable, one for each send.
    node.rpc("generatetoaddress", json!([110, addr_a]));

    // Ten processes started together on one wallet file, each paying a different amount.
    let children: Vec<_> = (1..=10)
        .map(|i| {
            std::process::Command::new(chaincore_tests::binary("chaincore-wallet"))
                .args(["--network", "regtest", "--rpc-url", &a.node_url])
                .arg("--wallet")
                .arg(&a.path)
                .arg("--rpc-cookie")
                .arg(&a.cookie)
                .args(["--json", "--lock-timeout", "600", "send", &addr_b])
                .arg(format!("{i}"))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let sent: Vec<Value> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_str(&stdout).unwrap()
        })
        .collect();

    // Every accepted transaction is in the mempool and its change key in the wallet file.
    let mempool = node.rpc("getrawmempool", json!([]));
    let owned = address_set(&a);
    let mut change_outpoints = Vec::new();
    let mut fees = 0;
    for s in &sent {
        assert!(mempool.as_array().unwrap().contains(&s["txid"]), "{s}");
        let change = s["change"]["address"].as_str().unwrap();
        assert!(owned.contains(change), "change key {change} was lost");
        let vout = s["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .position(|o| o["address"] == json!(change))
            .unwrap();
        change_outpoints.push((s["txid"].as_str().unwrap().to_string(), vout as u64));
        fees += units(&s["fee"]);
    }
    let changes: std::collections::BTreeSet<_> = sent
        .iter()
        .map(|s| s["change"]["address"].to_string())
        .collect();
    assert_eq!(changes.len(), 10, "ten different change addresses");
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");

    // Mined, the balances add up: 1 + 2 + … + 10 = 55 coins paid, plus the fees.
    node.rpc("generatetoaddress", json!([1, ELSEWHERE]));
    let bal_a = a.json(&["balance"]);
    assert_eq!(
        units(&bal_a["trusted"]) + units(&bal_a["immature"]),
        110 * 50 * COIN - 55 * COIN - fees
    );
    assert_eq!(units(&b.json(&["balance"])["trusted"]), 55 * COIN);

    // Every change output is spendable: sending everything signs each of them.
    let all = a.json(&["send", ELSEWHERE, "--send-all"]);
    let spent: Vec<(String, u64)> = all["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["txid"].as_str().unwrap().to_string(),
                i["vout"].as_u64().unwrap(),
            )
        })
        .collect();
    for c in &change_outpoints {
        assert!(spent.contains(c), "change {c:?} was not spent");
    }
    node.rpc("generatetoaddress", json!([1, ELSEWHERE]));
    let tx = node.rpc("getrawtransaction", json!([all["txid"], true]));
    assert_eq!(tx["confirmations"], json!(1));
    // Left: only coinbase outputs that were not yet mature.
    for u in a.json(&["utxos"]).as_array().unwrap() {
        assert_eq!(u["coinbase"], json!(true), "{u}");
    }
}

#[test]
fn restore_from_words_finds_every_used_address() {
    let dir = TempDir::new("wallet-restore");
    let node = Node::start(&dir.0, &[]);
    let a = Wallet::new(&dir.0, "a", &node);
    create(&a);
    let addr_a = first_address(&a);
    node.rpc("generatetoaddress", json!([101, addr_a]));

    // B: 24 words and a BIP39 passphrase; receive addresses 0–4 and change addresses 0–1.
    let b = Wallet::new(&dir.0, "b", &node);
    let extra = dir.0.join("bip39-passphrase.txt");
    std::fs::write(&extra, "extra words\n").unwrap();
    let extra = extra.to_str().unwrap();
    let created = b.json(&[
        "create",
        "--show-mnemonic",
        "--words",
        "24",
        "--bip39-passphrase-file",
        extra,
    ]);
    let words = created["mnemonic"].as_str().unwrap().to_string();
    assert_eq!(words.split(' ').count(), 24);
    let mut receive = vec![first_address(&b)];
    for i in 1..5 {
        let r = b.json(&["new-address"]);
        assert_eq!(r["path"], json!(format!("m/44'/1'/0'/0/{i}")));
        receive.push(r["address"].as_str().unwrap().to_string());
    }
    let change: Vec<String> = (0..2)
        .map(|i| {
            let c = b.json(&["new-address", "--change"]);
            assert_eq!(c["path"], json!(format!("m/44'/1'/0'/1/{i}")));
            c["address"].as_str().unwrap().to_string()
        })
        .collect();

    // One transaction from A pays receive 0, 2, 4 and change 0, 1 (gaps within the limit).
    let to = |addr: &str, coins: u32| format!("{addr}={coins}");
    let pay = a.json(&[
        "send",
        "--to",
        &to(&receive[0], 1),
        "--to",
        &to(&receive[2], 2),
        "--to",
        &to(&receive[4], 3),
        "--to",
        &to(&change[0], 4),
        "--to",
        &to(&change[1], 5),
    ]);
    let outputs = pay["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 6, "five payments and one change: {pay}");
    assert!(pay["change"]["address"].is_string());
    node.rpc("generatetoaddress", json!([1, ELSEWHERE]));
    assert_eq!(units(&b.json(&["balance"])["trusted"]), 15 * COIN);

    // B spends from its change addresses: its own change goes to change address 2.
    let back = b.json(&["send", &addr_a, "6"]);
    assert_eq!(
        back["change"]["address"],
        json!(b.json(&["addresses"]).as_array().unwrap().last().unwrap()["address"])
    );
    node.rpc("generatetoaddress", json!([1, ELSEWHERE]));

    // Restored from the words and passphrase into a new file: the same wallet.
    let words_file = dir.0.join("words.txt");
    std::fs::write(&words_file, format!("{words}\n")).unwrap();
    let words_file = words_file.to_str().unwrap();
    let b2 = Wallet::new(&dir.0, "b2", &node);
    let restored = b2.json(&[
        "restore",
        "--mnemonic-file",
        words_file,
        "--bip39-passphrase-file",
        extra,
    ]);
    assert_eq!(restored["receive"]["used"], json!(3), "{restored}");
    assert_eq!(restored["change"]["used"], json!(3), "{restored}");
    assert_eq!(restored["gap_limit"], json!(20));
    let bal_b = b.json(&["balance"]);
    assert_eq!(restored["balance"], bal_b);
    assert_eq!(b2.json(&["balance"]), bal_b);
    assert_eq!(coin_list(&b2), coin_list(&b));
    assert_eq!(address_set(&b2), address_set(&b));
    // Both hand out the same next address.
    assert_eq!(b2.json(&["new-address"]), b.json(&["new-address"]));

    // Without the BIP39 passphrase the same words are another, empty, wallet.
    let b3 = Wallet::new(&dir.0, "b3", &node);
    let other = b3.json(&["restore", "--mnemonic-file", words_file, "--gap-limit", "5"]);
    assert_eq!(other["receive"]["used"], json!(0));
    assert_eq!(other["receive"]["scanned"], json!(5));
    assert_eq!(units(&other["balance"]["trusted"]), 0);

    // A wrong word or a failed checksum: a clear error and nothing written.
    let b4 = Wallet::new(&dir.0, "b4", &node);
    let mut typo: Vec<&str> = words.split(' ').collect();
    typo[6] = "notaword";
    let bad_file = dir.0.join("typo.txt");
    for (text, needle) in [
        (
            typo.join(" "),
            "word 7 ('notaword') is not in the BIP39 English word list",
        ),
        ("abandon ".repeat(12), "checksum"),
        ("abandon ".repeat(11), "11 words given"),
    ] {
        std::fs::write(&bad_file, text).unwrap();
        let out = b4.run(&["restore", "--mnemonic-file", bad_file.to_str().unwrap()]);
        assert!(
            !out.ok() && out.stderr.contains(needle),
            "{needle}: {out:?}"
        );
        assert!(out.stderr.contains("nothing was written"), "{out:?}");
        assert!(!b4.path.exists());
        assert!(!dir.0.join("b4.json.lock").exists());
    }
    let out = b4.run(&["restore"]);
    assert!(
        !out.ok() && out.stderr.contains("--mnemonic-file") && !b4.path.exists(),
        "{out:?}"
    );
    // Restoring over an existing wallet is refused.
    let out = b.run(&["restore", "--mnemonic-file", words_file]);
    assert!(
        !out.ok() && out.stderr.contains("refusing to overwrite"),
        "{out:?}"
    );
}

#[test]
fn one_send_pays_several_recipients_with_one_change() {
    let dir = TempDir::new("wallet-many");
    let node = Node::start(&dir.0, &[]);
    let a = Wallet::new(&dir.0, "a", &node);
    let b = Wallet::new(&dir.0, "b", &node);
    create(&a);
    create(&b);
    node.rpc("generatetoaddress", json!([101, first_address(&a)]));
    let b0 = first_address(&b);
    let b1 = b.json(&["new-address"])["address"]
        .as_str()
        .unwrap()
        .to_string();
    let paid = a.json(&[
        "send",
        "--to",
        &format!("{b0}=1.5"),
        "--to",
        &format!("{b1}=2"),
        "--to",
        &format!("{ELSEWHERE}=0.25"),
        "--fee-rate",
        "2",
    ]);
    let outputs = paid["outputs"].as_array().unwrap();
    let change = paid["change"]["address"].as_str().unwrap();
    assert_eq!(outputs.len(), 4, "three payments and one change: {paid}");
    for (o, (to, amount)) in outputs
        .iter()
        .zip([(&b0, "1.50000000"), (&b1, "2.00000000")])
    {
        assert_eq!((&o["address"], &o["amount"]), (&json!(to), &json!(amount)));
    }
    assert_eq!(outputs[2]["address"], json!(ELSEWHERE));
    assert_eq!(
        outputs
            .iter()
            .filter(|o| o["address"] == json!(change))
            .count(),
        1
    );
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([paid["txid"]]));
    node.rpc("generatetoaddress", json!([1, ELSEWHERE]));
    assert_eq!(units(&b.json(&["balance"])["trusted"]), 350_000_000);
    let bal_a = a.json(&["balance"]);
    assert_eq!(
        units(&bal_a["trusted"]) + units(&bal_a["immature"]),
        101 * 50 * COIN - 375_000_000 - units(&paid["fee"])
    );

    // A repeated address or a malformed recipient: refused, nothing sent or saved.
    let before = std::fs::read(&a.path).unwrap();
    for (args, needle) in [
        (
            vec![
                "send",
                "--to",
                &format!("{b0}=1"),
                "--to",
                &format!("{b0}=2"),
            ],
            "already a recipient",
        ),
        (vec!["send", "--to", &b0], "expected ADDR=AMOUNT"),
    ] {
        let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
        let out = a.run(&args);
        assert!(!out.ok() && out.stderr.contains(needle), "{out:?}");
    }
    assert_eq!(std::fs::read(&a.path).unwrap(), before);
}

#[test]
fn a_held_wallet_makes_other_commands_wait_then_give_up() {
    let dir = TempDir::new("wallet-lock");
    let w = Wallet {
        path: dir.0.join("w.json"),
        node_url: format!("http://127.0.0.1:{}", chaincore_tests::free_port()),
        cookie: dir.0.join("no.cookie"),
        datadir: dir.0.clone(),
    };
    create(&w);
    let before = std::fs::read(&w.path).unwrap();
    // What another wallet process does while it runs: hold the lock file.
    let lock = std::fs::File::open(dir.0.join("w.json.lock")).unwrap();
    lock.lock().unwrap();
    let out = w.run(&["--lock-timeout", "1", "new-address"]);
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr
            .contains("another chaincore-wallet command holds the wallet")
            && out.stderr.contains("w.json.lock"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(&w.path).unwrap(), before, "untouched");
    lock.unlock().unwrap();
    let added = w.json(&["--lock-timeout", "1", "new-address"]);
    assert!(address_set(&w).contains(added["address"].as_str().unwrap()));
}

#[test]
fn a_wallet_file_from_before_hd_keeps_working() {
    let dir = TempDir::new("wallet-legacy");
    let node = Node::start(&dir.0, &[]);
    let old = Wallet::new(&dir.0, "old", &node);
    // A version 1 (random-key) file written by the wallet before HD wallets existed.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../wallet/tests/data/legacy_v1_plain.json"
    );
    std::fs::copy(fixture, &old.path).unwrap();
    let info = old.json(&["info"]);
    assert_eq!(info["hd"], json!(false));
    assert_eq!(info["addresses"], json!(2));
    let addr = first_address(&old);
    node.rpc("generatetoaddress", json!([101, addr]));
    let sent = old.json(&["send", ELSEWHERE, "10"]);
    assert!(sent["change"]["address"].is_string());
    node.rpc("generatetoaddress", json!([1, ELSEWHERE]));
    let bal = old.json(&["balance"]);
    assert_eq!(
        units(&bal["trusted"]) + units(&bal["immature"]),
        101 * 50 * COIN - 10 * COIN - units(&sent["fee"])
    );
    let file = std::fs::read_to_string(&old.path).unwrap();
    assert!(file.contains("\"version\": 1"), "still a version 1 file");
    assert!(file.contains(sent["change"]["address"].as_str().unwrap()));
}

/// `create` on a terminal, as a person runs it: util-linux's `script` (in Debian's essential
/// `bsdutils`) gives the wallet a pseudo-terminal. The words are shown, the screen is cleared,
/// a wrong copy is refused, the right one accepted, and only then is the file written.
#[test]
fn create_on_a_terminal_shows_the_words_and_asks_for_them_back() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};

    let dir = TempDir::new("wallet-tty");
    let wallet = dir.0.join("t.json");
    let command = format!(
        "'{}' --network regtest --wallet '{}' create",
        chaincore_tests::binary("chaincore-wallet").display(),
        wallet.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script (util-linux) runs");
    let screen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let screen = screen.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                screen
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        })
    };
    let shown = |needle: &str| screen.lock().unwrap().contains(needle);
    let mut keys = child.stdin.take().unwrap();

    chaincore_tests::wait_for("the words", || shown("Press Enter").then_some(()));
    let words: Vec<String> = screen
        .lock()
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (n, word) = l.trim().split_once(". ")?;
            n.parse::<u32>().ok()?;
            Some(word.trim().to_string())
        })
        .collect();
    assert_eq!(words.len(), 12, "{}", screen.lock().unwrap());
    assert!(
        !wallet.exists(),
        "nothing written before the words are confirmed"
    );
    keys.write_all(b"\n").unwrap();
    chaincore_tests::wait_for("the confirmation prompt", || {
        shown("Type the words").then_some(())
    });
    assert!(shown("\x1b[2J"), "the screen is cleared before asking");

    let mut wrong = words.clone();
    wrong[0] = if words[0] == "abandon" {
        "ability"
    } else {
        "abandon"
    }
    .to_string();
    keys.write_all(format!("{}\n", wrong.join(" ")).as_bytes())
        .unwrap();
    chaincore_tests::wait_for("the wrong copy refused", || {
        (shown("differs") || shown("checksum")).then_some(())
    });
    assert!(!wallet.exists());
    keys.write_all(format!("{}\n", words.join(" ")).as_bytes())
        .unwrap();
    let status = chaincore_tests::wait_for("the wallet to exit", || child.try_wait().unwrap());
    drop(keys);
    reader.join().unwrap();
    assert!(status.success(), "{}", screen.lock().unwrap());
    assert!(shown("created regtest HD wallet"));
    let file = std::fs::read_to_string(&wallet).unwrap();
    assert!(file.contains("\"version\": 2"));
    assert!(
        !file.contains(&words.join(" ")),
        "the file keeps the seed, not the words"
    );
}

#[test]
fn without_network_the_wallet_points_to_the_network_that_has_one() {
    let dir = TempDir::new("wallet-network-hint");
    let wallet = chaincore_tests::binary("chaincore-wallet");
    let run = |args: &[&str]| {
        std::process::Command::new(&wallet)
            .arg("--datadir")
            .arg(&dir.0)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let none = run(&["balance"]);
    let text = String::from_utf8_lossy(&none.stderr);
    assert!(!none.status.success());
    assert!(
        text.contains("no wallet for main") && text.contains("--network main create"),
        "{text}"
    );
    let created = run(&["--network", "regtest", "create", "--show-mnemonic"]);
    assert!(created.status.success(), "{created:?}");
    // `--network` forgotten: the wallet is found on regtest, and the hint names the flag.
    let hint = run(&["balance"]);
    let text = String::from_utf8_lossy(&hint.stderr);
    assert!(!hint.status.success());
    assert!(
        text.contains("no wallet for main")
            && text.contains("found one for regtest")
            && text.contains("add `--network regtest`"),
        "{text}"
    );
    assert!(!dir.0.join("main").join("wallet.json").exists());
}

#[test]
fn fee_rates_take_decimals_and_the_fee_is_rounded_up() {
    let dir = TempDir::new("wallet-fee-rate");
    let node = Node::start(&dir.0, &[]);
    let a = Wallet::new(&dir.0, "a", &node);
    create(&a);
    let addr = first_address(&a);
    node.rpc("generatetoaddress", json!([101, addr]));
    let to = "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg";
    let sent = a.json(&["send", to, "1", "--fee-rate", "1.5"]);
    let (fee, size) = (units(&sent["fee"]), sent["size"].as_i64().unwrap());
    // 1.5 × size rounded up to a whole unit (or one byte's worth more after re-signing).
    let at = |bytes: i64| (bytes * 3 + 1) / 2;
    assert!(
        fee == at(size) || fee == at(size + 1),
        "fee {fee} for {size} bytes"
    );
    assert_eq!(sent["fee_rate_chosen"], json!(1.5));
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([sent["txid"]]));
    let low = a.run(&["send", to, "1", "--fee-rate", "0.5"]);
    assert!(
        !low.ok() && low.stderr.contains("below the node's minimum relay fee"),
        "{low:?}"
    );
    let bad = a.run(&["send", to, "1", "--fee-rate", "1,5"]);
    assert!(
        !bad.ok() && bad.stderr.contains("units per byte"),
        "{bad:?}"
    );
}
