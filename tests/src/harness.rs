//! Starts the real `tag-server` binary for end-to-end tests: on a free loopback
//! port, with its own data directory, environment and arguments; stops it on drop.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// The `tag-server` binary built beside the test executables, or `TAG_SERVER_BIN`.
pub fn server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("TAG_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/tag-server
    let profile_dir = exe.parent().and_then(Path::parent).expect("target profile folder");
    let binary = profile_dir.join("tag-server");
    assert!(
        binary.is_file(),
        "{} is missing: build it first with `cargo build -p tag-server` (the test command in README.md does)",
        binary.display()
    );
    binary
}

/// This crate's folder in the checkout being tested. Read at run time (cargo sets
/// it for `cargo test`), because a build reused from another checkout's target
/// folder would carry that checkout's path.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()))
}

/// The project's bundled datasets folder.
pub fn datasets_dir() -> PathBuf {
    crate_dir().join("../datasets")
}

/// Every file under `dir` with its bytes: compared before and after, it shows that
/// nothing was written.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Runs `tag-server token ARGS` on `data_dir`'s state database: (success, stdout,
/// stderr).
pub fn token_command(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(server_binary())
        .arg("token")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TAG_DATA_DIR", data_dir)
        .output()
        .expect("run tag-server token");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into(), String::from_utf8_lossy(&output.stderr).into())
}

/// Creates a token with `tag-server token create --json ARGS`; its JSON, with the
/// `secret`.
pub fn create_token(data_dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["create", "--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = token_command(data_dir, &all);
    assert!(ok, "token create {args:?}: {err}");
    serde_json::from_str(&out).expect("token create --json prints JSON")
}

pub struct ServerProcess {
    pub base_url: String,
    child: Child,
}

impl ServerProcess {
    /// Starts `tag-server serve` with `data_dir`, the given environment and extra
    /// arguments, and waits until it listens.
    pub fn start(data_dir: &Path, env: &[(&str, String)], args: &[&str]) -> ServerProcess {
        Self::spawn(data_dir, env, args, None)
    }

    /// As [`ServerProcess::start`], with the server's log (its standard error, at
    /// `info`) written to `log`, for tests that check what the server logs.
    pub fn start_logged(data_dir: &Path, env: &[(&str, String)], args: &[&str], log: &Path) -> ServerProcess {
        Self::spawn(data_dir, env, args, Some(log))
    }

    fn spawn(data_dir: &Path, env: &[(&str, String)], args: &[&str], log: Option<&Path>) -> ServerProcess {
        let mut command = Command::new(server_binary());
        command
            .args(args)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TAG_DATA_DIR", data_dir)
            .env("TAG_LOG", if log.is_some() { "info" } else { "warn" })
            .stdout(Stdio::piped())
            .stderr(match log {
                Some(path) => Stdio::from(std::fs::File::create(path).expect("create the server log")),
                None => Stdio::inherit(),
            });
        // No LLM unless the test names one (the embedded default would fetch a model).
        if !env.iter().any(|(key, _)| key.starts_with("TAG_LLM_BASE_URL") || *key == "TAG_LLM_BACKEND") {
            command.env("TAG_LLM_BACKEND", "none");
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start tag-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let base_url = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!("tag-server did not start listening (exit status {status:?})");
            }
        };
        ServerProcess { base_url, child }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Stops the server the way an operator would (SIGTERM), then waits for it.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        #[cfg(unix)]
        {
            let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
            for _ in 0..100 {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The Python with the real clients (drivers, the MCP SDK: `.ci/clients` makes it
/// and `.ci/run` exports `CLIENTS_PYTHON`), or the test fails under CI's flags.
pub fn clients_python() -> Option<String> {
    match std::env::var("CLIENTS_PYTHON") {
        Ok(python) if Path::new(&python).exists() => Some(python),
        _ if std::env::var("TAG_REQUIRE_CLIENTS").as_deref() == Ok("1") => {
            panic!("TAG_REQUIRE_CLIENTS=1 but CLIENTS_PYTHON names no Python (run .ci/clients)")
        }
        _ => {
            eprintln!("\n!!!!! SKIPPED: the client tests need CLIENTS_PYTHON (CLIENTS_PYTHON=$(.ci/clients))\n");
            None
        }
    }
}

/// The client programs the tests run (tests/clients).
pub fn clients_dir() -> PathBuf {
    crate_dir().join("clients")
}
