//! `gateway admin key …`: API keys, made, listed and revoked directly on the database. No
//! server is needed, so a fresh install can make its first key; the database's own access
//! control is what guards these commands, and each is written to the audit trail under the
//! operating system's user (`local:<user>`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::app::access::certificate_fingerprint;
use crate::app::{Caller, NewKey};
use crate::domain::access::Role;
use crate::domain::Fein;
use super::output::{instant, named, to_json};
use crate::grpc::proto;
use crate::startup::open_admin_app;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// API keys: one per system or person that calls the gateway.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Re-check the ledger on the database, no server needed (after a crash, say): the same
    /// checks as `gateway verify`. Exit status 5 on a breach.
    Verify {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// The database the admin commands work on.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The gateway's database, as `gateway serve` has it.
    #[arg(long, env = "GATEWAY_DATABASE_URL", default_value = "sqlite://gateway.db")]
    pub database: String,
    /// Create the SQLite database if it does not exist yet (a fresh install's first key).
    /// Without it a missing database is an error, so a mistyped path or the wrong working
    /// directory never makes a second, empty database.
    #[arg(long)]
    pub create: bool,
}

async fn verify(database: &str, json: bool) -> anyhow::Result<ExitCode> {
    if let Some(path) = crate::storage::sqlite_file(database).filter(|path| !path.exists()) {
        anyhow::bail!("the database {} does not exist: name the gateway's database with --database (or GATEWAY_DATABASE_URL)", path.display());
    }
    let app = open_admin_app(database).await?;
    let report = app.verify_ledger(&Caller::local_operator()).await?;
    let response = crate::grpc::ledger::verify_response(report);
    super::output::print(json, &response, super::verify::report_text(&response))?;
    Ok(super::verify::exit_code(&response))
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Make a key and print its token, once: only a hash of it is kept.
    Create {
        /// vendor, employer, payment-site, back-office or admin.
        #[arg(long)]
        role: String,
        /// The tenant: a vendor's or employer's name is the sender of its files.
        #[arg(long)]
        name: String,
        /// For an employer key: a FEIN it remits for (repeat for several).
        #[arg(long = "fein")]
        feins: Vec<String>,
        /// A client certificate (PEM) that authenticates as this key over mTLS.
        #[arg(long)]
        client_cert: Option<PathBuf>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List the keys (never their secrets).
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke a key: from now on it authenticates nothing.
    Revoke {
        key_id: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

pub async fn run(command: AdminCommand, json: bool) -> anyhow::Result<ExitCode> {
    let command = match command {
        AdminCommand::Key(command) => command,
        AdminCommand::Verify { database } => return verify(&database.database, json).await,
    };
    let (database, create) = match &command {
        KeyCommand::Create { database, .. } | KeyCommand::List { database } | KeyCommand::Revoke { database, .. } => {
            (database.database.clone(), database.create)
        }
    };
    if let Some(path) = crate::storage::sqlite_file(&database).filter(|path| !create && !path.exists()) {
        anyhow::bail!(
            "the database {} does not exist: name the gateway's database with --database (or GATEWAY_DATABASE_URL), \
             or add --create to make a new one",
            path.display()
        );
    }
    let app = open_admin_app(&database).await?;
    let operator = Caller::local_operator();
    match command {
        KeyCommand::Create { role, name, feins, client_cert, .. } => {
            let role = Role::parse(&role).context("the role is vendor, employer, payment-site, back-office or admin")?;
            let feins =
                feins.iter().map(|f| Fein::parse(f.trim()).with_context(|| format!("`{f}` is not a FEIN"))).collect::<Result<_, _>>()?;
            let client_cert_sha256 = match client_cert {
                Some(path) => {
                    let der = CertificateDer::from_pem_file(&path).with_context(|| format!("no PEM certificate in {}", path.display()))?;
                    Some(certificate_fingerprint(der.as_ref()))
                }
                None => None,
            };
            let created = app.create_key(&operator, NewKey { role, name, feins, client_cert_sha256 }).await?;
            let key = crate::grpc::admin_api_key(created.key);
            if json {
                let response = proto::CreateApiKeyResponse { key: Some(key), token: created.token };
                println!("{}", serde_json::to_string_pretty(&to_json(&response)?)?);
            } else {
                println!("key {} for {} ({})", key.key_id, key.name, named!(proto::Role, "ROLE_", key.role));
                println!("{}", created.token);
                eprintln!("This is the only time the key is shown: store it now (e.g. as GATEWAY_TOKEN).");
            }
        }
        KeyCommand::List { .. } => {
            let keys: Vec<proto::ApiKey> = app.list_keys(&operator).await?.into_iter().map(crate::grpc::admin_api_key).collect();
            if json {
                let response = proto::ListApiKeysResponse { keys, next_page_token: String::new() };
                println!("{}", serde_json::to_string_pretty(&to_json(&response)?)?);
            } else {
                println!("{:<16} {:<24} {:<12} {:<25} {:<25} feins", "key id", "name", "role", "created", "revoked");
                for key in keys {
                    println!(
                        "{:<16} {:<24} {:<12} {:<25} {:<25} {}",
                        key.key_id,
                        key.name,
                        named!(proto::Role, "ROLE_", key.role),
                        instant(key.create_time),
                        instant(key.revoke_time),
                        key.feins.join(",")
                    );
                }
            }
        }
        KeyCommand::Revoke { key_id, .. } => {
            let key = crate::grpc::admin_api_key(app.revoke_key(&operator, &key_id).await?);
            if json {
                let response = proto::RevokeApiKeyResponse { key: Some(key) };
                println!("{}", serde_json::to_string_pretty(&to_json(&response)?)?);
            } else {
                println!("key {} ({}) revoked at {}", key.key_id, key.name, instant(key.revoke_time));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
