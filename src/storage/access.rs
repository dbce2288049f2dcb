//! What the store keeps of access: API keys (the secret only as a hash) and the audit trail,
//! which is append-only (database triggers refuse UPDATE and DELETE).

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::access::Role;
use crate::domain::Fein;

/// A key as stored. The secret is only ever its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub name: String,
    pub role: Role,
    pub feins: Vec<Fein>,
    pub secret_sha256: String,
    pub client_cert_sha256: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// One audited call. `object` names what it was about and never holds PII.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: String,
    pub request_id: String,
    /// The key's name, or `-` for a caller that did not authenticate.
    pub actor: String,
    pub key_id: Option<String>,
    /// The key's role, or `-`.
    pub role: String,
    pub action: String,
    pub object: String,
    /// OK, or why not (UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, …).
    pub outcome: String,
}

/// An audit row as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub audit_id: i64,
    pub entry: AuditEntry,
}

/// What creating a key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyCreation {
    Created,
    /// Keys of one name share one role (a name is a tenant): the name is taken by this role.
    NameHasOtherRole(Role),
    /// Employer keys of one name share their FEINs (they read the same files).
    NameHasOtherFeins,
}

#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores a new key and its audit row in one transaction, unless its name belongs to
    /// keys of another role (then nothing is written).
    async fn create_key(&self, key: &ApiKeyRecord, audit: &AuditEntry) -> StoreResult<KeyCreation>;
    async fn key(&self, key_id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    async fn key_by_client_cert(&self, cert_sha256: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Every key, oldest first.
    async fn keys(&self) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Revokes a key and writes its audit row in one transaction; false (nothing written)
    /// when there is no such key or it was revoked already.
    async fn revoke_key(&self, key_id: &str, revoked_at: &str, audit: &AuditEntry) -> StoreResult<bool>;
    /// Writes one audit row on its own: a refused or failed call, or a read.
    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Audit rows after `after_id`, oldest first, at most `limit`.
    async fn audit_after(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditRecord>>;
}
