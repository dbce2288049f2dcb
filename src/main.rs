//! `gateway`: the server (`gateway serve`) and its command-line client in one binary.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = gateway::cli::Cli::parse();
    if !matches!(cli.command, gateway::cli::Command::Serve(_)) {
        restore_default_sigpipe();
    }
    let json = cli.json;
    match gateway::cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            // With --json a refusal is also printed as JSON on standard output, details and all.
            if let Some(refused) = error.downcast_ref::<gateway::cli::client::CallError>().filter(|_| json) {
                println!("{}", refused.to_json());
            }
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A client command whose output goes to a reader that stops early (`gateway export … | head`)
/// ends quietly, as Unix tools do: the default SIGPIPE action, which Rust replaces with
/// "ignore" (so every later write fails with EPIPE, and `println!` panics). Sockets are not
/// affected: writes to them never raise SIGPIPE (MSG_NOSIGNAL). The server keeps Rust's
/// setting.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: signal() only sets the process-wide disposition, and SIG_DFL is a valid one.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
