//! A real PostgreSQL for the warehouse tests: Debian's server (`postgresql`, which
//! `.ci/run` installs), a cluster initialised in a temporary folder and started on
//! a free loopback port, as the `postgres` user when the tests run as root (the
//! server refuses root). Each test gets its own instance; it is stopped when the
//! value is dropped, and a watchdog stops it if the test process dies first. Where
//! no server is installed the tests skip, unless `TAG_REQUIRE_POSTGRES=1` (set by
//! `.ci/run`) makes that a failure.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// The newest installed server's binaries.
fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Postgres {
    /// A running server with a `postgres` superuser (trust authentication on
    /// loopback), or `None` (after a loud message) when PostgreSQL is not installed.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = server_bin() else {
            if std::env::var("TAG_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("TAG_REQUIRE_POSTGRES=1 but no PostgreSQL server is installed under /usr/lib/postgresql");
            }
            eprintln!("\n!!!!! SKIPPED: the warehouse test needs PostgreSQL (apt-get install postgresql)\n");
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary folder");
        let postgres = Postgres { port: free_port(), dir, bin };
        if is_root() {
            let _ = Command::new("chown").args(["-R", "postgres"]).arg(postgres.dir.path()).status();
        }
        postgres.run("initdb", &["-D", &postgres.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        postgres.start_server();
        postgres.watch_this_process();
        Some(postgres)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// The server's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Runs one of the server's programs, as `postgres` when root.
    fn run(&self, program: &str, args: &[&str]) {
        let output = self.command(&self.bin.join(program), args).output().expect("run a PostgreSQL program");
        assert!(output.status.success(), "{program} failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args).current_dir(self.dir.path()).stdin(Stdio::null());
        command
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c log_statement=all -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.log().to_string_lossy().into_owned();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
    }

    /// Stops the server (the way an operator would) without removing its data.
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&self) {
        self.start_server();
    }

    /// Stops the server if this process dies without dropping it (a failed test
    /// that aborts): a shell waits for this process to go away.
    fn watch_this_process(&self) {
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser} {pg_ctl} -D {data} -m immediate stop",
            pid = std::process::id(),
            runuser = if is_root() { "runuser -u postgres --" } else { "" },
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data(),
        );
        let _ = Command::new("sh").args(["-c", &stop]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    }

    /// A libpq connection string for `database` as `user`.
    pub fn url(&self, database: &str, user: &str) -> String {
        format!("host=127.0.0.1 port={} dbname={database} user={user}", self.port)
    }

    /// `psql` arguments for `database` as the superuser.
    pub fn psql_args(&self, database: &str) -> Vec<String> {
        vec!["-h".into(), "127.0.0.1".into(), "-p".into(), self.port.to_string(), "-U".into(), "postgres".into(), "-d".into(), database.into()]
    }

    /// Runs SQL with `psql` as the superuser; the unaligned, tuples-only output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new("psql")
            .args(self.psql_args(database))
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        assert!(output.status.success(), "psql failed on {sql}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// A database seeded with the demo datasets by `deploy/warehouse/load.sh`, with
    /// the read-only role `tag_reader` (password `reader_password`).
    pub fn seed_demo(&self, database: &str, reader_password: &str) {
        self.psql("postgres", &format!("CREATE DATABASE {database}"));
        let load = crate::harness::crate_dir().join("../deploy/warehouse/load.sh");
        let datasets = crate::harness::datasets_dir();
        let output = Command::new("sh")
            .arg(load)
            .arg(datasets)
            .arg(reader_password)
            .args(self.psql_args(database))
            .output()
            .expect("run load.sh");
        assert!(output.status.success(), "load.sh failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// The whole database as `pg_dump` writes it (schema and data), without the
    /// random `\\restrict` keys each run of pg_dump adds.
    pub fn dump(&self, database: &str) -> String {
        let output = Command::new("pg_dump").args(self.psql_args(database)).arg("--no-owner").output().expect("run pg_dump");
        assert!(output.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.starts_with("\\restrict") && !line.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until `probe` holds (polling), or panics after `limit`.
    pub fn wait_for(&self, limit: Duration, what: &str, mut probe: impl FnMut() -> bool) {
        let started = Instant::now();
        while !probe() {
            assert!(started.elapsed() < limit, "gave up after {limit:?} waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.command(&self.bin.join("pg_ctl"), &["-D", &self.data(), "-m", "immediate", "stop"]).output();
    }
}
