//! A real MariaDB for the MySQL-source test: Debian's `mariadb-server` (which
//! `.ci/run` installs), a data folder initialised in a temporary folder and a server
//! started on a free loopback port (as the `mysql` user when the tests run as
//! root). Stopped when dropped; skipped where MariaDB is not installed, unless
//! `TAG_REQUIRE_MARIADB=1` makes that a failure.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct MariaDb {
    pub port: u16,
    dir: tempfile::TempDir,
    server: Child,
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

impl MariaDb {
    pub fn start() -> Option<MariaDb> {
        let Some(mysqld) = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld", "mariadbd", "mysqld"]
            .into_iter()
            .find(|binary| Command::new(binary).arg("--version").output().is_ok())
        else {
            if std::env::var("TAG_REQUIRE_MARIADB").as_deref() == Ok("1") {
                panic!("TAG_REQUIRE_MARIADB=1 but MariaDB is not installed (apt-get install mariadb-server)");
            }
            eprintln!("\n!!!!! SKIPPED: the MySQL-source test needs MariaDB (apt-get install mariadb-server)\n");
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary folder");
        let data = dir.path().join("data");
        let user: &[&str] = if is_root() { &["--user=mysql"] } else { &[] };
        if is_root() {
            let _ = Command::new("chown").args(["-R", "mysql"]).arg(dir.path()).status();
        }
        let installed = Command::new("mysql_install_db")
            .args(user)
            .arg(format!("--datadir={}", data.display()))
            .arg("--auth-root-authentication-method=normal")
            .output()
            .expect("run mysql_install_db");
        assert!(installed.status.success(), "mysql_install_db failed: {}", String::from_utf8_lossy(&installed.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a port");
        let server = Command::new(mysqld)
            .args(user)
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--skip-log-bin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mysqld");
        let db = MariaDb { port, dir, server };
        let started = Instant::now();
        while Command::new("mysqladmin").args(db.client_args()).arg("ping").output().map(|o| !o.status.success()).unwrap_or(true) {
            assert!(started.elapsed() < Duration::from_secs(60), "MariaDB did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(db)
    }

    fn client_args(&self) -> Vec<String> {
        vec![format!("--socket={}", self.dir.path().join("sock").display()), "-uroot".into()]
    }

    /// Runs SQL as root; the tab-separated output.
    pub fn sql(&self, sql: &str) -> String {
        let output = Command::new("mysql").args(self.client_args()).args(["-N", "-B", "-e", sql]).output().expect("run mysql");
        assert!(output.status.success(), "mysql failed on {sql}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
