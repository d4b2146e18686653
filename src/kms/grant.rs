//! Grants: delegated, constrained permission to use one key.

use std::time::SystemTime;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::key::from_secs;
use super::{EncryptionContext, KmsError};

/// An operation a grant can allow (AWS's `GrantOperation`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, PartialOrd, Ord)]
pub enum GrantOperation {
    /// `kms:Decrypt`.
    Decrypt,
    /// `kms:Encrypt`.
    Encrypt,
    /// `kms:GenerateDataKey`.
    GenerateDataKey,
    /// `kms:GenerateDataKeyWithoutPlaintext`.
    GenerateDataKeyWithoutPlaintext,
    /// `kms:ReEncryptFrom`.
    ReEncryptFrom,
    /// `kms:ReEncryptTo`.
    ReEncryptTo,
    /// `kms:CreateGrant`.
    CreateGrant,
    /// `kms:RetireGrant`.
    RetireGrant,
    /// `kms:DescribeKey`.
    DescribeKey,
}

impl GrantOperation {
    /// The name AWS uses (also the `kms:<name>` action).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantOperation::Decrypt => "Decrypt",
            GrantOperation::Encrypt => "Encrypt",
            GrantOperation::GenerateDataKey => "GenerateDataKey",
            GrantOperation::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            GrantOperation::ReEncryptFrom => "ReEncryptFrom",
            GrantOperation::ReEncryptTo => "ReEncryptTo",
            GrantOperation::CreateGrant => "CreateGrant",
            GrantOperation::RetireGrant => "RetireGrant",
            GrantOperation::DescribeKey => "DescribeKey",
        }
    }

    /// The operations the seed's per-table grant carries, in the seed's order.
    pub fn seed_table_grant() -> Vec<GrantOperation> {
        vec![
            GrantOperation::DescribeKey,
            GrantOperation::GenerateDataKey,
            GrantOperation::Decrypt,
            GrantOperation::Encrypt,
            GrantOperation::ReEncryptFrom,
            GrantOperation::ReEncryptTo,
            GrantOperation::RetireGrant,
        ]
    }

    /// True for operations that take an encryption context, to which constraints apply.
    pub fn is_cryptographic(self) -> bool {
        !matches!(
            self,
            GrantOperation::CreateGrant | GrantOperation::RetireGrant | GrantOperation::DescribeKey
        )
    }
}

/// `encryptionContextSubset` / `encryptionContextEquals`.
#[derive(Clone, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct GrantConstraints {
    /// The request's context must contain all of these pairs (and may have more).
    #[serde(
        rename = "encryptionContextSubset",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub encryption_context_subset: Option<EncryptionContext>,
    /// The request's context must be exactly this.
    #[serde(
        rename = "encryptionContextEquals",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub encryption_context_equals: Option<EncryptionContext>,
}

impl GrantConstraints {
    /// A subset constraint, as the engine uses for each table.
    pub fn subset(ctx: EncryptionContext) -> GrantConstraints {
        GrantConstraints {
            encryption_context_subset: Some(ctx),
            encryption_context_equals: None,
        }
    }

    /// True when a request with context `ctx` satisfies the constraints.
    pub fn allow(&self, ctx: &EncryptionContext) -> bool {
        self.encryption_context_subset
            .as_ref()
            .is_none_or(|s| s.is_subset_of(ctx))
            && self
                .encryption_context_equals
                .as_ref()
                .is_none_or(|e| e == ctx)
    }

    /// True when every request these constraints allow, `parent` allows too (a grant made
    /// through a grant may only narrow it).
    pub(crate) fn at_least_as_strict_as(&self, parent: &GrantConstraints) -> bool {
        let narrows_subset = |required: &EncryptionContext| {
            self.encryption_context_equals
                .as_ref()
                .is_some_and(|e| required.is_subset_of(e))
                || self
                    .encryption_context_subset
                    .as_ref()
                    .is_some_and(|s| required.is_subset_of(s))
        };
        parent
            .encryption_context_subset
            .as_ref()
            .is_none_or(narrows_subset)
            && parent
                .encryption_context_equals
                .as_ref()
                .is_none_or(|e| self.encryption_context_equals.as_ref() == Some(e))
    }
}

/// The request of CreateGrant: `CreateGrantRequest::new(key, grantee, operations)`, then
/// the `with_*` methods.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CreateGrantRequest {
    /// The key the grant is on (id, ARN or alias).
    pub key_id: String,
    /// The principal the grant lets use the key: an ARN or a service principal name.
    pub grantee_principal: String,
    /// Who may retire the grant, besides the grantee when allowed.
    pub retiring_principal: Option<String>,
    /// The operations the grant allows.
    pub operations: Vec<GrantOperation>,
    /// Encryption-context conditions the grant requires.
    pub constraints: Option<GrantConstraints>,
    /// A name for the grant (idempotent creation).
    pub name: Option<String>,
}

impl CreateGrantRequest {
    /// A grant on `key_id` letting `grantee_principal` perform `operations`, with no
    /// retiring principal, constraints or name.
    pub fn new(
        key_id: impl Into<String>,
        grantee_principal: impl Into<String>,
        operations: Vec<GrantOperation>,
    ) -> CreateGrantRequest {
        CreateGrantRequest {
            key_id: key_id.into(),
            grantee_principal: grantee_principal.into(),
            retiring_principal: None,
            operations,
            constraints: None,
            name: None,
        }
    }

    /// The request with `principal` as the retiring principal.
    pub fn with_retiring_principal(mut self, principal: impl Into<String>) -> CreateGrantRequest {
        self.retiring_principal = Some(principal.into());
        self
    }

    /// The request with encryption-context `constraints`.
    pub fn with_constraints(mut self, constraints: GrantConstraints) -> CreateGrantRequest {
        self.constraints = Some(constraints);
        self
    }

    /// The request with a grant `name`.
    pub fn with_name(mut self, name: impl Into<String>) -> CreateGrantRequest {
        self.name = Some(name.into());
        self
    }
}

/// What CreateGrant returns.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CreateGrantResponse {
    /// 64 lower-case hex characters, as in the seed's CreateGrant event.
    pub grant_id: String,
}

/// One grant as ListGrants shows it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GrantEntry {
    /// The key's ARN.
    pub key_id: String,
    /// The grant's id.
    pub grant_id: String,
    /// Its name, if given.
    pub name: Option<String>,
    /// When it was created.
    pub creation_date: SystemTime,
    /// Who it lets use the key.
    pub grantee_principal: String,
    /// Who may retire it.
    pub retiring_principal: Option<String>,
    /// The account of the principal that created the grant.
    pub issuing_account: String,
    /// The operations it allows.
    pub operations: Vec<GrantOperation>,
    /// Its encryption-context conditions.
    pub constraints: Option<GrantConstraints>,
}

/// A grant as the keystore holds it. Retired and revoked grants are removed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Grant {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) created_secs: u64,
    pub(crate) grantee: String,
    pub(crate) retiring: Option<String>,
    pub(crate) issuing_account: String,
    pub(crate) operations: Vec<GrantOperation>,
    pub(crate) constraints: Option<GrantConstraints>,
}

impl Grant {
    /// A fresh random grant id: 32 bytes as 64 hex characters.
    pub(crate) fn new_id() -> String {
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        hex::encode(b)
    }

    /// True when this grant lets `principal_arn` perform `op` with context `ctx`.
    /// Constraints are checked on every use of a cryptographic operation.
    pub(crate) fn allows(
        &self,
        principal_arn: &str,
        op: GrantOperation,
        ctx: Option<&EncryptionContext>,
    ) -> bool {
        if self.grantee != principal_arn || !self.operations.contains(&op) {
            return false;
        }
        if !op.is_cryptographic() {
            return true;
        }
        match (&self.constraints, ctx) {
            (None, _) => true,
            (Some(c), Some(ctx)) => c.allow(ctx),
            (Some(c), None) => c.allow(&EncryptionContext::new()),
        }
    }

    /// True when `principal_arn` may retire this grant: its retiring principal, or its
    /// grantee when the grant includes RetireGrant (AWS's rule).
    pub(crate) fn retirable_by(&self, principal_arn: &str) -> bool {
        self.retiring.as_deref() == Some(principal_arn)
            || (self.grantee == principal_arn
                && self.operations.contains(&GrantOperation::RetireGrant))
    }

    pub(crate) fn entry(&self, key_arn: &str) -> GrantEntry {
        GrantEntry {
            key_id: key_arn.to_string(),
            grant_id: self.id.clone(),
            name: self.name.clone(),
            creation_date: from_secs(self.created_secs),
            grantee_principal: self.grantee.clone(),
            retiring_principal: self.retiring.clone(),
            issuing_account: self.issuing_account.clone(),
            operations: self.operations.clone(),
            constraints: self.constraints.clone(),
        }
    }
}

/// Validates a CreateGrant request's shape.
pub(crate) fn validate_request(req: &CreateGrantRequest) -> Result<(), KmsError> {
    if req.grantee_principal.is_empty() {
        return Err(KmsError::InvalidArgument(
            "GranteePrincipal is empty".into(),
        ));
    }
    if req.operations.is_empty() {
        return Err(KmsError::InvalidArgument("Operations is empty".into()));
    }
    if let Some(c) = &req.constraints {
        if c.encryption_context_subset.is_none() && c.encryption_context_equals.is_none() {
            return Err(KmsError::InvalidArgument("Constraints is empty".into()));
        }
        if !req.operations.iter().any(|o| o.is_cryptographic()) {
            return Err(KmsError::InvalidArgument(
                "encryption context constraints need a cryptographic operation".into(),
            ));
        }
    }
    if req.name.as_ref().is_some_and(|n| {
        n.is_empty()
            || n.len() > 256
            || !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-:/".contains(&b))
    }) {
        return Err(KmsError::InvalidArgument(
            "grant Name must be 1 to 256 characters of [a-zA-Z0-9:/_-]".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC: &str = "sealdb.us-west-2.amazonaws.com";

    fn table_grant(table: &str) -> Grant {
        Grant {
            id: Grant::new_id(),
            name: None,
            created_secs: 0,
            grantee: SVC.into(),
            retiring: Some(SVC.into()),
            issuing_account: "111122223333".into(),
            operations: GrantOperation::seed_table_grant(),
            constraints: Some(GrantConstraints::subset(EncryptionContext::for_table(
                table,
                "111122223333",
            ))),
        }
    }

    #[test]
    fn constraints_checked_on_each_use() {
        let g = table_grant("Books");
        let books = EncryptionContext::for_table("Books", "111122223333");
        let movies = EncryptionContext::for_table("Movies", "111122223333");
        assert!(g.allows(SVC, GrantOperation::Decrypt, Some(&books)));
        assert!(g.allows(
            SVC,
            GrantOperation::Decrypt,
            Some(&books.clone().with("x", "y"))
        ));
        assert!(!g.allows(SVC, GrantOperation::Decrypt, Some(&movies)));
        assert!(!g.allows(SVC, GrantOperation::Decrypt, None));
        assert!(g.allows(SVC, GrantOperation::DescribeKey, None));
        assert!(!g.allows(SVC, GrantOperation::CreateGrant, None));
        assert!(!g.allows(
            "arn:aws:iam::111122223333:user/a",
            GrantOperation::Decrypt,
            Some(&books)
        ));
    }

    #[test]
    fn equals_constraint_is_exact() {
        let books = EncryptionContext::for_table("Books", "111122223333");
        let c = GrantConstraints {
            encryption_context_subset: None,
            encryption_context_equals: Some(books.clone()),
        };
        assert!(c.allow(&books));
        assert!(!c.allow(&books.clone().with("x", "y")));
        assert!(!c.allow(&EncryptionContext::new()));
    }

    #[test]
    fn narrowing() {
        let parent = GrantConstraints::subset(EncryptionContext::new().with("t", "Books"));
        let child =
            GrantConstraints::subset(EncryptionContext::new().with("t", "Books").with("a", "1"));
        assert!(child.at_least_as_strict_as(&parent));
        assert!(!parent.at_least_as_strict_as(&child));
        assert!(GrantConstraints::default().at_least_as_strict_as(&GrantConstraints::default()));
        assert!(!GrantConstraints::default().at_least_as_strict_as(&parent));
    }

    #[test]
    fn retire_rules() {
        let g = table_grant("Books");
        assert!(g.retirable_by(SVC));
        let mut h = g.clone();
        h.retiring = None;
        h.operations.retain(|o| *o != GrantOperation::RetireGrant);
        assert!(!h.retirable_by(SVC));
    }

    #[test]
    fn constraints_json_shape() -> Result<(), serde_json::Error> {
        let c = GrantConstraints::subset(EncryptionContext::for_table("Books", "111122223333"));
        assert_eq!(
            serde_json::to_value(&c)?,
            serde_json::json!({"encryptionContextSubset": {
                "sealdb:tableName": "Books", "sealdb:subscriberId": "111122223333"}})
        );
        Ok(())
    }

    #[test]
    fn grant_ids_are_64_hex() {
        let id = Grant::new_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
