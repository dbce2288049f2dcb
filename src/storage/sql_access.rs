//! The access SQL both backends run, written once (see `sql_store.rs` for why a macro).

use super::access::{ApiKeyRecord, AuditEntry, AuditRecord};
use super::StoreError;
use crate::domain::access::Role;
use crate::domain::Fein;

pub(super) const KEY_COLUMNS: &str = "key_id, name, role, feins, secret_sha256, client_cert_sha256, created_at, revoked_at";

pub(super) type KeyRow = (String, String, String, String, String, Option<String>, String, Option<String>);

pub(super) fn key(row: KeyRow) -> Result<ApiKeyRecord, StoreError> {
    let (key_id, name, role, feins, secret_sha256, client_cert_sha256, created_at, revoked_at) = row;
    Ok(ApiKeyRecord {
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role `{role}` of key {key_id}")))?,
        feins: feins
            .split(',')
            .filter(|f| !f.is_empty())
            .map(|f| Fein::parse(f).map_err(|_| StoreError::Corrupt(format!("FEIN of key {key_id}"))))
            .collect::<Result<_, _>>()?,
        key_id,
        name,
        secret_sha256,
        client_cert_sha256,
        created_at,
        revoked_at,
    })
}

pub(super) fn feins_column(key: &ApiKeyRecord) -> String {
    key.feins.iter().map(Fein::as_str).collect::<Vec<_>>().join(",")
}

pub(super) const AUDIT_COLUMNS: &str = "audit_id, at, request_id, actor, key_id, role, action, object, outcome";

pub(super) type AuditRow = (i64, String, String, String, Option<String>, String, String, String, String);

pub(super) fn audit(row: AuditRow) -> AuditRecord {
    let (audit_id, at, request_id, actor, key_id, role, action, object, outcome) = row;
    AuditRecord { audit_id, entry: AuditEntry { at, request_id, actor, key_id, role, action, object, outcome } }
}

/// Writes one audit row through `$executor` (a transaction, so it commits with the action).
macro_rules! insert_audit {
    ($executor:expr, $entry:expr) => {{
        let entry: &$crate::storage::access::AuditEntry = $entry;
        sqlx::query(
            "INSERT INTO audit_log (at, request_id, actor, key_id, role, action, object, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&entry.at)
        .bind(&entry.request_id)
        .bind(&entry.actor)
        .bind(entry.key_id.as_deref())
        .bind(&entry.role)
        .bind(&entry.action)
        .bind(&entry.object)
        .bind(&entry.outcome)
        .execute($executor)
        .await
    }};
}

/// Expands the [`AccessStore`](super::access::AccessStore) implementation for one backend.
macro_rules! impl_sql_access {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::access::AccessStore for $store {
            async fn create_key(
                &self,
                key: &$crate::storage::access::ApiKeyRecord,
                audit: &$crate::storage::access::AuditEntry,
            ) -> $crate::storage::StoreResult<$crate::storage::access::KeyCreation> {
                use $crate::storage::access::KeyCreation;
                let mut tx = self.writer().begin().await?;
                let feins = $crate::storage::sql_access::feins_column(key);
                let others: Vec<(String, String)> =
                    sqlx::query_as("SELECT role, feins FROM api_keys WHERE name = $1").bind(&key.name).fetch_all(&mut *tx).await?;
                for (role, other_feins) in others {
                    if role != key.role.as_str() {
                        let role = $crate::domain::access::Role::parse(&role)
                            .ok_or_else(|| $crate::storage::StoreError::Corrupt(format!("role `{role}`")))?;
                        return Ok(KeyCreation::NameHasOtherRole(role));
                    }
                    if other_feins != feins {
                        return Ok(KeyCreation::NameHasOtherFeins);
                    }
                }
                sqlx::query(
                    "INSERT INTO api_keys (key_id, name, role, feins, secret_sha256, client_cert_sha256, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&key.key_id)
                .bind(&key.name)
                .bind(key.role.as_str())
                .bind(&feins)
                .bind(&key.secret_sha256)
                .bind(key.client_cert_sha256.as_deref())
                .bind(&key.created_at)
                .execute(&mut *tx)
                .await?;
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                Ok(KeyCreation::Created)
            }

            async fn key(&self, key_id: &str) -> $crate::storage::StoreResult<Option<$crate::storage::access::ApiKeyRecord>> {
                use $crate::storage::sql_access::{KeyRow, KEY_COLUMNS};
                let row: Option<KeyRow> = sqlx::query_as(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = $1"))
                    .bind(key_id)
                    .fetch_optional(self.reader())
                    .await?;
                row.map($crate::storage::sql_access::key).transpose()
            }

            async fn key_by_client_cert(
                &self,
                cert_sha256: &str,
            ) -> $crate::storage::StoreResult<Option<$crate::storage::access::ApiKeyRecord>> {
                use $crate::storage::sql_access::{KeyRow, KEY_COLUMNS};
                let row: Option<KeyRow> = sqlx::query_as(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE client_cert_sha256 = $1"))
                    .bind(cert_sha256)
                    .fetch_optional(self.reader())
                    .await?;
                row.map($crate::storage::sql_access::key).transpose()
            }

            async fn keys(&self) -> $crate::storage::StoreResult<Vec<$crate::storage::access::ApiKeyRecord>> {
                use $crate::storage::sql_access::{KeyRow, KEY_COLUMNS};
                let rows: Vec<KeyRow> = sqlx::query_as(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id"))
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map($crate::storage::sql_access::key).collect()
            }

            async fn revoke_key(
                &self,
                key_id: &str,
                revoked_at: &str,
                audit: &$crate::storage::access::AuditEntry,
            ) -> $crate::storage::StoreResult<bool> {
                let mut tx = self.writer().begin().await?;
                let revoked = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL")
                    .bind(revoked_at)
                    .bind(key_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if revoked == 0 {
                    return Ok(false);
                }
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                Ok(true)
            }

            async fn record_audit(&self, entry: &$crate::storage::access::AuditEntry) -> $crate::storage::StoreResult<()> {
                self.append_audit(entry).await
            }

            async fn audit_after(
                &self,
                after_id: i64,
                limit: u32,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::access::AuditRecord>> {
                use $crate::storage::sql_access::{AuditRow, AUDIT_COLUMNS};
                self.settle_audit().await?;
                let rows: Vec<AuditRow> =
                    sqlx::query_as(&format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE audit_id > $1 ORDER BY audit_id LIMIT $2"))
                        .bind(after_id)
                        .bind(i64::from(limit))
                        .fetch_all(self.reader())
                        .await?;
                Ok(rows.into_iter().map($crate::storage::sql_access::audit).collect())
            }
        }
    };
}

pub(crate) use impl_sql_access;
pub(crate) use insert_audit;
