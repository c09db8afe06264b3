//! The container deployment, for real: `compose.yaml` brought up by podman-compose
//! with podman (a Docker-compatible engine), the `tag-server` image built from the
//! Dockerfile's `prebuilt` target (the host's build laid out in `.docker/prebuilt/`,
//! so nothing is compiled again inside a container; the same runtime layers as the
//! default target) and the warehouse image seeded with the demo datasets, both on a
//! locally imported Debian base (`.ci/containers` makes it; no registry is reachable).
//!
//! End to end through the published port: health (HTTP and the images' own
//! HEALTHCHECKs), access control with the compose file's admin token, the warehouse
//! dataset in `/v1/datasets`, `/v1/sql` and `/v1/ask` over it with the scripted LLM
//! on the host (reached from the container as `host.containers.internal`), a restart
//! of the `tag-server` container that keeps the conversation (the volume), the
//! warehouse stopped (a clear 503) and started again (recovery without a restart),
//! and `down -v` leaving no container, volume or network behind.
//!
//! Needs podman and podman-compose (`.ci/containers` installs them and prints the
//! podman-compose path, which `.ci/run` passes as PODMAN_COMPOSE). Where they are
//! missing the test skips, unless `TAG_REQUIRE_CONTAINERS=1` (set by `.ci/run`).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use tag_tests::{
    harness::{crate_dir, server_binary},
    scripted_llm::ScriptedLlm,
};

const PROJECT: &str = "tag-deploy-test";
const ADMIN_TOKEN: &str = "deploy-test-admin-token-0123456789";
const READER_PASSWORD: &str = "reader-secret-in-the-warehouse";
const QUESTION: &str = "Which Christopher Nolan film grossed the most?";
const SQL: &str = "SELECT title, box_office_usd_millions FROM movies WHERE director = 'Christopher Nolan' ORDER BY box_office_usd_millions DESC LIMIT 1";

fn repo() -> PathBuf {
    crate_dir().join("..").canonicalize().expect("the repository root")
}

/// The podman-compose to use, or `None` (after a loud message) where the engine is
/// not installed.
fn compose_program() -> Option<PathBuf> {
    let candidate = std::env::var("PODMAN_COMPOSE").map(PathBuf::from).unwrap_or_else(|_| "podman-compose".into());
    let works = |program: &Path| Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
    if works(Path::new("podman")) && works(&candidate) {
        return Some(candidate);
    }
    if std::env::var("TAG_REQUIRE_CONTAINERS").as_deref() == Ok("1") {
        panic!("TAG_REQUIRE_CONTAINERS=1 but podman or podman-compose ({}) does not run; .ci/containers installs them", candidate.display());
    }
    eprintln!("\n!!!!! SKIPPED: the deployment test needs podman and podman-compose (.ci/containers installs them)\n");
    None
}

fn run(program: &Path, args: &[&str], envs: &[(&str, String)]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn podman(args: &[&str]) -> (bool, String) {
    run(Path::new("podman"), args, &[])
}

/// What podman has left of the project: containers, volumes and networks carrying
/// its label or its name.
fn leftovers() -> String {
    let label = format!("io.podman.compose.project={PROJECT}");
    let mut left = Vec::new();
    for kind in ["container", "volume", "network"] {
        let args = match kind {
            "container" => vec!["ps", "--all", "--format", "{{.Names}} {{.Labels}}"],
            _ => vec![kind, "ls", "--format", "{{.Name}} {{.Labels}}"],
        };
        let (ok, out) = podman(&args);
        assert!(ok, "podman {kind} ls: {out}");
        left.extend(out.lines().filter(|l| l.contains(PROJECT) || l.contains(&label)).map(|l| format!("{kind} {l}")));
    }
    left.join("\n")
}

/// `.docker/prebuilt/`: the host's tag-server (debug symbols stripped), the
/// libduckdb it links, the page bundle and the DuckDB extensions, as the
/// Dockerfile's `build` stage lays them out in /out.
fn prepare_prebuilt() {
    let repo = repo();
    let prebuilt = repo.join(".docker/prebuilt");
    let _ = std::fs::remove_dir_all(&prebuilt);
    std::fs::create_dir_all(&prebuilt).unwrap();
    let binary = server_binary();
    let (ok, out) = run(Path::new("strip"), &["--strip-debug", "-o", prebuilt.join("tag-server").to_str().unwrap(), binary.to_str().unwrap()], &[]);
    assert!(ok, "strip: {out}");
    let lib_dir = match std::env::var("DUCKDB_LIB_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => {
            let (ok, out) = run(&repo.join(".ci/duckdb"), &[], &[]);
            assert!(ok, ".ci/duckdb: {out}");
            PathBuf::from(out.lines().last().unwrap().trim())
        }
    };
    std::fs::copy(lib_dir.join("libduckdb.so"), prebuilt.join("libduckdb.so")).expect("copy libduckdb.so");
    let dist = repo.join("dist");
    assert!(dist.join("index.html").is_file(), "{} has no page bundle: build it with .ci/web (the test command does)", dist.display());
    let (ok, out) = run(Path::new("cp"), &["-r", dist.to_str().unwrap(), prebuilt.join("web").to_str().unwrap()], &[]);
    assert!(ok, "copy the page: {out}");
    // The extensions: the host's verified cache first (no download when it has them),
    // then `fetch-extensions` completes and verifies the set, as the build stage does.
    let extensions = prebuilt.join("extensions");
    let host_cache = std::env::var("TAG_EXTENSION_DIR").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/tag-server/duckdb-extensions")
    });
    if host_cache.is_dir() {
        let (ok, out) = run(Path::new("cp"), &["-r", host_cache.to_str().unwrap(), extensions.to_str().unwrap()], &[]);
        assert!(ok, "copy the extension cache: {out}");
    }
    let (ok, out) = run(&binary, &["fetch-extensions"], &[("TAG_EXTENSION_DIR", extensions.to_string_lossy().into())]);
    assert!(ok, "tag-server fetch-extensions: {out}");
}

/// Brings the project down (with its volumes) when the test ends, however it ends.
struct Deployment {
    compose: PathBuf,
    env: Vec<(&'static str, String)>,
    port: u16,
}

impl Deployment {
    fn compose(&self, args: &[&str]) -> (bool, String) {
        let mut all = vec!["-p", PROJECT, "-f", "compose.yaml"];
        all.extend_from_slice(args);
        run(&self.compose, &all, &self.env)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The container of a service.
    fn container(&self, service: &str) -> String {
        let (ok, out) = podman(&[
            "ps",
            "--all",
            "--filter",
            &format!("label=io.podman.compose.project={PROJECT}"),
            "--filter",
            &format!("label=io.podman.compose.service={service}"),
            "--format",
            "{{.Names}}",
        ]);
        assert!(ok, "podman ps: {out}");
        out.lines().next().unwrap_or_else(|| panic!("no container for {service}")).trim().to_string()
    }

    fn logs(&self, service: &str) -> String {
        podman(&["logs", "--tail", "40", &self.container(service)]).1
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for service in ["tag-server", "warehouse"] {
                eprintln!("--- {service} ---\n{}", podman(&["logs", "--tail", "60", &format!("{PROJECT}_{service}_1")]).1);
            }
        }
        let _ = self.compose(&["down", "-v"]);
        // The images a rebuild untagged (each run's layers of the host's build).
        let _ = podman(&["image", "prune", "--force"]);
    }
}

async fn call(client: &reqwest::Client, method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut request = client.request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn warehouse_sql(client: &reqwest::Client, deployment: &Deployment, sql: &str) -> (u16, Value) {
    call(client, "POST", &deployment.url("/v1/sql"), Some(ADMIN_TOKEN), Some(json!({"dataset": "warehouse", "sql": sql}))).await
}

/// Polls until `probe` answers `Some`, or panics after `limit` with what it saw last.
async fn wait_until<T>(limit: Duration, what: &str, mut probe: impl AsyncFnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => {
                assert!(started.elapsed() < limit, "gave up after {limit:?} waiting for {what}; last: {last}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_deployment_serves_the_warehouse_keeps_state_and_recovers() {
    let Some(compose) = compose_program() else { return };
    let started = Instant::now();
    let llm = ScriptedLlm::start_on("0.0.0.0:0").await;
    llm.on(&format!("^{}$", regex::escape(QUESTION)), format!("```sql\n{SQL}\n```"));
    llm.on(r"^Question: Which Christopher Nolan", "The Dark Knight grossed the most [row 1].");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let deployment = Deployment {
        compose,
        port,
        env: vec![
            ("BASE_IMAGE", "localhost/debian:bookworm-slim".into()),
            ("TAG_IMAGE_TARGET", "prebuilt".into()),
            ("TAG_IMAGE", "localhost/tag-server:deploy-test".into()),
            ("TAG_WAREHOUSE_IMAGE", "localhost/tag-warehouse:deploy-test".into()),
            // Docker's image format keeps HEALTHCHECK (OCI's has no field for it).
            ("BUILDAH_FORMAT", "docker".into()),
            ("WAREHOUSE_ADMIN_PASSWORD", "postgres-secret-in-the-warehouse".into()),
            ("WAREHOUSE_READER_PASSWORD", READER_PASSWORD.into()),
            ("TAG_ADMIN_TOKEN", ADMIN_TOKEN.into()),
            ("TAG_LLM_BASE_URL", format!("http://host.containers.internal:{}/v1", llm.address.port())),
            ("TAG_LLM_MODEL", "scripted-model".into()),
            ("TAG_BIND", "127.0.0.1".into()),
            ("TAG_PORT", port.to_string()),
        ],
    };
    // A run that died half-way leaves its project behind; start clean.
    let _ = deployment.compose(&["down", "-v"]);

    prepare_prebuilt();
    let build_started = Instant::now();
    let (ok, out) = deployment.compose(&["build"]);
    assert!(ok, "podman-compose build failed:\n{out}");
    let build_time = build_started.elapsed();
    let (ok, out) = podman(&["image", "inspect", "--format", "{{.Size}} {{json .Config.Healthcheck}} {{.Config.User}}", "localhost/tag-server:deploy-test"]);
    assert!(ok, "{out}");
    let size_mb = out.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e6;
    assert!(out.contains("/healthz") && out.trim_end().ends_with("tag"), "the image keeps its HEALTHCHECK and runs as `tag`: {out}");

    let up_started = Instant::now();
    let (ok, out) = deployment.compose(&["up", "-d"]);
    assert!(ok, "podman-compose up failed:\n{out}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let health = wait_until(Duration::from_secs(120), "/healthz through the published port", async || {
        match client.get(deployment.url("/healthz")).send().await {
            Ok(r) if r.status() == 200 => Ok(r.json::<Value>().await.map_err(|e| e.to_string())?),
            Ok(r) => Err(format!("status {}", r.status())),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let cold_start = up_started.elapsed();
    // Access control is on (the compose file's admin token): /healthz names no dataset.
    assert!(!health.to_string().contains("warehouse"), "{health}");
    let (status, body) = call(&client, "GET", &deployment.url("/v1/datasets"), None, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{body}");

    // The warehouse is a dataset (once PostgreSQL has seeded and opened).
    let datasets = wait_until(Duration::from_secs(60), "the warehouse dataset to be available", async || {
        let (status, body) = call(&client, "GET", &deployment.url("/v1/datasets"), Some(ADMIN_TOKEN), None).await;
        let warehouse = body.as_array().and_then(|all| all.iter().find(|d| d["name"] == "warehouse")).cloned();
        match warehouse {
            Some(w) if status == 200 && w["available"] == true => Ok(body),
            _ => Err(format!("{status} {body}")),
        }
    })
    .await;
    let warehouse_ready = up_started.elapsed();
    let names: Vec<&str> = datasets.as_array().unwrap().iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(names, ["movies", "support", "warehouse"], "{datasets}");
    let (status, detail) = call(&client, "GET", &deployment.url("/v1/datasets/warehouse"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 200, "{detail}");
    let movies = detail["tables"].as_array().unwrap().iter().find(|t| t["name"] == "movies").expect("movies in the warehouse").clone();
    assert_eq!(movies["description"], "one row per film", "the COMMENT from schema.sql: {movies}");
    assert!(!detail.to_string().contains(READER_PASSWORD), "{detail}");

    // SQL and a question over the warehouse, through the published port.
    let (status, body) = warehouse_sql(&client, &deployment, "SELECT count(*) AS n FROM movies").await;
    assert_eq!((status, &body["rows"]), (200, &json!([[228]])), "{body}");
    let (status, body) = warehouse_sql(&client, &deployment, "DELETE FROM movies").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("rejected_sql")), "{body}");
    let (status, asked) = call(&client, "POST", &deployment.url("/v1/ask"), Some(ADMIN_TOKEN), Some(json!({"question": QUESTION, "dataset": "warehouse"}))).await;
    assert_eq!(status, 200, "{asked}");
    assert_eq!((asked["rows"][0][0].as_str(), asked["rows"][0][1].as_f64()), (Some("The Dark Knight"), Some(1006.0)), "{asked}");
    assert_eq!(asked["answer"], "The Dark Knight grossed the most [row 1].");
    assert!(llm.requests_matching(&format!("^{}$", regex::escape(QUESTION)))[0].system().contains("movies"), "the synthesis prompt has the warehouse's schema");
    let conversation = asked["conversation_id"].as_str().unwrap().to_string();

    // The healthchecks the images declare pass when run.
    for service in ["tag-server", "warehouse"] {
        let (ok, out) = podman(&["healthcheck", "run", &deployment.container(service)]);
        assert!(ok, "{service}'s HEALTHCHECK failed: {out}");
    }

    // An online backup of the state database, taken in the running container.
    let server_container = deployment.container("tag-server");
    let (ok, out) = podman(&["exec", &server_container, "/opt/tag/tag-server", "backup", "/var/lib/tag/backup.sqlite3"]);
    assert!(ok, "tag-server backup: {out}");
    let copy = tempfile::tempdir().unwrap();
    let (ok, out) = podman(&["cp", &format!("{server_container}:/var/lib/tag/backup.sqlite3"), copy.path().to_str().unwrap()]);
    assert!(ok, "podman cp: {out}");
    let backup = rusqlite::Connection::open(copy.path().join("backup.sqlite3")).unwrap();
    let questions: String = backup
        .query_row("SELECT group_concat(question) FROM turns WHERE conversation_id = ?1", [&conversation], |row| row.get(0))
        .unwrap();
    assert_eq!(questions, QUESTION, "the backup holds the conversation");

    // A restart of the server's container keeps state (the volume).
    let (ok, out) = podman(&["restart", &server_container]);
    assert!(ok, "podman restart: {out}\n{}", deployment.logs("tag-server"));
    let turns = wait_until(Duration::from_secs(60), "the restarted server", async || {
        match client.get(deployment.url(&format!("/v1/conversations/{conversation}"))).bearer_auth(ADMIN_TOKEN).send().await {
            Ok(r) if r.status() == 200 => Ok(r.json::<Value>().await.map_err(|e| e.to_string())?),
            Ok(r) => Err(format!("status {}", r.status())),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    assert_eq!(turns["turns"][0]["answer"], "The Dark Knight grossed the most [row 1].", "{turns}");

    // The warehouse stopped: a clear error naming the dataset, without the secret;
    // the bundled datasets still answer. Started again: picked up without a restart.
    let (ok, out) = podman(&["stop", "--time", "10", &deployment.container("warehouse")]);
    assert!(ok, "podman stop: {out}");
    let (status, body) = warehouse_sql(&client, &deployment, "SELECT count(*) FROM movies").await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("dataset_unavailable")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("warehouse") && !body.to_string().contains(READER_PASSWORD), "{body}");
    let (status, body) = call(&client, "POST", &deployment.url("/v1/sql"), Some(ADMIN_TOKEN), Some(json!({"dataset": "movies", "sql": "SELECT count(*) FROM movies"}))).await;
    assert_eq!(status, 200, "{body}");
    let (ok, out) = podman(&["start", &deployment.container("warehouse")]);
    assert!(ok, "podman start: {out}");
    wait_until(Duration::from_secs(60), "the warehouse to come back", async || {
        let (status, body) = warehouse_sql(&client, &deployment, "SELECT count(*) AS n FROM movies").await;
        if status == 200 && body["rows"] == json!([[228]]) { Ok(()) } else { Err(format!("{status} {body}")) }
    })
    .await;

    // Down with the volumes: nothing of the project is left.
    let (ok, out) = deployment.compose(&["down", "-v"]);
    assert!(ok, "podman-compose down: {out}");
    assert_eq!(leftovers(), "", "containers, volumes or networks left after down -v");
    assert!(client.get(deployment.url("/healthz")).send().await.is_err(), "the port is closed after down");
    eprintln!(
        "deployment test: image {size_mb:.0} MB, build {:.1} s, cold start to healthy {:.1} s, to the warehouse dataset available {:.1} s, whole test {:.1} s",
        build_time.as_secs_f64(),
        cold_start.as_secs_f64(),
        warehouse_ready.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
