//! The dashboard and explorer in a real browser: headless Chromium (Debian's `chromium`,
//! which `.ci/run` installs) driven over the DevTools protocol loads the pages of a live node
//! and the test reads the rendered DOM: the height and tip on the dashboard, which updates
//! itself from the event stream when a block is mined (no reload), a transaction's input
//! address and OP_RETURN text, an address's balance after a send, and the search box's
//! redirects and 404; at phone width no page is wider than the screen. No page may throw or
//! log a console error, and screenshots of the dashboard are written to the test's temp dir.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod browser;

use browser::{visible, Browser};
use chaincore::encode::serialize;
use chaincore::{Address, Amount, Network, OutPoint, Script, TxOut};
use chaincore_tests::builder::Builder;
use chaincore_tests::{signed_spend, wait_for, Node, TempDir};
use serde_json::json;
/// A regtest address whose key nobody has (the README's): the payee.
const PAYEE: &str = "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg";
/// The OP_RETURN text the send carries (with characters HTML must escape).
const NOTE: &str = "hello <dashboard> & explorer";

#[test]
fn dashboard_and_explorer_render_in_chromium() {
    let dir = TempDir::new("dashboard");
    let node = Node::start(&dir.sub("node"), &[]);
    let genesis = Network::Regtest.genesis_hash();
    let mut builder = Builder::new();
    let chain = builder.submit_chain(&node, &genesis, 102);
    let tip = *chain.last().unwrap();

    // Send part of block 102's own spend to PAYEE, with an OP_RETURN note, and mine it.
    let spend = &builder.transactions(&tip)[1];
    let coin = OutPoint {
        txid: spend.compute_txid(),
        vout: 0,
    };
    let paid = Amount::from_units(spend.output[0].value.to_units() - 10_000);
    let payee = Address::parse(PAYEE, Network::Regtest).unwrap();
    let tx = signed_spend(
        builder.key(),
        &[coin],
        vec![
            TxOut {
                value: paid,
                script_pubkey: payee.script_pubkey(),
            },
            TxOut {
                value: Amount::from_units(0),
                script_pubkey: Script::new_op_return(NOTE.as_bytes()).unwrap(),
            },
        ],
    );
    let txid = tx.compute_txid();
    node.rpc("sendrawtransaction", json!([hex::encode(serialize(&tx))]));
    let sender = Address::p2pkh(builder.key().public_key().pubkey_hash(), Network::Regtest);
    let miner = Address::p2pkh([7; 20], Network::Regtest).to_string();
    let mined = node.rpc("generatetoaddress", json!([1, miner]))[0]
        .as_str()
        .unwrap()
        .to_string();
    let base = format!("http://127.0.0.1:{}", node.rpc_port);

    let mut browser = Browser::start(&dir.sub("chromium"));

    // The dashboard: status and charts, then a live update.
    let dom = browser.open(&format!("{base}/"));
    let text = visible(&dom);
    assert_eq!(browser.text("height"), "103");
    assert!(dom.contains(&mined), "the tip's hash: {text}");
    assert_eq!(browser.text("network"), "regtest");
    // Blocks 1 to 103 (genesis pays no address): 102 built, one mined to `miner`.
    assert!(text.contains("Who mined the last 103 blocks"), "{text}");
    assert!(dom.contains("<polyline"), "charts are drawn");
    assert!(
        text.contains(&format!("{miner}: 1 of 103 blocks")),
        "the miner in the distribution: {text}"
    );
    browser.screenshot(&dir.0.join("dashboard.png"));
    eprintln!("screenshot: {}", dir.0.join("dashboard.png").display());
    browser.assert_no_errors("the dashboard");
    wait_for("the event stream to connect", || {
        (browser.eval("document.documentElement.dataset.live") == json!("connected")).then_some(())
    });
    browser.eval("window.notReloaded = true");
    let next = node.rpc("generatetoaddress", json!([1, miner]))[0]
        .as_str()
        .unwrap()
        .to_string();
    wait_for("the dashboard to show the new tip", || {
        (browser.text("height") == "104").then_some(())
    });
    assert!(browser.dom().contains(&next), "the new tip's hash");
    assert_eq!(
        browser.eval("window.notReloaded === true"),
        json!(true),
        "updated in place"
    );
    browser.assert_no_errors("the dashboard after a live update");

    // The transaction: its input's address and amount from the spent coin, the payee, the
    // note as text (escaped in the HTML, shown as written).
    let dom = browser.open(&format!("{base}/tx/{txid}"));
    let text = visible(&dom);
    assert!(
        text.contains(&sender.to_string()),
        "the input's address: {text}"
    );
    assert!(text.contains(&spend.output[0].value.to_string()), "{text}");
    assert!(text.contains(PAYEE), "{text}");
    assert_eq!(
        browser.eval("document.querySelector('.optext').textContent"),
        json!(NOTE),
        "the OP_RETURN text"
    );
    assert!(text.contains("Fee 0.00010000"), "{text}");
    browser.assert_no_errors("the transaction page");

    // The payee's balance after the send.
    browser.open(&format!("{base}/address/{PAYEE}"));
    assert_eq!(browser.text("balance"), paid.to_string());
    assert!(browser.dom().contains(&txid.to_string()), "in its history");
    browser.assert_no_errors("the address page");

    // The block that mined it, and the block list.
    let dom = browser.open(&format!("{base}/block/{mined}"));
    assert_eq!(browser.text("block-height"), "103");
    assert!(dom.contains(&txid.to_string()));
    assert_eq!(browser.text("block-fees"), "0.00010000");
    let dom = browser.open(&format!("{base}/blocks"));
    assert!(dom.contains(&next) && dom.contains(&mined));
    browser.assert_no_errors("the block pages");

    // Search: a height, a txid and an address land on their pages; nonsense is a 404 page.
    browser.open(&format!("{base}/search?q=101"));
    assert_eq!(browser.eval("location.pathname"), json!("/block/101"));
    browser.open(&format!("{base}/search?q={txid}"));
    assert_eq!(
        browser.eval("location.pathname"),
        json!(format!("/tx/{txid}"))
    );
    browser.open(&format!("{base}/search?q={PAYEE}"));
    assert_eq!(
        browser.eval("location.pathname"),
        json!(format!("/address/{PAYEE}"))
    );
    browser.assert_no_errors("the search results");
    let dom = browser.open(&format!("{base}/search?q=%3Cscript%3Enope"));
    assert!(visible(&dom).contains("404 \u{2014} Not found"), "{dom}");
    assert!(dom.contains("&lt;script&gt;nope"), "escaped");
    // At phone width nothing sticks out sideways (wide tables scroll in their own box).
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    );
    for page in [
        "/blocks",
        &format!("/tx/{txid}"),
        &format!("/block/{mined}"),
        "/",
    ] {
        browser.open(&format!("{base}{page}"));
        let fits = browser.eval("document.documentElement.scrollWidth <= window.innerWidth");
        assert_eq!(fits, json!(true), "{page} is wider than a phone");
    }
    browser.screenshot(&dir.0.join("dashboard-phone.png"));
    browser.assert_no_errors("the pages at phone width");

    let (status, _) = node.get("/search?q=nonsense").unwrap();
    assert_eq!(status, 404);
    let (status, _) = node.get(&format!("/tx/{}", "0".repeat(64))).unwrap();
    assert_eq!(status, 404);
    let (status, _) = node.get("/block/99999").unwrap();
    assert_eq!(status, 404);
}

/// Pages are read-only and never show a secret: no cookie value in any page, POST to `/` is
/// still JSON-RPC (401 without credentials), the pages send a same-origin CSP, and they go
/// with REST: off with `--rest=false`.
#[test]
fn pages_show_no_secret_and_leave_json_rpc_alone() {
    let dir = TempDir::new("dashboard-secrets");
    let node = Node::start(&dir.sub("node"), &[]);
    node.rpc(
        "generatetoaddress",
        json!([3, Address::p2pkh([9; 20], Network::Regtest).to_string()]),
    );
    let cookie = node.cookie().unwrap();
    let password = cookie.split(':').nth(1).unwrap().trim().to_string();
    let tip = node.rpc("getbestblockhash", json!([]));
    let tip = tip.as_str().unwrap();
    for path in [
        "/",
        "/part/status",
        "/blocks",
        &format!("/block/{tip}"),
        "/block/1",
    ] {
        let (status, body) = node.get(path).unwrap();
        let body = String::from_utf8(body).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        assert!(!body.contains(&password), "{path} shows the cookie");
    }
    let r = ureq::get(&format!("http://127.0.0.1:{}/", node.rpc_port))
        .call()
        .unwrap();
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .starts_with("default-src 'self'"));
    let answer = node
        .post(r#"{"method":"getblockcount","id":1}"#, None)
        .unwrap();
    assert_eq!(answer.status, 401, "JSON-RPC at / still needs credentials");
    assert_eq!(node.rpc("getblockcount", json!([])), json!(3));

    let off = Node::start(&dir.sub("off"), &["--rest=false"]);
    let (status, body) = off.get("/").unwrap();
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("REST is off"));
    assert_eq!(off.rpc("getblockcount", json!([])), json!(0));
}
