//! `keyward rotate-keys`: rewrap every stored key under the current master key.
//!
//! Rows are read in id-ordered batches and each is updated on its own, only if
//! it still holds what was read — safe to run while the server serves and
//! safe to re-run. A row no configured key can open is reported, never deleted.

use std::collections::BTreeMap;

use crate::server::{
    db::{user_keys, Db},
    vault::{cipher, KeyOwner, Keyring},
};

const BATCH: i64 = 100;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    pub moved: u64,
    /// Rows still on each old master key after the run.
    pub remaining: BTreeMap<String, i64>,
    /// Users whose key could not be decrypted with any configured master key.
    pub unreadable_user_ids: Vec<i64>,
}

pub async fn rotate_all(db: &Db, keyring: &Keyring) -> Result<RotationReport, sqlx::Error> {
    let mut report = RotationReport::default();
    let mut after_id = 0;
    loop {
        let batch = user_keys::page_not_on(db, keyring.current.id(), after_id, BATCH).await?;
        let Some(last) = batch.last() else { break };
        after_id = last.id;
        for row in batch {
            let owner = KeyOwner {
                user_id: row.user_id,
                provider: &row.provider,
            };
            match cipher::rewrap(keyring, owner, &row.sealed) {
                Ok(Some(rewrapped)) => {
                    if user_keys::replace_sealed_if_unchanged(db, row.id, &row.sealed, &rewrapped)
                        .await?
                    {
                        report.moved += 1;
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(user_id = row.user_id, error = %err, "cannot rewrap a stored key");
                    report.unreadable_user_ids.push(row.user_id);
                }
            }
        }
    }
    for (master_key_id, count) in user_keys::count_by_master_key(db).await? {
        if master_key_id != keyring.current.id() {
            report.remaining.insert(master_key_id, count);
        }
    }
    Ok(report)
}
