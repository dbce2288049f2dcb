//! The command line: `gateway serve` runs the server; every other command is a client that
//! talks to a running server over gRPC, so a person can do by hand what a system does by API.

mod admin;
pub mod client;
mod credit;
mod explain;
mod orders;
mod output;
mod payments;
pub mod remit;
mod reviews;
mod serve;
mod suspense;
mod terminations;
mod verify;
mod withholding;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use admin::{AdminCommand, KeyCommand};
pub use serve::ServeArgs;

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "Payroll-deduction remittance gateway of a state child support agency",
    long_about = "Payroll-deduction remittance gateway of a state child support agency.\n\n\
                  `gateway serve` runs the server and `gateway admin` works on its database. Every other \
                  command is a client of a running server: the same things the gRPC API does, by hand. \
                  Its connection options go before the command (`gateway --server URL remit list`), or in \
                  GATEWAY_SERVER and GATEWAY_TOKEN.\n\n\
                  Exit codes: 0 done; 1 error (server unreachable, refused request, a value the server \
                  finds wrong); 2 the command line itself is wrong (an unknown option, a missing argument); \
                  3 a file was refused and nothing of it was applied (the problems are printed); \
                  4 a payroll run computed some employees but not all (each problem is reported). \
                  Output piped into a reader that stops early (`| head`) ends quietly."
)]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectArgs,

    /// Print the server's whole answer as JSON instead of a summary for people.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// How a client command reaches the server.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The gateway server to talk to (`https://` for TLS).
    #[arg(long, env = "GATEWAY_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,

    /// Your API key (`gwk_…`), from `gateway admin key create`. Prefer the environment
    /// variable: a command line is visible to other users of the machine.
    #[arg(long, env = "GATEWAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// For an https:// server: the CA certificate (PEM) that signed the server's.
    #[arg(long, env = "GATEWAY_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// For mTLS: this client's certificate (PEM), registered with its key.
    #[arg(long, env = "GATEWAY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// For mTLS: this client's private key (PEM).
    #[arg(long, env = "GATEWAY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway server (gRPC, with health and reflection).
    Serve(Box<ServeArgs>),
    /// API keys, directly on the database (no server needed: this is how a fresh install
    /// makes its first key).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The case registry imported from the case management system.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Money received for an obligor.
    #[command(subcommand)]
    Collection(CollectionCommand),
    /// Remittance files from payroll vendors and employers.
    #[command(subcommand)]
    Remit(RemitCommand),
    /// Payers of voluntary online payments and their bank account.
    #[command(subcommand)]
    Payer(PayerCommand),
    /// Take an online (or phone) payment from a payer's validated bank account.
    Pay(PayArgs),
    /// ACH returns of online payments (the back office).
    #[command(subcommand)]
    Returns(ReturnsCommand),
    /// Re-check the ledger from the stored rows: every collection, pool, run, file and
    /// payment adds up, no month's current support is above its amount, and rows sealed by the
    /// last verification are unchanged. Exit status 5 on a breach.
    Verify,
    /// Distribute every pending collection: current support first, then arrears, then
    /// unapplied credit.
    Distribute,
    /// Export allocations, balances, the suspense queue or the audit trail as CSV.
    Export(ExportArgs),
    /// A back-office report as CSV: collections per day, late remittances by employer, open
    /// suspense by age, or the money waiting.
    Report(ReportArgs),
    /// The suspense queue: money nobody could identify, resolved to an obligor or returned
    /// to its sender (the back office).
    #[command(subcommand)]
    Suspense(suspense::SuspenseCommand),
    /// Employers' notices that an employee left (the back office).
    #[command(subcommand)]
    Terminations(terminations::TerminationsCommand),
    /// Parents' requests to review an order (the back office).
    #[command(subcommand)]
    Review(reviews::ReviewCommand),
    /// Support orders: record or withdraw an end; those whose projected end has passed (the
    /// back office).
    #[command(subcommand)]
    Order(orders::OrderCommand),
    /// Unapplied credit: list it, refund it, or apply it by hand to an order (the back office).
    #[command(subcommand)]
    Credit(credit::CreditCommand),
    /// Explain every cent: where a collection went, or an order's statement (the back office).
    #[command(subcommand)]
    Explain(explain::ExplainCommand),
    /// How much an employer withholds this pay period, per order, within the federal limits
    /// (vendor and employer keys).
    #[command(subcommand)]
    Withholding(WithholdingCommand),
    /// Print a shell completion script: `gateway completions bash > /etc/bash_completion.d/gateway`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum WithholdingCommand {
    /// One employee's withholding for a pay date, as a table; or, with --file, a whole
    /// payroll CSV (results as CSV, or remittance lines with --as-remittance).
    Calc(Box<withholding::CalcArgs>),
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Import a registry CSV file (one row per support order). All or nothing: a file with
    /// any invalid row changes nothing and every problem is listed by line.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CollectionCommand {
    /// Record money received by the back office (source MANUAL).
    Add {
        /// The case the money is for (8 digits).
        #[arg(long)]
        case_number: String,
        /// The amount, e.g. 184.62.
        #[arg(long)]
        amount: String,
        /// The date the money counts from, YYYY-MM-DD.
        #[arg(long)]
        effective_date: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RemitCommand {
    /// Submit a remittance file; prints a summary and its problems grouped by code
    /// (`--verbose`: every line with a problem; `--json`: the whole acknowledgment, one entry
    /// per line).
    Submit {
        /// List every line that has a problem (by default they are grouped by code).
        #[arg(long)]
        verbose: bool,
        /// The file's format.
        #[arg(long, value_enum)]
        format: FileFormat,
        /// Your own control number for the file, unique for ever.
        #[arg(long)]
        batch_id: String,
        /// Control total: the number of lines (how a CSV file states it).
        #[arg(long)]
        declared_lines: Option<u64>,
        /// Control total: the sum of the amounts, e.g. 369.24.
        #[arg(long)]
        declared_total: Option<String>,
        /// The file.
        file: PathBuf,
    },
    /// Show the acknowledgment of a file sent earlier.
    Show {
        batch_id: String,
        /// The back office: the file's sender (a key's name); senders read their own files.
        #[arg(long)]
        sender: Option<String>,
        /// List every line that has a problem (by default they are grouped by code).
        #[arg(long)]
        verbose: bool,
    },
    /// List files, newest first, a page at a time: your own, or with a back-office key
    /// every sender's.
    List {
        /// The back office: only this sender's files.
        #[arg(long)]
        sender: Option<String>,
        /// Only files with a line of this employer.
        #[arg(long)]
        employer_fein: Option<String>,
        /// Only files received on or after this day (YYYY-MM-DD).
        #[arg(long)]
        received_from: Option<String>,
        /// Only files received on or before this day (YYYY-MM-DD).
        #[arg(long)]
        received_to: Option<String>,
        /// Files per page (at most 1000).
        #[arg(long, alias = "limit", default_value_t = 20)]
        page_size: i32,
        /// The page after the one that printed this token.
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

/// A bank account on the command line.
#[derive(Debug, Args)]
pub struct BankAccountArgs {
    /// The ABA routing number (9 digits).
    #[arg(long)]
    pub routing_number: String,
    /// The account number (4 to 17 digits).
    #[arg(long)]
    pub account_number: String,
    /// CHECKING or SAVINGS.
    #[arg(long, default_value = "CHECKING")]
    pub account_type: String,
}

#[derive(Debug, Subcommand)]
pub enum PayerCommand {
    /// Register a payer with one bank account; prints the payer id.
    Register {
        #[arg(long)]
        name: String,
        #[arg(long)]
        address: String,
        /// The payer's SSN (kept only as a keyed hash and its last 4 digits).
        #[arg(long)]
        ssn: String,
        #[arg(long)]
        telephone: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        case_number: String,
        #[command(flatten)]
        account: BankAccountArgs,
    },
    /// Show a payer, masked, with the bank account's validation state.
    Show { payer_id: i64 },
    /// Replace the payer's bank account (validated again).
    ReplaceAccount {
        payer_id: i64,
        #[command(flatten)]
        account: BankAccountArgs,
    },
    /// Record that the account's prenote was confirmed by the bank.
    ConfirmAccount { payer_id: i64 },
    /// Record that the account's prenote came back with a return code.
    ReturnPrenote {
        payer_id: i64,
        #[arg(long)]
        code: String,
    },
}

#[derive(Debug, Args)]
pub struct PayArgs {
    #[arg(long = "payer")]
    pub payer_id: i64,
    #[arg(long)]
    pub case_number: String,
    #[arg(long)]
    pub amount: String,
    #[arg(long, value_enum, default_value_t = PayChannel::Web)]
    pub channel: PayChannel,
    /// Send the same key again to retry without paying twice (default: a new key, printed).
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PayChannel {
    Web,
    Phone,
}

#[derive(Debug, Subcommand)]
pub enum ReturnsCommand {
    /// Record one return: the payment is reversed.
    Record {
        #[arg(long = "payment")]
        payment_id: i64,
        #[arg(long)]
        code: String,
    },
    /// Import the bank's ACH return file.
    Import { file: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    Csv,
    Xml,
    Nacha,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to export.
    #[arg(value_enum)]
    pub what: ExportKind,
    /// For balances: the as-of date, YYYY-MM-DD (default: today).
    #[arg(long)]
    pub as_of: Option<String>,
    /// Write to this file instead of standard output (`-` is standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Which report.
    #[arg(value_enum)]
    pub what: ReportName,
    /// Collections and late reports: from this day received (YYYY-MM-DD).
    #[arg(long)]
    pub from: Option<String>,
    /// Collections and late reports: to this day received (YYYY-MM-DD).
    #[arg(long)]
    pub to: Option<String>,
    /// Write to this file instead of standard output (`-` is standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportName {
    /// Collections per day received, by source and employer.
    Collections,
    /// Late remittances by employer: lines, amount, average days late.
    Late,
    /// Open suspense by age (0-7, 8-30, 31-90, 91+ days).
    SuspenseAge,
    /// Undistributed, suspense and unapplied totals.
    Totals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportKind {
    Allocations,
    Balances,
    Suspense,
    /// The audit trail (back-office and admin keys).
    Audit,
}

/// Runs the command line; the exit code says how it went.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "gateway", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin(command) => {
            serve::init_tracing(serve::LogFormat::Text, "warn");
            admin::run(command, cli.json).await
        }
        command => {
            serve::init_tracing(serve::LogFormat::Text, "warn");
            client::run(&cli.connection, cli.json, command).await
        }
    }
}
