//! Headless Chromium driven over the DevTools protocol, for the dashboard test and bench:
//! `mod browser;` (a directory module, so cargo does not take it for a test of its own).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test code; each user takes a part

use std::io::BufRead;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use base64::Engine;
use chaincore_tests::{wait_for, DEADLINE};
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::WebSocket;

/// Where Debian puts Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless Chromium with its DevTools socket on one page, killed on drop.
pub struct Browser {
    child: Child,
    page: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Exceptions and console errors the pages reported.
    pub errors: Vec<String>,
}

impl Browser {
    pub fn start(profile: &Path) -> Browser {
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
    pub fn call(&mut self, method: &str, params: Value) -> Value {
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
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    /// Loads `url` and waits until the page and its script have run; returns the DOM.
    pub fn open(&mut self, url: &str) -> String {
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

    pub fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The visible text of the element `id`.
    pub fn text(&mut self, id: &str) -> String {
        self.eval(&format!(
            "(document.getElementById({}) || {{}}).textContent || ''",
            json!(id)
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Fails on any script error so far: DevTools events and the page's own record.
    pub fn assert_no_errors(&mut self, page: &str) {
        let recorded = self.eval("document.documentElement.getAttribute('data-js-errors')");
        assert_eq!(recorded, Value::Null, "{page} recorded script errors");
        assert!(self.errors.is_empty(), "{page}: {:?}", self.errors);
    }

    pub fn screenshot(&mut self, path: &Path) {
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
pub fn visible(html: &str) -> String {
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
