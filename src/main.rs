//! `gateway`: the server (`gateway serve`) and its command-line client in one binary.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc, not the C library's allocator: a remittance line's parse, check and write allocate
/// and free a few dozen small values across threads, and glibc's `malloc`/`free` (with its
/// consolidation of freed chunks) were about a tenth of the server's samples in a file's
/// profile (docs/performance.md, session 22).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (the 16th option in v2 and in v3, which
/// `libmimalloc-sys` 0.1.49 builds), which `libmimalloc-sys` does not name. A test below
/// checks the number still means it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory mimalloc has given back to its arena goes to the system without its delay (1 s by
/// default in v3): it purges when an allocating thread comes by, so a thread left idle after
/// a registry import or a large file would otherwise keep what it freed (measured: a peak of
/// 397 MiB during the file after an import, 144–164 MiB with this; docs/performance.md).
fn return_freed_memory_at_once() {
    // SAFETY: called first in `main`, before the runtime starts any other thread; the option
    // is a plain value mimalloc reads each time it purges.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

fn main() -> ExitCode {
    return_freed_memory_at_once();
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is mimalloc's purge delay: its default (v3's 1,000 ms) reads back
    /// before the server changes it, and 0 after.
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads and sets a plain option; no allocation depends on its value.
        unsafe {
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
            return_freed_memory_at_once();
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 0);
        }
    }
}
