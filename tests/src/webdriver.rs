//! A small W3C WebDriver client over reqwest, enough to drive Debian's headless
//! Chromium through `chromedriver` in the page's browser test: open a page, find
//! elements by CSS, click, type, read text, run a script, take a screenshot.
//!
//! Written here rather than taken from fantoccini/thirtyfour: those pull the
//! `webdriver` crate's ICU dependencies, which change the features of crates that
//! the bundled DuckDB and llama.cpp build scripts share, and so rebuild both (checked
//! with `cargo --unit-graph`; about 45 minutes on two cores).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};

/// The W3C key for an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The WebDriver code of the Enter key, for `send_keys`.
pub const ENTER: &str = "\u{E007}";

/// Finds a program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// A running `chromedriver` on a free loopback port; killed on drop.
pub struct ChromeDriver {
    pub url: String,
    child: Child,
}

impl ChromeDriver {
    pub async fn start(binary: &Path) -> Result<ChromeDriver> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let driver = ChromeDriver { url: format!("http://127.0.0.1:{port}"), child };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = client.get(format!("{}/status", driver.url)).send().await;
            if let Ok(response) = ready {
                let status: Value = response.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    return Ok(driver);
                }
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not become ready on {}", driver.url);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
pub struct Browser {
    http: reqwest::Client,
    session: String,
}

/// An element of the current page.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    /// Starts headless Chromium (the binary at `chromium`) through the driver.
    pub async fn start(driver: &ChromeDriver, chromium: &Path, width: u32, height: u32) -> Result<Browser> {
        let http = reqwest::Client::new();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--disable-component-update", "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
            },
        }}});
        let answer = send(&http, reqwest::Method::POST, &format!("{}/session", driver.url), Some(capabilities)).await?;
        let session = answer["sessionId"].as_str().ok_or_else(|| anyhow!("no session id in {answer}"))?;
        Ok(Browser { http, session: format!("{}/session/{session}", driver.url) })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        send(&self.http, method, &format!("{}{path}", self.session), body).await
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await.map(drop)
    }

    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let found = self.call(reqwest::Method::POST, "/elements", Some(json!({"using": "css selector", "value": css}))).await?;
        Ok(found.as_array().into_iter().flatten().filter_map(|e| e[ELEMENT_KEY].as_str()).map(|id| Element(id.to_string())).collect())
    }

    /// Waits until `css` matches at least one element, and returns the first.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.find_all(css).await?.into_iter().next() {
                return Ok(element);
            }
            if Instant::now() > deadline {
                bail!("no element matched {css:?} within {timeout:?}; the page shows: {}", self.body_text().await.unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the text of the first element matching `css` satisfies `ok`.
    pub async fn wait_for_text(&self, css: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if let Some(element) = self.find_all(css).await?.into_iter().next() {
                // An element can be replaced between finding and reading it.
                if let Ok(text) = self.text(&element).await {
                    if ok(&text) {
                        return Ok(text);
                    }
                    last = text;
                }
            }
            if Instant::now() > deadline {
                bail!("{css:?} did not get the expected text within {timeout:?}; last seen: {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn text(&self, element: &Element) -> Result<String> {
        let text = self.call(reqwest::Method::GET, &format!("/element/{}/text", element.0), None).await?;
        Ok(text.as_str().unwrap_or_default().to_string())
    }

    pub async fn body_text(&self) -> Result<String> {
        let body = self.wait_for_quick("body").await?;
        self.text(&body).await
    }

    async fn wait_for_quick(&self, css: &str) -> Result<Element> {
        self.find_all(css).await?.into_iter().next().ok_or_else(|| anyhow!("no {css}"))
    }

    pub async fn click(&self, element: &Element) -> Result<()> {
        self.call(reqwest::Method::POST, &format!("/element/{}/click", element.0), Some(json!({}))).await.map(drop)
    }

    pub async fn clear(&self, element: &Element) -> Result<()> {
        self.call(reqwest::Method::POST, &format!("/element/{}/clear", element.0), Some(json!({}))).await.map(drop)
    }

    pub async fn send_keys(&self, element: &Element, text: &str) -> Result<()> {
        self.call(reqwest::Method::POST, &format!("/element/{}/value", element.0), Some(json!({"text": text}))).await.map(drop)
    }

    /// Runs a script in the page and returns its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Accepts the open `prompt()` or `confirm()` dialog, typing `text` into a prompt.
    pub async fn accept_dialog(&self, text: Option<&str>) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.call(reqwest::Method::GET, "/alert/text", None).await.is_err() {
            if Instant::now() > deadline {
                bail!("no dialog opened");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(text) = text {
            self.call(reqwest::Method::POST, "/alert/text", Some(json!({"text": text}))).await?;
        }
        self.call(reqwest::Method::POST, "/alert/accept", Some(json!({}))).await.map(drop)
    }

    /// Resizes the browser window.
    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<()> {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await.map(drop)
    }

    /// Saves a PNG screenshot of the window.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD.decode(encoded.as_str().unwrap_or_default())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    pub async fn quit(self) -> Result<()> {
        self.call(reqwest::Method::DELETE, "", None).await.map(drop)
    }
}

async fn send(http: &reqwest::Client, method: reqwest::Method, url: &str, body: Option<Value>) -> Result<Value> {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.with_context(|| format!("webdriver {url}"))?;
    let status = response.status();
    let answer: Value = response.json().await.with_context(|| format!("webdriver answer from {url}"))?;
    if !status.is_success() {
        bail!("webdriver {url}: {} {}", answer["value"]["error"], answer["value"]["message"]);
    }
    Ok(answer["value"].clone())
}
