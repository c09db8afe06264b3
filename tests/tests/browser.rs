//! The chat page in a real browser: Debian's headless Chromium, driven through
//! chromedriver, against the real `tag-server` binary (serving the Trunk-built
//! bundle) and the scripted LLM on loopback. It asks a question, waits for the
//! streamed answer, checks the answer, SQL, table, chart and statistics, edits and
//! re-runs the SQL, gives feedback that the server stores, saves the answer as a
//! verified example, opens the schema panel,
//! recovers from an LLM failure with Retry, stops a slow question, recalls the last
//! question with the Up key, folds the panel at phone width, and reopens, renames
//! and deletes the saved conversation. A second test, with tokens required, signs
//! in (after a wrong token), confirms or cancels a costly query's estimate, signs
//! out, and opens an admin's audit view. A third, with the built-in default model,
//! sees the page say once that the model is tiny. Screenshots of the answered page, the
//! confirmation and the audit view are saved under the test output folder.
//!
//! Needs `chromium`, `chromedriver` and the built bundle (`.ci/web`); without them
//! the test is skipped, unless `TAG_REQUIRE_BROWSER` is set (as `.ci/run` does).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;
use tag_tests::{
    harness::{crate_dir, create_token, ServerProcess},
    model::default_model,
    scripted_llm::{Fault, ScriptedLlm},
    webdriver::{which, Browser, ChromeDriver, ENTER},
};

const WAIT: Duration = Duration::from_secs(30);
const NOLAN_QUESTION: &str = "Which Christopher Nolan film grossed the most?";
const NOLAN_SQL: &str = "SELECT title, box_office_usd_millions FROM movies WHERE director = 'Christopher Nolan' ORDER BY box_office_usd_millions DESC LIMIT 1";
const NOLAN_ANSWER: &str = "**The Dark Knight** grossed the most, about $1006 million [row 1].";
const COUNT_QUESTION: &str = "How many films are there?";
const SLOW_QUESTION: &str = "Slow question about films";
const ARROW_UP: &str = "\u{E013}";
const COSTLY_QUESTION: &str = "How many reviews are enthusiastic?";
const COSTLY_SQL: &str = "SELECT count(*) AS enthusiastic FROM reviews WHERE llm_filter('{review_text} is enthusiastic')";

/// Where the page's bundle is: `TAG_WEB_DIR`, else `dist` in the checkout.
fn web_dir() -> PathBuf {
    std::env::var_os("TAG_WEB_DIR").map(PathBuf::from).unwrap_or_else(|| crate_dir().join("../dist"))
}

/// What the test needs, or why it cannot run.
fn requirements() -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let chromium = which("chromium").ok_or("chromium is not installed (apt-get install chromium)")?;
    let driver = which("chromedriver").ok_or("chromedriver is not installed (apt-get install chromium-driver)")?;
    let web = web_dir();
    if !web.join("index.html").is_file() {
        return Err(format!("the page is not built: {} has no index.html (run .ci/web)", web.display()));
    }
    Ok((chromium, driver, web))
}

fn script(llm: &ScriptedLlm) {
    llm.on(&format!("^{}$", regex::escape(NOLAN_QUESTION)), format!("```sql\n{NOLAN_SQL}\n```"));
    llm.on(r"^Question: Which Christopher Nolan film", NOLAN_ANSWER);
    llm.on(&format!("^{}$", regex::escape(COUNT_QUESTION)), "```sql\nSELECT count(*) AS films FROM movies\n```");
    // The answers state the result's value: one that does not is replaced.
    llm.on(r"^Question: How many films", "There are 228 films [row 1].");
    llm.on(&format!("^{SLOW_QUESTION}$"), "```sql\nSELECT 1 AS one\n```");
}

/// What the browser tests need; `None` (skip) when it is missing, unless
/// `TAG_REQUIRE_BROWSER` makes that a failure.
fn required() -> Option<(PathBuf, PathBuf, PathBuf)> {
    match requirements() {
        Ok(found) => Some(found),
        Err(why) if std::env::var_os("TAG_REQUIRE_BROWSER").is_some() => panic!("browser test cannot run: {why}"),
        Err(why) => {
            eprintln!("skipping the browser test: {why}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_page_answers_in_a_real_browser() {
    let Some((chromium, driver_binary, web)) = required() else { return };
    let llm = ScriptedLlm::start().await;
    script(&llm);
    let data = tempfile::tempdir().unwrap();
    let env = vec![
        ("TAG_LLM_BASE_URL", llm.base_url()),
        ("TAG_LLM_MODEL", "scripted-model".to_string()),
        ("TAG_LLM_MAX_RETRIES", "0".to_string()),
        ("TAG_WEB_DIR", web.display().to_string()),
    ];
    let server = ServerProcess::start(data.path(), &env, &[]);
    in_browser(&chromium, &driver_binary, "chat-page-failure.png", async |browser| drive(browser, &server, &llm).await).await;
}

/// Starts Chromium (1280×1000) through chromedriver and runs `drive` in it; when
/// `drive` fails, a screenshot named `failure` is saved under the output folder.
async fn in_browser(chromium: &Path, driver_binary: &Path, failure: &str, drive: impl AsyncFnOnce(&Browser) -> anyhow::Result<()>) {
    let driver = ChromeDriver::start(driver_binary).await.unwrap();
    let browser = Browser::start(&driver, chromium, 1280, 1000).await.unwrap();
    let result = drive(&browser).await;
    if result.is_err() {
        let _ = browser.screenshot(&output_dir().join(failure)).await;
    }
    let _ = browser.quit().await;
    result.unwrap();
}

fn output_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser")
}

/// The first cell of a query over `movies`, through the API (the expected value).
async fn first_cell(http: &reqwest::Client, server: &ServerProcess, sql: &str) -> anyhow::Result<u64> {
    let answer: Value =
        http.post(server.url("/v1/sql")).json(&serde_json::json!({"dataset": "movies", "sql": sql})).send().await?.json().await?;
    answer["rows"][0][0].as_u64().ok_or_else(|| anyhow::anyhow!("no number in {answer}"))
}

async fn drive(browser: &Browser, server: &ServerProcess, llm: &ScriptedLlm) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    browser.goto(&server.url("/")).await?;

    // The dataset panel: the dataset is picked, examples and tables are listed.
    browser.wait_for_text(".welcome h2", WAIT, |t| t == "Ask about movies").await?;
    browser.wait_for(".welcome .example", WAIT).await?;
    let summary = browser.wait_for("details.table-info summary", WAIT).await?;
    browser.click(&summary).await?;
    let columns = browser.wait_for_text("details.table-info[open] .columns", WAIT, |t| t.contains("director")).await?;
    assert!(columns.contains("box_office_usd_millions"), "{columns}");
    let sample = browser.wait_for_text("details.table-info[open] .sample", WAIT, |t| t.contains("Casablanca")).await?;
    assert!(sample.contains("Sample rows"), "{sample}");

    // Ask with Enter; the answer streams in with its SQL, table and statistics.
    let question = browser.wait_for("#question", WAIT).await?;
    browser.send_keys(&question, &format!("{NOLAN_QUESTION}{ENTER}")).await?;
    let answer = browser.wait_for_text(".turn .answer", WAIT, |t| t.contains("grossed the most")).await?;
    assert_eq!(answer, "The Dark Knight grossed the most, about $1006 million [row 1].");
    let bold = browser.wait_for_text(".turn .answer strong", WAIT, |t| !t.is_empty()).await?;
    assert_eq!(bold, "The Dark Knight", "the answer's Markdown is rendered");
    let sql = browser.wait_for_text(".sql-panel pre.sql", WAIT, |t| !t.is_empty()).await?;
    assert_eq!(sql, NOLAN_SQL);
    assert!(!browser.find_all(".sql-panel .sql-keyword").await?.is_empty(), "the SQL is highlighted");
    let rows = browser.find_all("table.data tbody tr").await?;
    assert_eq!(rows.len(), 1);
    let row = browser.text(&rows[0]).await?;
    assert!(row.contains("The Dark Knight") && row.contains("1006"), "{row}");
    let stats = browser.wait_for_text(".stats summary", WAIT, |t| t.contains("LLM calls")).await?;
    assert!(stats.contains("2 LLM calls"), "synthesis and generation: {stats}");
    let conversation = browser.wait_for_text(".conversations li", WAIT, |t| !t.is_empty()).await?;
    assert!(conversation.contains("Christopher Nolan"), "{conversation}");
    browser.screenshot(&output_dir().join("chat-page.png")).await?;
    eprintln!("screenshot: {}", output_dir().join("chat-page.png").display());

    // Thumbs up, then a comment: the server stores both.
    let thumbs_up = browser.wait_for("button[aria-label='Good answer']", WAIT).await?;
    browser.click(&thumbs_up).await?;
    browser.wait_for_text(".feedback-status", WAIT, |t| t == "Thanks!").await?;
    let comment = browser.wait_for(".feedback .comment input", WAIT).await?;
    browser.send_keys(&comment, &format!("right film{ENTER}")).await?;
    browser.wait_for_text(".feedback-status", WAIT, |t| t.contains("comment saved")).await?;
    let stored: Value = http.get(server.url("/v1/feedback")).send().await?.json().await?;
    assert_eq!(stored.as_array().map(Vec::len), Some(1), "{stored}");
    assert_eq!(stored[0]["rating"], "up");
    assert_eq!(stored[0]["comment"], "right film");
    assert_eq!(stored[0]["question"], NOLAN_QUESTION);

    // "Save as example": the question and its SQL become a verified example of the
    // dataset (approved at once: there is no access control here).
    let save = browser.wait_for(".feedback .save-example", WAIT).await?;
    browser.click(&save).await?;
    browser.wait_for_text(".feedback-status", WAIT, |t| t.starts_with("Saved as an example:")).await?;
    let examples: Value = http.get(server.url("/v1/datasets/movies/examples")).send().await?.json().await?;
    let saved = &examples["saved"];
    assert_eq!(saved.as_array().map(Vec::len), Some(1), "{examples}");
    assert_eq!((saved[0]["question"].as_str(), saved[0]["sql"].as_str()), (Some(NOLAN_QUESTION), Some(NOLAN_SQL)));
    assert_eq!(saved[0]["status"], "approved");

    // Edit the SQL and run it: a new table, with a chart of films per year.
    let actions = browser.find_all(".sql-panel .actions button").await?;
    assert_eq!(browser.text(&actions[1]).await?, "Edit");
    browser.click(&actions[1]).await?;
    let editor = browser.wait_for(".sql-editor", WAIT).await?;
    browser.clear(&editor).await?;
    browser.send_keys(&editor, "SELECT year, count(*) AS films FROM movies WHERE year >= 2010 GROUP BY year ORDER BY year").await?;
    let run = browser.wait_for(".sql-panel .actions button.primary", WAIT).await?;
    browser.click(&run).await?;
    browser.wait_for(".result .chart svg polyline", WAIT).await?;
    let header = browser.wait_for_text("table.data thead", WAIT, |t| t.contains("films")).await?;
    assert!(header.contains("year"), "{header}");
    let years = first_cell(&http, server, "SELECT count(DISTINCT year) FROM movies WHERE year >= 2010").await?;
    let footer = browser.wait_for_text(".row-count", WAIT, |t| t.ends_with(&format!("of {years}"))).await?;
    assert!(footer.starts_with("Rows 1–"), "{footer}");
    assert!(years > 10, "the check below needs a second page");
    let next = browser.wait_for("button[aria-label='Next page']", WAIT).await?;
    browser.click(&next).await?;
    browser.wait_for_text(".row-count", WAIT, |t| t == format!("Rows 11–{years} of {years}")).await?;
    let sort_by_films = browser.find_all("table.data thead button.sort").await?;
    browser.click(&sort_by_films[1]).await?;
    browser.click(&sort_by_films[1]).await?;
    browser.wait_for("table.data th[aria-sort='descending']", WAIT).await?;
    browser.wait_for_text(".row-count", WAIT, |t| t.starts_with("Rows 1–10")).await?;
    let most = first_cell(&http, server, "SELECT max(n) FROM (SELECT count(*) AS n FROM movies WHERE year >= 2010 GROUP BY year)").await?;
    let first_films = browser.wait_for_text("table.data tbody tr td:nth-child(2)", WAIT, |t| !t.is_empty()).await?;
    assert_eq!(first_films, most.to_string(), "sorted by films, most first");
    let edited = browser.wait_for_text(".sql-panel pre.sql", WAIT, |t| t.contains("GROUP BY year")).await?;
    assert!(edited.starts_with("SELECT year"), "{edited}");

    // An LLM failure is shown where it happened, and Retry answers.
    llm.fail(Some(&format!("^{}$", regex::escape(COUNT_QUESTION))), Fault::Status(500), 1);
    let question = browser.wait_for("#question", WAIT).await?;
    browser.send_keys(&question, &format!("{COUNT_QUESTION}{ENTER}")).await?;
    let error = browser.wait_for_text(".turn:nth-of-type(2) .error-box", WAIT, |t| !t.is_empty()).await?;
    assert!(error.contains("Retry") && error.contains("The LLM or the server could not be reached"), "{error}");
    let retry = browser.wait_for(".turn:nth-of-type(2) .error-box button", WAIT).await?;
    browser.click(&retry).await?;
    browser.wait_for_text(".turn:nth-of-type(2) .answer", WAIT, |t| t == "There are 228 films [row 1].").await?;
    assert!(browser.find_all(".turn:nth-of-type(2) .error-box").await?.is_empty(), "the error is gone after the retry");

    // Stop cancels a slow question.
    llm.fail(Some(&format!("^{SLOW_QUESTION}$")), Fault::Delay(Duration::from_secs(20)), 1);
    browser.send_keys(&question, &format!("{SLOW_QUESTION}{ENTER}")).await?;
    let stop = browser.wait_for(".composer .stop", WAIT).await?;
    browser.click(&stop).await?;
    browser.wait_for_text(".turn:nth-of-type(3) .error-box strong", WAIT, |t| t == "Stopped").await?;
    browser.wait_for(".composer button.primary", WAIT).await?;

    // Up recalls the last question into the empty box.
    browser.send_keys(&question, ARROW_UP).await?;
    let recalled = browser.execute("return document.getElementById('question').value", vec![]).await?;
    assert_eq!(recalled, SLOW_QUESTION);

    // At phone width the dataset panel folds away behind its button.
    browser.set_window_size(390, 844).await?;
    let sidebar_shown = "return getComputedStyle(document.querySelector('.sidebar')).display !== 'none'";
    assert_eq!(browser.execute(sidebar_shown, vec![]).await?, false, "the panel is hidden at phone width");
    let toggle = browser.wait_for(".panel-toggle", WAIT).await?;
    browser.click(&toggle).await?;
    assert_eq!(browser.execute(sidebar_shown, vec![]).await?, true, "the button shows the panel");
    browser.click(&toggle).await?;
    browser.screenshot(&output_dir().join("chat-page-phone.png")).await?;
    browser.set_window_size(1280, 1000).await?;

    // A reload starts fresh; the saved conversation reopens with its turns.
    browser.goto(&server.url("/")).await?;
    let saved = browser.wait_for(".conversations .conversation", WAIT).await?;
    browser.click(&saved).await?;
    browser.wait_for_text(".turn .question", WAIT, |t| t == NOLAN_QUESTION).await?;
    let reopened = browser.wait_for_text(".turn:nth-of-type(2) .answer", WAIT, |t| !t.is_empty()).await?;
    assert_eq!(reopened, "There are 228 films [row 1].");

    // Rename and delete the conversation from the panel.
    let rename = browser.wait_for(".conversations button[aria-label^='Rename']", WAIT).await?;
    browser.click(&rename).await?;
    browser.accept_dialog(Some("Nolan and counts")).await?;
    browser.wait_for_text(".conversations .conversation", WAIT, |t| t == "Nolan and counts").await?;
    let listed: Value = http.get(server.url("/v1/conversations")).send().await?.json().await?;
    assert_eq!(listed[0]["title"], "Nolan and counts");
    let delete = browser.wait_for(".conversations button[aria-label^='Delete']", WAIT).await?;
    browser.click(&delete).await?;
    browser.accept_dialog(None).await?;
    browser.wait_for(".welcome", WAIT).await?;
    let listed: Value = http.get(server.url("/v1/conversations")).send().await?.json().await?;
    assert_eq!(listed, serde_json::json!([]));
    assert!(browser.find_all(".conversations li").await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_signs_in_confirms_costly_queries_and_shows_the_audit() {
    let Some((chromium, driver_binary, web)) = required() else { return };
    let llm = ScriptedLlm::start().await;
    llm.on(&format!("^{}$", regex::escape(COSTLY_QUESTION)), format!("```sql\n{COSTLY_SQL}\n```"));
    llm.on(r"^Question: How many reviews", "684 of them are [row 1].");
    llm.on(r"(?s)Statement:", "yes");
    let data = tempfile::tempdir().unwrap();
    let ann = create_token(data.path(), &["--name", "ann", "--confirm-calls", "100"]);
    let admin = create_token(data.path(), &["--name", "root", "--role", "admin"]);
    let env = vec![
        ("TAG_LLM_BASE_URL", llm.base_url()),
        ("TAG_LLM_MODEL", "scripted-model".to_string()),
        ("TAG_WEB_DIR", web.display().to_string()),
        ("TAG_CACHE_ENABLED", "false".to_string()),
    ];
    let server = ServerProcess::start(data.path(), &env, &[]);
    let secrets = (ann["secret"].as_str().unwrap().to_string(), admin["secret"].as_str().unwrap().to_string());
    in_browser(&chromium, &driver_binary, "access-failure.png", async |browser| drive_access(browser, &server, &llm, &secrets).await).await;
}

/// With the built-in default model the page says, once, that the model is tiny and
/// how to point the server at a real one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_says_once_that_the_default_model_is_tiny() {
    let Some((chromium, driver_binary, web)) = required() else { return };
    let Some(model) = default_model().await else { return };
    let data = tempfile::tempdir().unwrap();
    let env = vec![
        ("TAG_LLM_BACKEND", "auto".to_string()),
        ("TAG_LLM_MODEL_DIR", model.parent().unwrap().display().to_string()),
        ("TAG_WEB_DIR", web.display().to_string()),
    ];
    let server = ServerProcess::start(data.path(), &env, &[]);
    in_browser(&chromium, &driver_binary, "notice-failure.png", async |browser| drive_notice(browser, &server).await).await;
}

async fn drive_notice(browser: &Browser, server: &ServerProcess) -> anyhow::Result<()> {
    browser.goto(&server.url("/")).await?;
    let notice = browser.wait_for_text(".banner.notice", WAIT, |t| t.contains("SmolLM2-135M")).await?;
    for named in ["TAG_LLM_BASE_URL", "TAG_LLM_MODEL_PATH", "shown once"] {
        assert!(notice.contains(named), "the notice says how to use a real model: {notice}");
    }
    browser.wait_for_text(".topbar", WAIT, |t| t.contains("SmolLM2-135M-Instruct")).await?;
    let dismiss = browser.wait_for(".banner.notice button", WAIT).await?;
    browser.click(&dismiss).await?;
    browser.wait_for(".welcome", WAIT).await?;
    assert!(browser.find_all(".banner.notice").await?.is_empty(), "Dismiss hides the notice");
    // This browser was told: a reload does not show it again.
    browser.goto(&server.url("/")).await?;
    browser.wait_for_text(".welcome h2", WAIT, |t| t == "Ask about movies").await?;
    assert!(browser.find_all(".banner.notice").await?.is_empty(), "the notice is shown once");
    Ok(())
}

async fn sign_in(browser: &Browser, secret: &str) -> anyhow::Result<()> {
    let field = browser.wait_for("#token", WAIT).await?;
    browser.clear(&field).await?;
    browser.send_keys(&field, &format!("{secret}{ENTER}")).await?;
    Ok(())
}

async fn drive_access(browser: &Browser, server: &ServerProcess, llm: &ScriptedLlm, (ann, admin): &(String, String)) -> anyhow::Result<()> {
    browser.goto(&server.url("/")).await?;
    // The server requires a token: the page asks for one, and says when it is wrong.
    sign_in(browser, "tag_000000000000_not-a-token").await?;
    browser.wait_for_text(".sign-in .error-text", WAIT, |t| t.contains("not valid")).await?;
    sign_in(browser, ann).await?;
    browser.wait_for_text(".topbar .who", WAIT, |t| t == "Signed in as ann (analyst)").await?;
    browser.wait_for_text(".welcome h2", WAIT, |t| t == "Ask about movies").await?;
    assert!(browser.find_all(".screen-toggle").await?.is_empty(), "an analyst has no audit view");

    // A costly question shows its estimate; Cancel leaves it unrun.
    llm.clear_requests();
    let question = browser.wait_for("#question", WAIT).await?;
    browser.send_keys(&question, &format!("{COSTLY_QUESTION}{ENTER}")).await?;
    let estimate = browser.wait_for_text(".turn .confirm-box .estimate", WAIT, |t| t.contains("LLM calls")).await?;
    assert!(estimate.starts_with("About ") && estimate.contains(" tokens — run?"), "{estimate}");
    let sql = browser.wait_for_text(".turn .sql-panel pre.sql", WAIT, |t| !t.is_empty()).await?;
    assert_eq!(sql, COSTLY_SQL, "the SQL to confirm is shown");
    browser.screenshot(&output_dir().join("confirm.png")).await?;
    let cancel = browser.wait_for(".turn .confirm-box .confirm-cancel", WAIT).await?;
    browser.click(&cancel).await?;
    browser.wait_for_text(".turn .error-box", WAIT, |t| t.contains("Not run")).await?;
    assert_eq!(llm.requests().len(), 1, "only the SQL was written; no operator call was made");

    // Asked again, Run runs it.
    browser.send_keys(&question, &format!("{COSTLY_QUESTION}{ENTER}")).await?;
    let run = browser.wait_for(".turn:nth-of-type(2) .confirm-box .confirm-run", WAIT).await?;
    browser.click(&run).await?;
    browser.wait_for_text(".turn:nth-of-type(2) .answer", WAIT, |t| t == "684 of them are [row 1].").await?;
    assert!(browser.find_all(".turn:nth-of-type(2) .confirm-box").await?.is_empty());
    let stats = browser.wait_for(".turn:nth-of-type(2) .stats summary", WAIT).await?;
    browser.click(&stats).await?;
    browser.wait_for_text(".turn:nth-of-type(2) .stats dl", WAIT, |t| t.contains("worked out before the query ran")).await?;

    // Sign out: the token is forgotten, and the sign-in form is back.
    let out = browser.wait_for(".topbar .sign-out", WAIT).await?;
    browser.click(&out).await?;
    browser.wait_for("#token", WAIT).await?;
    let kept = browser.execute("return sessionStorage.getItem('tag-token')", vec![]).await?;
    assert_eq!(kept, Value::Null, "no token left in the session");
    browser.goto(&server.url("/")).await?;
    browser.wait_for("#token", WAIT).await?;

    // An admin sees the audit trail, ann's requests in it.
    sign_in(browser, admin).await?;
    browser.wait_for_text(".topbar .who", WAIT, |t| t == "Signed in as root (admin)").await?;
    let toggle = browser.wait_for(".screen-toggle", WAIT).await?;
    browser.click(&toggle).await?;
    let table = browser.wait_for_text(".audit-table tbody", WAIT, |t| t.contains("confirmation_required")).await?;
    assert!(table.contains("ann") && table.contains(COSTLY_QUESTION) && table.contains("ok"), "{table}");
    let filter = browser.wait_for("#audit-outcome", WAIT).await?;
    browser.send_keys(&filter, &format!("ok{ENTER}")).await?;
    browser.wait_for_text(".audit-table tbody", WAIT, |t| !t.contains("confirmation_required")).await?;
    browser.screenshot(&output_dir().join("audit.png")).await?;
    Ok(())
}
