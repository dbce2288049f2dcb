//! The `gateway` binary as a separate process: a server started as an operator starts it,
//! and client commands run as people and scripts run them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const GATEWAY: &str = env!("CARGO_BIN_EXE_gateway");

/// A `gateway serve` process on a free port; killed when dropped. Its keys were made before
/// it started, as a fresh install makes its first keys.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub keys: Keys,
    /// The lines of its standard error that tell of a panic, a crash point reached, or a move
    /// to a new database primary.
    pub notable: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// One API key per role the tests play.
#[derive(Clone)]
pub struct Keys {
    pub back_office: String,
    pub vendor: String,
    pub payment_site: String,
}

/// Makes a key with `gateway admin key create`, directly on the database (no server).
pub fn make_key(database_url: &str, role: &str, name: &str) -> String {
    let output = Command::new(GATEWAY)
        .args(["--json", "admin", "key", "create", "--create", "--database", database_url, "--role", role, "--name", name])
        .env("GATEWAY_PII_KEY", "ab".repeat(32))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let created: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    created["token"].as_str().expect("the token is printed").to_owned()
}

impl Keys {
    pub fn make(database_url: &str) -> Keys {
        Keys {
            back_office: make_key(database_url, "back-office", "back-office"),
            vendor: make_key(database_url, "vendor", "acme-payroll"),
            payment_site: make_key(database_url, "payment-site", "payment-site"),
        }
    }
}

impl Server {
    /// Starts a server on port 0 and learns its address from its JSON log.
    pub fn start(database_url: &str) -> Server {
        Server::start_with(database_url, Keys::make(database_url))
    }

    pub fn start_with(database_url: &str, keys: Keys) -> Server {
        Server::start_with_args(database_url, keys, &[])
    }

    /// A server with `extra` settings on its command line.
    pub fn start_with_args(database_url: &str, keys: Keys, extra: &[&str]) -> Server {
        Server::start_with_env(database_url, keys, extra, &[])
    }

    /// A server with `extra` settings on its command line and `env` in its environment.
    pub fn start_with_env(database_url: &str, keys: Keys, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(GATEWAY)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database_url, "--log-format", "json"])
            .args(extra)
            .env_remove("GATEWAY_CRASH_AT")
            .envs(env.iter().copied())
            .env("GATEWAY_PII_KEY", "ab".repeat(32))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the gateway binary starts");
        let mut log = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while log.read_line(&mut line).unwrap() > 0 {
            let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if entry["fields"]["message"] == "gateway listening" {
                let address = entry["fields"]["address"].as_str().unwrap().to_owned();
                // Keep draining the log so the server never blocks on a full pipe, keeping
                // the lines a test must see.
                let notable = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                let kept = notable.clone();
                std::thread::spawn(move || {
                    let mut line = Vec::new();
                    while matches!(log.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                        let text = String::from_utf8_lossy(&line);
                        if text.contains("panicked") || text.contains("crash point") || text.contains("moved to the new primary") {
                            kept.lock().unwrap().push(text.trim_end().to_owned());
                        }
                        line.clear();
                    }
                });
                return Server { child, url: format!("http://{address}"), keys, notable };
            }
            line.clear();
        }
        panic!("the server stopped before listening");
    }

    /// The server process's peak resident memory so far (Linux's VmHWM).
    pub fn peak_resident_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("Linux /proc");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    }

    /// The address the server listens on, `127.0.0.1:PORT`.
    pub fn address(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no chance to clean up.
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a client command with `token` (in GATEWAY_TOKEN, as a script would keep it).
pub fn cli(server: &Server, token: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(GATEWAY).args(["--server", &server.url]).args(args).env("GATEWAY_TOKEN", token).output().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

/// A server whose registry holds the spec's example (imported with `gateway registry import`),
/// and the folder the file was written to, for the test's other files.
pub fn server_with_registry(db: &super::TestDb) -> (Server, tempfile::TempDir) {
    let server = Server::start(&db.url);
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.csv");
    std::fs::write(&registry, super::SPEC_REGISTRY).unwrap();
    assert_eq!(cli(&server, &server.keys.back_office, &["registry", "import", registry.to_str().unwrap()]).0, 0);
    (server, dir)
}
