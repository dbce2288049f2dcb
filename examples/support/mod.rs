//! What the benchmark and load examples share: the real `gateway` binary started as a child
//! process on a fresh database, keys made the way an operator makes them, the server's memory
//! read from /proc, and a small seeded random number generator.

#![allow(dead_code)] // Each example uses its own part of this module.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};

/// The PII key every example server runs with (a fixed one: the data is made up).
pub const PII_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The `gateway` binary of the same build as this example, built first if missing.
pub fn gateway_binary() -> anyhow::Result<std::path::PathBuf> {
    let example = std::env::current_exe()?;
    let profile_dir = example.parent().and_then(|p| p.parent()).context("the example runs from target/<profile>/examples")?;
    let binary = profile_dir.join("gateway");
    if !binary.exists() {
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build.args(["build", "--bin", "gateway"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        anyhow::ensure!(build.status()?.success(), "cargo build --bin gateway failed");
    }
    Ok(binary)
}

/// An API key made with `gateway admin key create`, as an operator makes one.
pub fn make_key(binary: &std::path::Path, database: &str, role: &str, name: &str) -> anyhow::Result<String> {
    let output = Command::new(binary)
        .args(["--json", "admin", "key", "create", "--create", "--database", database, "--role", role, "--name", name])
        .output()?;
    anyhow::ensure!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let created: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(created["token"].as_str().context("a token")?.to_owned())
}

/// The server process, its address, and the lines of its log that tell of a panic. Killed
/// when dropped, however the run ends.
pub struct Server {
    pub child: Child,
    pub address: String,
    pub panics: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `gateway serve` on `database`, once it logs that it listens.
    pub fn start(binary: &std::path::Path, database: &str) -> anyhow::Result<Server> {
        Server::start_with_env(binary, database, &[])
    }

    /// `gateway serve` on `database` with settings given as `GATEWAY_*` variables.
    pub fn start_with_env(binary: &std::path::Path, database: &str, settings: &[(&str, &str)]) -> anyhow::Result<Server> {
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database, "--log-format", "json"])
            .env("GATEWAY_PII_KEY", PII_KEY)
            .env("RUST_LOG", "info")
            .envs(settings.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut log = BufReader::new(child.stderr.take().context("stderr")?);
        let mut line = String::new();
        while log.read_line(&mut line)? > 0 {
            let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if entry["fields"]["message"] == "gateway listening" {
                let address = entry["fields"]["address"].as_str().context("an address")?.to_owned();
                let panics = Arc::new(Mutex::new(Vec::new()));
                let kept = panics.clone();
                std::thread::spawn(move || {
                    for line in log.lines().map_while(Result::ok) {
                        if line.contains("panicked") {
                            kept.lock().unwrap().push(line);
                        }
                    }
                });
                return Ok(Server { child, address, panics });
            }
            line.clear();
        }
        bail!("the server stopped before listening")
    }

    /// The server's resident memory now, in MiB.
    pub fn resident_mib(&self) -> f64 {
        status_mib(self.child.id(), "VmRSS:")
    }

    /// The server's peak resident memory since it started (or since `reset_peak`), in MiB.
    pub fn peak_mib(&self) -> f64 {
        status_mib(self.child.id(), "VmHWM:")
    }

    /// CPU seconds the server has used so far, user and system, all its threads.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses and may hold spaces):
        // utime and stime are the 12th and 13th, in clock ticks (100 a second on Linux).
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Starts the peak over from the current resident memory (Linux's clear_refs; ignored
    /// where it is not allowed, and the peak is then the process's whole life's).
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }
}

fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    kb / 1024.0
}

/// A valid SSN for each `n` below about five million, each different.
pub fn ssn(n: u64) -> String {
    format!("{:03}-{:02}-{:04}", 100 + n / 9_999 % 500, 45, n % 9_999 + 1)
}

/// splitmix64: the examples' seeded choices.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// The `p` quantile (0–1) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
