//! Who is calling, whether they may, and the audit trail of what they did.
//!
//! An API key is `gwk_<key id>_<secret>`: the key id (16 hex digits) finds the stored row,
//! the secret (64 hex digits, 256 random bits) is kept only as its SHA-256 and compared in
//! constant time. A secret that random needs no slow password hash: nothing can be guessed.
//!
//! Every use case takes a [`Caller`] and starts with [`App::authorize`], which refuses a role
//! the policy (`domain::access`) does not allow, writing the refusal to the audit trail. What
//! the use case then does is audited once: in the same transaction as its writes when it
//! changes something, or right after a read and before the answer leaves (so nothing is
//! read without a trace), or on its own with the reason when the call fails.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::key_cache::KeyLookup;
use super::{App, AppError, ExportStream};
use crate::domain::access::{check_key_name, Action, Principal, Role};
use crate::domain::{Fein, ProblemCode};
use crate::storage::access::{ApiKeyRecord, AuditEntry, KeyCreation};

const TOKEN_PREFIX: &str = "gwk_";

/// The authenticated caller of one request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    /// The request's id, returned to the client and kept in the audit trail and the logs.
    pub request_id: String,
}

/// Why a request could not be authenticated. The client is told only that it could not:
/// which of these it was stays in the server's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials")]
    Missing,
    #[error("malformed API key")]
    Malformed,
    #[error("unknown API key")]
    UnknownKey,
    #[error("wrong secret")]
    WrongSecret,
    #[error("revoked API key")]
    Revoked,
    #[error("unknown client certificate")]
    UnknownCertificate,
    /// The keys could not be read (the database is down): not the caller's fault.
    #[error("the keys could not be read")]
    Unavailable,
}

/// The credentials a request presented.
#[derive(Clone, Copy, Debug, Default)]
pub struct Credentials<'a> {
    /// The bearer token of the `authorization` metadata.
    pub token: Option<&'a str>,
    /// The SHA-256 of the client certificate (DER) of an mTLS connection.
    pub client_cert_sha256: Option<&'a str>,
}

/// A key as callers see it: everything but the hash of its secret, which never leaves the
/// application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyView {
    pub key_id: String,
    pub name: String,
    pub role: Role,
    pub feins: Vec<Fein>,
    pub client_cert_sha256: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<ApiKeyRecord> for KeyView {
    fn from(key: ApiKeyRecord) -> KeyView {
        KeyView {
            key_id: key.key_id,
            name: key.name,
            role: key.role,
            feins: key.feins,
            client_cert_sha256: key.client_cert_sha256,
            created_at: key.created_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A key just made: the only time its token is known.
#[derive(Clone, Debug)]
pub struct CreatedKey {
    pub key: KeyView,
    pub token: String,
}

/// What a new key is for.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub role: Role,
    pub name: String,
    pub feins: Vec<Fein>,
    pub client_cert_sha256: Option<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The SHA-256 of a certificate's DER bytes, as stored for mTLS keys.
pub fn certificate_fingerprint(der: &[u8]) -> String {
    sha256_hex(der)
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the operating system provides random bytes");
    hex::encode(buffer)
}

/// `gwk_<16 hex>_<64 hex>` → (key id, secret).
fn split_token(token: &str) -> Option<(&str, &str)> {
    let (key_id, secret) = token.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(key_id, 16) && hex(secret, 64)).then_some((key_id, secret))
}

/// The longest object an audit row keeps: what a caller sends (a batch id, a key id) is not
/// yet validated when the row is made, and must not fill the table.
const MAX_AUDIT_OBJECT_CHARS: usize = 80;

/// `object` as the audit trail keeps it: printable ASCII, at most 80 characters.
fn audit_object(object: String) -> String {
    let printable = |c: char| c.is_ascii_graphic() || c == ' ';
    if object.len() <= MAX_AUDIT_OBJECT_CHARS && object.chars().all(printable) {
        return object;
    }
    let mut kept: String = object.chars().take(MAX_AUDIT_OBJECT_CHARS).map(|c| if printable(c) { c } else { '?' }).collect();
    if object.chars().count() > MAX_AUDIT_OBJECT_CHARS {
        kept.push('…');
    }
    kept
}

fn principal(key: &ApiKeyRecord) -> Principal {
    Principal { key_id: key.key_id.clone(), name: key.name.clone(), role: key.role, feins: key.feins.clone() }
}

impl Caller {
    /// The operator at the server's own console (`gateway admin …`): an administrator
    /// whose access is the database's, named by the operating system's user.
    pub fn local_operator() -> Caller {
        let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".to_owned());
        Caller {
            principal: Principal { key_id: String::new(), name: format!("local:{user}"), role: Role::Admin, feins: Vec::new() },
            request_id: random_hex(8),
        }
    }
}

impl App {
    /// The key a request's credentials name, if they are valid: a bearer token, else the
    /// client certificate of an mTLS connection.
    pub async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Principal, AuthError> {
        let key = match (credentials.token, credentials.client_cert_sha256) {
            (Some(token), _) => {
                let (key_id, secret) = split_token(token.trim()).ok_or(AuthError::Malformed)?;
                let presented = sha256_hex(secret.as_bytes());
                let key = self.key_for(KeyLookup::Id(key_id.to_owned())).await?.ok_or(AuthError::UnknownKey)?;
                if !bool::from(presented.as_bytes().ct_eq(key.secret_sha256.as_bytes())) {
                    return Err(AuthError::WrongSecret);
                }
                key
            }
            (None, Some(fingerprint)) => {
                self.key_for(KeyLookup::ClientCert(fingerprint.to_owned())).await?.ok_or(AuthError::UnknownCertificate)?
            }
            (None, None) => return Err(AuthError::Missing),
        };
        if key.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        Ok(principal(&key))
    }

    /// The key `lookup` names: from the cache when read less than its TTL ago, else from the
    /// store (and then kept).
    async fn key_for(&self, lookup: KeyLookup) -> Result<Option<ApiKeyRecord>, AuthError> {
        if let Some(key) = self.keys.get(&lookup) {
            return Ok(Some(key));
        }
        let started = self.keys.read_starting();
        let read = match &lookup {
            KeyLookup::Id(key_id) => self.store.key(key_id).await,
            KeyLookup::ClientCert(fingerprint) => self.store.key_by_client_cert(fingerprint).await,
        };
        let key = read.map_err(|error| {
            tracing::error!(%error, "reading an API key failed");
            AuthError::Unavailable
        })?;
        if let Some(key) = &key {
            self.keys.put(lookup, key.clone(), started);
        }
        Ok(key)
    }

    /// Records a call refused before anyone was identified.
    pub async fn audit_unauthenticated(&self, request_id: &str, action: &str) {
        let entry = AuditEntry {
            at: self.clock.now_rfc3339(),
            request_id: request_id.to_owned(),
            actor: "-".to_owned(),
            key_id: None,
            role: "-".to_owned(),
            action: action.to_owned(),
            object: String::new(),
            outcome: "UNAUTHENTICATED".to_owned(),
        };
        if let Err(error) = self.store.record_audit(&entry).await {
            tracing::error!(%error, "writing the audit row of a refused call failed");
        }
    }

    /// Checks that the caller's role may take `action` on `object`. A refusal is written to
    /// the audit trail; an allowed call gets the audit entry its use case completes.
    pub(super) async fn authorize(&self, caller: &Caller, action: Action, object: impl Into<String>) -> Result<AuditEntry, AppError> {
        let principal = &caller.principal;
        let entry = AuditEntry {
            at: self.clock.now_rfc3339(),
            request_id: caller.request_id.clone(),
            actor: principal.name.clone(),
            key_id: (!principal.key_id.is_empty()).then(|| principal.key_id.clone()),
            role: principal.role.as_str().to_owned(),
            action: action.name().to_owned(),
            object: audit_object(object.into()),
            outcome: "OK".to_owned(),
        };
        if principal.may(action) {
            return Ok(entry);
        }
        tracing::warn!(caller = %principal.name, role = %principal.role, action = action.name(), "permission denied");
        self.store.record_audit(&AuditEntry { outcome: "PERMISSION_DENIED".to_owned(), ..entry }).await?;
        Err(AppError::PermissionDenied(format!("a {} key may not call {}", principal.role, action.name())))
    }

    /// Checks the caller's role before anything of the request is read: a refusal is
    /// audited and answered the same whatever the request holds.
    pub async fn check_role(&self, caller: &Caller, action: Action) -> Result<(), AppError> {
        if caller.principal.may(action) {
            return Ok(()); // Nothing to write: the use case audits the call.
        }
        self.authorize(caller, action, "").await.map(drop)
    }

    /// Refuses a call whose request could not be understood (a malformed field), auditing
    /// it like any other outcome.
    pub async fn refuse(&self, caller: &Caller, action: Action, error: AppError) -> AppError {
        match self.authorize(caller, action, "").await {
            Ok(audit) => match self.record_failure(audit, &error).await {
                Ok(()) => error,
                Err(audit_failed) => audit_failed,
            },
            Err(denied) => denied,
        }
    }

    /// Ends a call whose writes carried `audit` in their transaction: on failure, the
    /// failure is audited on its own (the transaction that held the row rolled back).
    pub(super) async fn audited_write<T>(&self, audit: AuditEntry, result: Result<T, AppError>) -> Result<T, AppError> {
        self.audited_commit(audit, result.map(Ok)).await
    }

    /// Ends a call whose writes carried `audit` and then read back what they wrote: an error
    /// before the commit (the outer one) is audited as the call's outcome; one after it is
    /// answered but not audited again, since the row that committed with the writes already
    /// says what was done.
    pub(super) async fn audited_commit<T>(&self, audit: AuditEntry, result: Result<Result<T, AppError>, AppError>) -> Result<T, AppError> {
        match result {
            Ok(after_commit) => after_commit,
            Err(error) => {
                self.record_failure(audit, &error).await?;
                Err(error)
            }
        }
    }

    /// Ends a call that read or decided without writing: its audit row is written now,
    /// before the answer leaves, with the outcome.
    pub(super) async fn audited_read<T>(&self, audit: AuditEntry, result: Result<T, AppError>) -> Result<T, AppError> {
        match &result {
            Ok(_) => self.store.record_audit(&audit).await?,
            Err(error) => self.record_failure(audit, error).await?,
        }
        result
    }

    /// Audits a call with an outcome of its own (`REFUSED`, `DUPLICATE`, …).
    pub(super) async fn audit_outcome(&self, audit: AuditEntry, outcome: &str) -> Result<(), AppError> {
        Ok(self.store.record_audit(&AuditEntry { outcome: outcome.to_owned(), ..audit }).await?)
    }

    pub(super) async fn record_failure(&self, audit: AuditEntry, error: &AppError) -> Result<(), AppError> {
        Ok(self.store.record_audit(&AuditEntry { outcome: error.outcome().to_owned(), ..audit }).await?)
    }

    /// Makes an API key. Its token is returned once and kept only as a hash.
    pub async fn create_key(&self, caller: &Caller, new: NewKey) -> Result<CreatedKey, AppError> {
        let audit = self.authorize(caller, Action::CreateApiKey, format!("key-name:{}", new.name.trim())).await?;
        let result = self.create_key_checked(new, &audit).await;
        self.audited_write(audit, result).await
    }

    async fn create_key_checked(&self, new: NewKey, audit: &AuditEntry) -> Result<CreatedKey, AppError> {
        let name = check_key_name(&new.name).map_err(|e| AppError::invalid("name", e))?.to_owned();
        match (new.role, new.feins.is_empty()) {
            (Role::Employer, true) => return Err(AppError::invalid("fein", "an employer key names the FEIN(s) it remits for")),
            (Role::Employer, false) | (_, true) => {}
            (_, false) => return Err(AppError::invalid("fein", "only employer keys are limited to FEINs")),
        }
        if let Some(fingerprint) = &new.client_cert_sha256 {
            if fingerprint.len() != 64 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(AppError::invalid("client_cert", "a certificate fingerprint is 64 hex digits (SHA-256)"));
            }
        }
        let key_id = random_hex(8);
        let secret = random_hex(32);
        let key = ApiKeyRecord {
            key_id: key_id.clone(),
            name,
            role: new.role,
            feins: new.feins,
            secret_sha256: sha256_hex(secret.as_bytes()),
            client_cert_sha256: new.client_cert_sha256.map(|f| f.to_ascii_lowercase()),
            created_at: self.clock.now_rfc3339(),
            revoked_at: None,
        };
        let audit = AuditEntry { object: format!("key:{key_id}"), ..audit.clone() };
        match self.store.create_key(&key, &audit).await? {
            KeyCreation::Created => {}
            KeyCreation::NameHasOtherRole(role) => {
                return Err(AppError::already_exists(
                    ProblemCode::KeyNameHasOtherRole,
                    format!("key_name:{}", key.name),
                    format!("the name {} belongs to {role} keys; a name is one tenant", key.name),
                ))
            }
            KeyCreation::NameHasOtherFeins => {
                return Err(AppError::already_exists(
                    ProblemCode::KeyNameHasOtherFeins,
                    format!("key_name:{}", key.name),
                    format!("the employer {} has keys for other FEINs; keys of one name share their FEINs", key.name),
                ))
            }
        }
        tracing::info!(key_id = %key.key_id, name = %key.name, role = %key.role, "API key created");
        Ok(CreatedKey { token: format!("{TOKEN_PREFIX}{key_id}_{secret}"), key: key.into() })
    }

    /// Every key, oldest first (never a secret: only hashes are stored).
    pub async fn list_keys(&self, caller: &Caller) -> Result<Vec<KeyView>, AppError> {
        let audit = self.authorize(caller, Action::ListApiKeys, "keys").await?;
        let result = self.store.keys().await.map(|keys| keys.into_iter().map(KeyView::from).collect()).map_err(AppError::from);
        self.audited_read(audit, result).await
    }

    /// The keys a page at a time, by key id. (An agency has tens of keys, not millions: the
    /// page is cut from the whole list.)
    pub async fn list_keys_page(&self, caller: &Caller, page: super::paging::PageRequest) -> Result<super::paging::Page<KeyView>, AppError> {
        let mut keys = self.list_keys(caller).await?;
        keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        let after = page.after.unwrap_or_default();
        let rest: Vec<KeyView> = keys.into_iter().filter(|key| key.key_id > after).take(page.size as usize + 1).collect();
        Ok(super::paging::page(KEY_LIST, page.size, rest, |key| key.key_id.clone()))
    }

    /// Revokes a key: from now on it authenticates nothing.
    pub async fn revoke_key(&self, caller: &Caller, key_id: &str) -> Result<KeyView, AppError> {
        let key_id = key_id.trim();
        let audit = self.authorize(caller, Action::RevokeApiKey, format!("key:{key_id}")).await?;
        let result = self.revoke_key_audited(key_id, &audit).await;
        self.audited_commit(audit, result).await
    }

    async fn revoke_key_audited(&self, key_id: &str, audit: &AuditEntry) -> Result<Result<KeyView, AppError>, AppError> {
        if !self.store.revoke_key(key_id, &self.clock.now_rfc3339(), audit).await? {
            return Err(AppError::NotFound(format!("no active key {key_id}")));
        }
        self.keys.forget(key_id);
        tracing::info!(%key_id, "API key revoked");
        let revoked = self.store.key(key_id).await.map_err(AppError::from);
        Ok(revoked.and_then(|key| key.map(KeyView::from).ok_or_else(|| AppError::Internal(format!("revoked key {key_id} vanished")))))
    }

    /// The audit trail, as CSV chunks.
    pub async fn export_audit(&self, caller: &Caller) -> Result<ExportStream, AppError> {
        let audit = self.authorize(caller, Action::ExportAudit, "export:audit").await?;
        self.audited_read(audit, Ok(())).await?;
        Ok(super::export::audit(self.store.clone()))
    }
}

/// The name of the list of keys, in its page tokens.
pub const KEY_LIST: &str = "keys";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_objects_are_short_and_printable() {
        assert_eq!(audit_object("batch:ACME-1".into()), "batch:ACME-1");
        let long = audit_object(format!("batch:{}", "x".repeat(10_000)));
        assert_eq!(long.chars().count(), MAX_AUDIT_OBJECT_CHARS + 1);
        assert_eq!(audit_object("batch:a\nb\u{7}".into()), "batch:a?b?");
    }

    #[test]
    fn tokens_split_only_when_well_formed() {
        let key_id = "0123456789abcdef";
        let secret = "ab".repeat(32);
        assert_eq!(split_token(&format!("gwk_{key_id}_{secret}")), Some((key_id, secret.as_str())));
        assert_eq!(split_token(&format!("gwk_{key_id}_{}", &secret[1..])), None);
        assert_eq!(split_token(&format!("xyz_{key_id}_{secret}")), None);
        assert_eq!(split_token(&format!("gwk_{key_id}{secret}")), None);
        assert_eq!(split_token("gwk_zz23456789abcdef_00"), None);
    }
}
