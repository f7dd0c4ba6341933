//! `/docs` in a real browser: headless Chromium (Debian's package, installed by `scripts/test`)
//! loads Swagger UI from a live broker, which must serve every asset itself (no CDN), renders
//! every operation of `/openapi.json`, and a "Try it out" call with an API key answers 200.
//!
//! The browser is driven over the Chrome DevTools Protocol (a WebSocket), so nothing but
//! Chromium is needed. `KUBELINE_CHROMIUM` names another binary.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{ADMIN_KEY, BrokerOpts, start_broker};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// A headless Chromium with its own profile, killed (and its profile removed) on drop.
struct Browser {
    child: Child,
    profile: PathBuf,
    /// `http://127.0.0.1:PORT` of its DevTools endpoint.
    devtools: String,
}

impl Browser {
    fn start() -> Self {
        let bin = std::env::var("KUBELINE_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
        let profile =
            std::env::temp_dir().join(format!("kubeline-chromium-{}", std::process::id()));
        let mut child = Command::new(&bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): scripts/test installs Debian's chromium")
            });
        // Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID".
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let ws = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium to open its DevTools endpoint");
        let host = ws
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .expect("a ws:// URL")
            .to_owned();
        Self {
            child,
            profile,
            devtools: format!("http://{host}"),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One page of the browser, driven by DevTools commands.
struct Page {
    ws: Socket,
    next_id: u64,
}

impl Page {
    async fn open(browser: &Browser) -> Self {
        let targets: Value = reqwest::get(format!("{}/json/list", browser.devtools))
            .await
            .expect("list DevTools targets")
            .json()
            .await
            .expect("targets as JSON");
        let url = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect to the page");
        Self { ws, next_id: 0 }
    }

    /// Sends one DevTools command and returns its result.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(Message::text(msg)).await.expect("send");
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("an answer from chromium")
                .expect("the DevTools socket is open")
                .expect("a frame");
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates JavaScript in the page (awaiting a promise) and returns its value.
    async fn eval(&mut self, script: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": script, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{script}: {r}");
        r["result"]["value"].clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn docs_render_every_operation_and_try_it_out_answers() {
    let opts = BrokerOpts::embedded();
    let port = opts.port;
    let (_broker, _api) = start_broker("docs-broker", opts).await;
    let browser = Browser::start();
    let mut page = Page::open(&browser).await;
    page.call("Page.enable", json!({})).await;
    page.call("Network.enable", json!({})).await;
    let base = format!("http://127.0.0.1:{port}");
    page.call("Page.navigate", json!({ "url": format!("{base}/docs/") }))
        .await;

    // Swagger UI renders one block per operation of the document.
    let doc: Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    let mut rendered = 0;
    for _ in 0..300 {
        rendered = page
            .eval("document.querySelectorAll('.opblock').length")
            .await
            .as_u64()
            .unwrap_or(0) as usize;
        if rendered >= operations {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        rendered, operations,
        "Swagger UI rendered {rendered} of {operations} operations"
    );
    let paths = page
        .eval("Array.from(document.querySelectorAll('.opblock-summary-path')).map(e => e.textContent.replace(/\\u200b/g, ''))")
        .await;
    for path in [
        "/debug/execute",
        "/debug/session",
        "/clusters/{cluster_id}/status",
    ] {
        assert!(
            paths.as_array().unwrap().iter().any(|p| p == path),
            "{path} not rendered: {paths}"
        );
    }
    // Every script and style came from the broker itself.
    let foreign = page
        .eval(&format!(
            "performance.getEntriesByType('resource').map(e => e.name)\
             .filter(n => !n.startsWith('{base}/'))"
        ))
        .await;
    assert_eq!(foreign, json!([]), "assets loaded from elsewhere");

    // "Authorize" with an API key, then "Try it out" → "Execute" on GET /clusters.
    page.eval(&format!(
        "window.ui.preauthorizeApiKey('bearerAuth', '{ADMIN_KEY}'); true"
    ))
    .await;
    let op = "#operations-clusters-list_clusters";
    page.eval(&format!(
        "document.querySelector('{op} .opblock-summary-control').click(); true"
    ))
    .await;
    click_when_present(&mut page, &format!("{op} .try-out__btn")).await;
    click_when_present(&mut page, &format!("{op} .btn.execute")).await;
    let status = format!(
        "(() => {{ const e = document.querySelector('{op} .live-responses-table tr.response .response-col_status'); \
         return e ? e.textContent.trim() : null; }})()"
    );
    let mut answer = Value::Null;
    for _ in 0..300 {
        answer = page.eval(&status).await;
        if answer.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer, json!("200"), "try it out on GET /clusters");
    let body = page
        .eval(&format!(
            "document.querySelector('{op} .live-responses-table tr.response .response-col_description pre').textContent"
        ))
        .await;
    let body: Value = serde_json::from_str(body.as_str().unwrap()).expect("a JSON body");
    assert!(body["clusters"].is_array(), "{body}");
}

/// Clicks the element `selector` names once it exists.
async fn click_when_present(page: &mut Page, selector: &str) {
    let script = format!(
        "(() => {{ const e = document.querySelector('{selector}'); if (!e) return false; e.click(); return true; }})()"
    );
    for _ in 0..300 {
        if page.eval(&script).await == json!(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{selector} never appeared");
}
