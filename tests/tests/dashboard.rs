//! The dashboard and explorer in a real browser: headless Chromium (Debian's `chromium`,
//! which `.ci/run` installs) driven over the DevTools protocol loads the pages of a live node
//! and the test reads the rendered DOM: the height and tip on the dashboard, which updates
//! itself from the event stream when a block is mined (no reload), a transaction's input
//! address and OP_RETURN text, an address's balance after a send, and the search box's
//! redirects and 404. No page may throw or log a console error, and a screenshot of the
//! dashboard is written to the test's temp dir.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::io::BufRead;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use base64::Engine;
use chaincore::encode::serialize;
use chaincore::{Address, Amount, Network, OutPoint, Script, TxOut};
use chaincore_tests::builder::Builder;
use chaincore_tests::{signed_spend, wait_for, Node, TempDir, DEADLINE};
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::WebSocket;

/// Where Debian puts Chromium.
const CHROMIUM: &str = "/usr/bin/chromium";
/// A regtest address whose key nobody has (the README's): the payee.
const PAYEE: &str = "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg";
/// The OP_RETURN text the send carries (with characters HTML must escape).
const NOTE: &str = "hello <dashboard> & explorer";

/// Headless Chromium with its DevTools socket, killed on drop.
struct Browser {
    child: Child,
    page: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Exceptions and console errors the pages reported.
    errors: Vec<String>,
}

impl Browser {
    fn start(profile: &Path) -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: the dashboard test needs Debian's chromium \
             (apt-get install chromium; .ci/run installs it)"
        );
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,1600",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        // It prints `DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID`.
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let browser_url = rx
            .recv_timeout(DEADLINE)
            .expect("chromium prints its DevTools address");
        let port = browser_url
            .trim_start_matches("ws://")
            .split(['/', ':'])
            .nth(1)
            .unwrap()
            .to_string();
        let page_url = wait_for("chromium's page target", || {
            let list = ureq::get(&format!("http://127.0.0.1:{port}/json/list"))
                .call()
                .ok()?
                .into_string()
                .ok()?;
            let list: Value = serde_json::from_str(&list).ok()?;
            list.as_array()?
                .iter()
                .find(|t| t["type"] == "page")?
                .get("webSocketDebuggerUrl")?
                .as_str()
                .map(str::to_string)
        });
        let (page, _) = tungstenite::connect(page_url.as_str()).expect("DevTools connects");
        if let MaybeTlsStream::Plain(s) = page.get_ref() {
            s.set_read_timeout(Some(DEADLINE)).unwrap();
        }
        let mut b = Browser {
            child,
            page,
            next_id: 0,
            errors: Vec::new(),
        };
        b.call("Runtime.enable", json!({}));
        b.call("Page.enable", json!({}));
        b
    }

    /// Sends one DevTools command and returns its result, noting error events meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.page
            .send(tungstenite::Message::Text(msg.into()))
            .unwrap();
        loop {
            let tungstenite::Message::Text(text) = self.page.read().expect("DevTools answers")
            else {
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
            match v["method"].as_str() {
                Some("Runtime.exceptionThrown") => self
                    .errors
                    .push(v["params"]["exceptionDetails"].to_string()),
                Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => {
                    self.errors.push(v["params"]["args"].to_string())
                }
                _ => {}
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    /// Loads `url` and waits until the page and its script have run; returns the DOM.
    fn open(&mut self, url: &str) -> String {
        self.call("Page.navigate", json!({ "url": url }));
        let started = Instant::now();
        loop {
            let ready = self.eval(
                "document.readyState === 'complete' && document.documentElement.dataset.js === 'ready'",
            );
            if ready == json!(true) {
                break;
            }
            assert!(started.elapsed() < DEADLINE, "{url} never finished loading");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.dom()
    }

    fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The visible text of the element `id`.
    fn text(&mut self, id: &str) -> String {
        self.eval(&format!(
            "(document.getElementById({}) || {{}}).textContent || ''",
            json!(id)
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Fails on any script error so far: DevTools events and the page's own record.
    fn assert_no_errors(&mut self, page: &str) {
        let recorded = self.eval("document.documentElement.getAttribute('data-js-errors')");
        assert_eq!(recorded, Value::Null, "{page} recorded script errors");
        assert!(self.errors.is_empty(), "{page}: {:?}", self.errors);
    }

    fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of a page with the tags stripped (for phrases split by markup).
fn visible(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

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
    assert!(text.contains("Who mined the last 103 blocks"), "{text}");
    assert!(dom.contains("<polyline"), "charts are drawn");
    assert!(
        text.contains(&miner[..12]),
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
    let (status, _) = node.get("/search?q=nonsense").unwrap();
    assert_eq!(status, 404);
    let (status, _) = node.get(&format!("/tx/{}", "0".repeat(64))).unwrap();
    assert_eq!(status, 404);
    let (status, _) = node.get("/block/99999").unwrap();
    assert_eq!(status, 404);
}

/// Pages are read-only and never show a secret: no cookie value in any page, POST to `/` is
/// still JSON-RPC (401 without credentials), and the pages send a same-origin CSP.
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
}
