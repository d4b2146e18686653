//! ListKeys and ListAliases of `LocalKms`: what the AWS CLI's `kms list-keys` and
//! `kms list-aliases` show. Not part of the `Kms` trait (the engine never lists keys).
//!
//! In AWS these are IAM permissions of the account, not key-policy ones; the local KMS,
//! which has no IAM, lets any principal of an account list that account's keys and aliases.
//! Both calls are audited like every other.

use serde_json::json;

use super::LocalKms;
use crate::kms::{Caller, KmsError};

/// One key as ListKeys shows it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeyListEntry {
    /// The key's UUID.
    pub key_id: String,
    /// The key's ARN.
    pub key_arn: String,
}

/// One alias as ListAliases shows it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AliasListEntry {
    /// `alias/...`.
    pub alias_name: String,
    /// `arn:aws:kms:<region>:<account>:alias/...`.
    pub alias_arn: String,
    /// The key it names.
    pub target_key_id: String,
}

impl LocalKms {
    /// ListKeys: every key of the caller's account, in key-id order.
    pub fn list_keys(&self, caller: &Caller) -> Result<Vec<KeyListEntry>, KmsError> {
        self.call(caller, "ListKeys", true, json!({}), |st, _facts| {
            let account = caller.principal().account.clone();
            Ok(st
                .keys
                .values()
                .filter(|k| k.account == account)
                .map(|k| KeyListEntry {
                    key_id: k.id.to_string(),
                    key_arn: k.arn(),
                })
                .collect())
        })
    }

    /// ListAliases: the aliases of the caller's account, in name order; with `key_id` (a
    /// key id or ARN), only those naming that key.
    pub fn list_aliases(
        &self,
        caller: &Caller,
        key_id: Option<&str>,
    ) -> Result<Vec<AliasListEntry>, KmsError> {
        let params = json!({ "keyId": key_id });
        self.call(caller, "ListAliases", true, params, |st, _facts| {
            let account = caller.principal().account.clone();
            let only = match key_id {
                Some(k) => Some(self.resolve(st, caller, k)?),
                None => None,
            };
            let aliases = st.aliases.get(&account).cloned().unwrap_or_default();
            Ok(aliases
                .into_iter()
                .filter(|(_, id)| only.is_none_or(|o| o == *id))
                .map(|(name, id)| AliasListEntry {
                    alias_arn: format!("arn:aws:kms:{}:{account}:{name}", self.region),
                    target_key_id: id.to_string(),
                    alias_name: name,
                })
                .collect())
        })
    }
}
