//! Conversions between sealdb's KMS types and the AWS SDK's, and AWS errors onto `KmsError`.
//!
//! Everything here is pure: no I/O, so each mapping is unit tested without a server.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::DateTime;
use aws_sdk_kms::types as sdk;

use crate::kms::{
    EncryptionContext, GrantConstraints, GrantEntry, GrantOperation, KeyManager, KeyMetadata,
    KeyState, KmsError,
};

/// What a failed call was about, to fill in `KmsError`'s fields: the action (`kms:Decrypt`)
/// and the key named in the request (empty when the request names none, as Decrypt may).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallSite<'a> {
    pub(crate) action: &'a str,
    pub(crate) key: &'a str,
}

/// Who AWS says was refused, when its message does not name the principal.
const UNKNOWN_PRINCIPAL: &str = "(the AWS credentials in use)";

/// Maps a failed SDK call. Transport failures (refused connection, timeout, unparseable
/// answer) become `Unavailable`, which the engine's table-key cache treats as an outage.
pub(crate) fn from_sdk_error<E>(err: SdkError<E, HttpResponse>, site: CallSite<'_>) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            from_service_error(e.code(), e.message(), ctx.raw().status().as_u16(), site)
        }
        SdkError::ConstructionFailure(_) => KmsError::InvalidArgument(format!(
            "{}: request not sent: {}",
            site.action,
            DisplayErrorContext(&err)
        )),
        // TimeoutError, DispatchFailure (connection refused or reset, DNS, TLS), ResponseError
        // (an answer that is not KMS's), and whatever future variants the SDK adds.
        _ => KmsError::Unavailable(format!("{}: {}", site.action, DisplayErrorContext(&err))),
    }
}

/// Maps an error answer. One without an error code is judged by its HTTP status: a 5xx
/// (already retried by the SDK) is an outage, anything else a refused request.
pub(crate) fn from_service_error(
    code: Option<&str>,
    message: Option<&str>,
    status: u16,
    site: CallSite<'_>,
) -> KmsError {
    if code.is_none() && status >= 500 {
        return KmsError::Unavailable(format!(
            "{}: HTTP {status} without an error code{}",
            site.action,
            message.map(|m| format!(": {m}")).unwrap_or_default()
        ));
    }
    from_code(code, message, site)
}

/// Maps an AWS KMS error code (the `__type` of its JSON error) onto `KmsError`.
pub(crate) fn from_code(code: Option<&str>, message: Option<&str>, site: CallSite<'_>) -> KmsError {
    let msg = message.unwrap_or_default();
    let code_text = code.unwrap_or("(no error code)");
    let detail = || {
        if msg.is_empty() {
            code_text.to_string()
        } else {
            format!("{code_text}: {msg}")
        }
    };
    let key = || {
        if site.key.is_empty() {
            detail()
        } else {
            site.key.to_string()
        }
    };
    match code_text {
        "NotFoundException" => KmsError::NotFound(if site.key.is_empty() {
            detail()
        } else {
            format!("{}: {}", site.key, detail())
        }),
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "ExpiredTokenException"
        | "NotAuthorized" => KmsError::AccessDenied {
            principal: refused_principal(msg)
                .unwrap_or(UNKNOWN_PRINCIPAL)
                .to_string(),
            action: site.action.to_string(),
            key: key(),
        },
        "InvalidCiphertextException" => KmsError::InvalidCiphertext,
        "IncorrectKeyException" => KmsError::IncorrectKey(key()),
        "DisabledException" => KmsError::Disabled(key()),
        "KMSInvalidStateException" => KmsError::InvalidState {
            key: key(),
            state: msg.to_string(),
        },
        "AlreadyExistsException" => KmsError::AlreadyExists(detail()),
        "MalformedPolicyDocumentException" => KmsError::MalformedPolicy(detail()),
        "InvalidGrantIdException" | "InvalidGrantTokenException" => {
            KmsError::InvalidGrant(detail())
        }
        // Still failing after the SDK's retries with backoff: an outage as far as the
        // engine is concerned, so the table-key cache's grace applies.
        "KMSInternalException"
        | "KMSInternalFailure"
        | "DependencyTimeoutException"
        | "KeyUnavailableException"
        | "ThrottlingException"
        | "Throttling"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "InternalFailure"
        | "RequestTimeout"
        | "RequestTimeoutException" => {
            KmsError::Unavailable(format!("{}: {}", site.action, detail()))
        }
        // ValidationException, InvalidArnException, InvalidAliasNameException,
        // InvalidKeyUsageException, UnsupportedOperationException, LimitExceededException,
        // InvalidMarkerException, ...: the request itself is wrong for this key or account.
        _ => KmsError::InvalidArgument(format!("{}: {}", site.action, detail())),
    }
}

/// The principal AWS names in an access-denied message: `User: <arn> is not authorized ...`.
fn refused_principal(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("User: ")?;
    let end = rest.find(" is not authorized")?;
    rest.get(..end).filter(|p| !p.is_empty())
}

/// The SDK's context map; AWS does not order it, sealdb's type does.
pub(crate) fn context_to_sdk(ctx: &EncryptionContext) -> Option<HashMap<String, String>> {
    if ctx.is_empty() {
        return None;
    }
    Some(
        ctx.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

pub(crate) fn context_from_sdk(map: &HashMap<String, String>) -> EncryptionContext {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(crate) fn grant_operation_to_sdk(op: GrantOperation) -> sdk::GrantOperation {
    match op {
        GrantOperation::Decrypt => sdk::GrantOperation::Decrypt,
        GrantOperation::Encrypt => sdk::GrantOperation::Encrypt,
        GrantOperation::GenerateDataKey => sdk::GrantOperation::GenerateDataKey,
        GrantOperation::GenerateDataKeyWithoutPlaintext => {
            sdk::GrantOperation::GenerateDataKeyWithoutPlaintext
        }
        GrantOperation::ReEncryptFrom => sdk::GrantOperation::ReEncryptFrom,
        GrantOperation::ReEncryptTo => sdk::GrantOperation::ReEncryptTo,
        GrantOperation::CreateGrant => sdk::GrantOperation::CreateGrant,
        GrantOperation::RetireGrant => sdk::GrantOperation::RetireGrant,
        GrantOperation::DescribeKey => sdk::GrantOperation::DescribeKey,
    }
}

/// Every `GrantOperation` sealdb knows.
pub(crate) const GRANT_OPERATIONS: [GrantOperation; 9] = [
    GrantOperation::Decrypt,
    GrantOperation::Encrypt,
    GrantOperation::GenerateDataKey,
    GrantOperation::GenerateDataKeyWithoutPlaintext,
    GrantOperation::ReEncryptFrom,
    GrantOperation::ReEncryptTo,
    GrantOperation::CreateGrant,
    GrantOperation::RetireGrant,
    GrantOperation::DescribeKey,
];

/// The operations sealdb knows; others (Sign, GenerateMac, ...) have no meaning for it.
pub(crate) fn grant_operation_from_sdk(op: &sdk::GrantOperation) -> Option<GrantOperation> {
    GRANT_OPERATIONS
        .iter()
        .copied()
        .find(|o| o.as_str() == op.as_str())
}

pub(crate) fn constraints_to_sdk(c: &GrantConstraints) -> sdk::GrantConstraints {
    sdk::GrantConstraints::builder()
        .set_encryption_context_subset(c.encryption_context_subset.as_ref().map(|s| {
            s.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }))
        .set_encryption_context_equals(c.encryption_context_equals.as_ref().map(|s| {
            s.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }))
        .build()
}

pub(crate) fn constraints_from_sdk(c: &sdk::GrantConstraints) -> Option<GrantConstraints> {
    let out = GrantConstraints {
        encryption_context_subset: c.encryption_context_subset().map(context_from_sdk),
        encryption_context_equals: c.encryption_context_equals().map(context_from_sdk),
    };
    (out != GrantConstraints::default()).then_some(out)
}

pub(crate) fn key_state_from_sdk(state: Option<&sdk::KeyState>) -> KeyState {
    match state {
        Some(sdk::KeyState::Enabled) => KeyState::Enabled,
        Some(sdk::KeyState::PendingDeletion | sdk::KeyState::PendingReplicaDeletion) => {
            KeyState::PendingDeletion
        }
        // Creating, Updating, PendingImport, Unavailable and unknown states: the key cannot
        // be used now, which is what `Disabled` means to the engine.
        _ => KeyState::Disabled,
    }
}

fn key_usage_from_sdk(usage: Option<&sdk::KeyUsageType>) -> &'static str {
    match usage {
        Some(sdk::KeyUsageType::EncryptDecrypt) | None => "ENCRYPT_DECRYPT",
        Some(sdk::KeyUsageType::SignVerify) => "SIGN_VERIFY",
        Some(sdk::KeyUsageType::GenerateVerifyMac) => "GENERATE_VERIFY_MAC",
        Some(sdk::KeyUsageType::KeyAgreement) => "KEY_AGREEMENT",
        Some(_) => "UNKNOWN",
    }
}

pub(crate) fn time_from_sdk(t: Option<&DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(UNIX_EPOCH)
}

pub(crate) fn key_metadata_from_sdk(m: &sdk::KeyMetadata) -> KeyMetadata {
    let state = key_state_from_sdk(m.key_state());
    KeyMetadata {
        key_id: m.key_id().to_string(),
        arn: m.arn().unwrap_or_default().to_string(),
        aws_account_id: m.aws_account_id().unwrap_or_default().to_string(),
        description: m.description().unwrap_or_default().to_string(),
        creation_date: time_from_sdk(m.creation_date()),
        enabled: m.enabled() && state == KeyState::Enabled,
        key_state: state,
        deletion_date: m
            .deletion_date()
            .and_then(|t| SystemTime::try_from(*t).ok()),
        key_manager: match m.key_manager() {
            Some(sdk::KeyManagerType::Aws) => KeyManager::Aws,
            _ => KeyManager::Customer,
        },
        key_usage: key_usage_from_sdk(m.key_usage()),
        current_key_material_id: m.current_key_material_id().map(str::to_owned),
    }
}

/// AWS reports the issuing account as `arn:aws:iam::<account>:root`; sealdb as the id.
fn account_of(issuing: &str) -> String {
    issuing
        .strip_prefix("arn:")
        .and_then(|rest| rest.split(':').nth(3))
        .filter(|a| !a.is_empty())
        .unwrap_or(issuing)
        .to_string()
}

pub(crate) fn grant_entry_from_sdk(g: &sdk::GrantListEntry) -> GrantEntry {
    GrantEntry {
        key_id: g.key_id().unwrap_or_default().to_string(),
        grant_id: g.grant_id().unwrap_or_default().to_string(),
        name: g.name().filter(|n| !n.is_empty()).map(str::to_string),
        creation_date: time_from_sdk(g.creation_date()),
        grantee_principal: g.grantee_principal().unwrap_or_default().to_string(),
        retiring_principal: g.retiring_principal().map(str::to_string),
        issuing_account: account_of(g.issuing_account().unwrap_or_default()),
        operations: g
            .operations()
            .iter()
            .filter_map(grant_operation_from_sdk)
            .collect(),
        constraints: g.constraints().and_then(constraints_from_sdk),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: CallSite<'static> = CallSite {
        action: "kms:Decrypt",
        key: "alias/books",
    };

    #[test]
    fn error_codes_map_onto_variants() {
        let m = |code: &str| from_code(Some(code), Some("detail"), SITE);
        assert!(
            matches!(m("NotFoundException"), KmsError::NotFound(s) if s.contains("alias/books"))
        );
        assert!(matches!(
            m("InvalidCiphertextException"),
            KmsError::InvalidCiphertext
        ));
        assert!(
            matches!(m("IncorrectKeyException"), KmsError::IncorrectKey(k) if k == "alias/books")
        );
        assert!(matches!(m("DisabledException"), KmsError::Disabled(k) if k == "alias/books"));
        assert!(matches!(
            m("KMSInvalidStateException"),
            KmsError::InvalidState { key, state } if key == "alias/books" && state == "detail"
        ));
        assert!(matches!(
            m("AlreadyExistsException"),
            KmsError::AlreadyExists(_)
        ));
        assert!(matches!(
            m("MalformedPolicyDocumentException"),
            KmsError::MalformedPolicy(_)
        ));
        assert!(matches!(
            m("InvalidGrantIdException"),
            KmsError::InvalidGrant(_)
        ));
        assert!(matches!(
            m("InvalidGrantTokenException"),
            KmsError::InvalidGrant(_)
        ));
        for transient in [
            "KMSInternalException",
            "DependencyTimeoutException",
            "KeyUnavailableException",
            "ThrottlingException",
        ] {
            assert!(
                matches!(m(transient), KmsError::Unavailable(_)),
                "{transient}"
            );
        }
        for bad in [
            "ValidationException",
            "InvalidArnException",
            "LimitExceededException",
        ] {
            assert!(
                matches!(m(bad), KmsError::InvalidArgument(s) if s.contains(bad)),
                "{bad}"
            );
        }
        assert!(matches!(
            from_code(None, None, SITE),
            KmsError::InvalidArgument(_)
        ));
    }

    #[test]
    fn access_denied_names_principal_action_and_key() {
        let msg = "User: arn:aws:iam::111122223333:user/bob is not authorized to perform: \
                   kms:Decrypt on resource: arn:aws:kms:us-west-2:111122223333:key/x";
        match from_code(Some("AccessDeniedException"), Some(msg), SITE) {
            KmsError::AccessDenied {
                principal,
                action,
                key,
            } => {
                assert_eq!(principal, "arn:aws:iam::111122223333:user/bob");
                assert_eq!(action, "kms:Decrypt");
                assert_eq!(key, "alias/books");
            }
            other => panic!("{other:?}"),
        }
        match from_code(Some("UnrecognizedClientException"), Some("bad token"), SITE) {
            KmsError::AccessDenied { principal, .. } => assert_eq!(principal, UNKNOWN_PRINCIPAL),
            other => panic!("{other:?}"),
        }
        assert_eq!(refused_principal("User:  is not authorized"), None);
        assert_eq!(refused_principal("nope"), None);
    }

    #[test]
    fn keyless_call_site_keeps_the_detail() {
        let site = CallSite {
            action: "kms:Decrypt",
            key: "",
        };
        match from_code(Some("DisabledException"), Some("key x is disabled"), site) {
            KmsError::Disabled(k) => assert!(k.contains("key x is disabled"), "{k}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn grant_operations_round_trip() {
        for op in GRANT_OPERATIONS {
            assert_eq!(
                grant_operation_from_sdk(&grant_operation_to_sdk(op)),
                Some(op)
            );
        }
        assert_eq!(grant_operation_from_sdk(&sdk::GrantOperation::Sign), None);
    }

    #[test]
    fn contexts_and_constraints_round_trip() {
        let ctx = EncryptionContext::for_table("Books", "111122223333");
        let map = context_to_sdk(&ctx).unwrap_or_default();
        assert_eq!(
            map.get("sealdb:tableName").map(String::as_str),
            Some("Books")
        );
        assert_eq!(context_from_sdk(&map), ctx);
        assert_eq!(context_to_sdk(&EncryptionContext::new()), None);
        let c = GrantConstraints::subset(ctx);
        assert_eq!(constraints_from_sdk(&constraints_to_sdk(&c)), Some(c));
        assert_eq!(
            constraints_from_sdk(&sdk::GrantConstraints::builder().build()),
            None
        );
    }

    #[test]
    fn key_states_collapse_to_usable_or_not() {
        assert_eq!(
            key_state_from_sdk(Some(&sdk::KeyState::Enabled)),
            KeyState::Enabled
        );
        assert_eq!(
            key_state_from_sdk(Some(&sdk::KeyState::PendingDeletion)),
            KeyState::PendingDeletion
        );
        for s in [
            sdk::KeyState::Disabled,
            sdk::KeyState::PendingImport,
            sdk::KeyState::Unavailable,
            sdk::KeyState::Creating,
        ] {
            assert_eq!(key_state_from_sdk(Some(&s)), KeyState::Disabled, "{s:?}");
        }
        assert_eq!(key_state_from_sdk(None), KeyState::Disabled);
    }

    #[test]
    fn metadata_and_grant_entries_convert() -> Result<(), Box<dyn std::error::Error>> {
        let m = sdk::KeyMetadata::builder()
            .key_id("1234abcd-12ab-34cd-56ef-1234567890ab")
            .arn("arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")
            .aws_account_id("111122223333")
            .enabled(true)
            .key_state(sdk::KeyState::Enabled)
            .key_manager(sdk::KeyManagerType::Customer)
            .creation_date(DateTime::from_secs(1_500_000_000))
            .build()?;
        let k = key_metadata_from_sdk(&m);
        assert_eq!(k.key_id, "1234abcd-12ab-34cd-56ef-1234567890ab");
        assert!(k.enabled);
        assert_eq!(k.key_manager, KeyManager::Customer);
        assert_eq!(k.key_usage, "ENCRYPT_DECRYPT");
        assert_eq!(
            k.creation_date.duration_since(UNIX_EPOCH)?.as_secs(),
            1_500_000_000
        );
        assert_eq!(k.deletion_date, None);

        let g = sdk::GrantListEntry::builder()
            .key_id(k.arn.clone())
            .grant_id("g1")
            .grantee_principal("sealdb.us-west-2.amazonaws.com")
            .issuing_account("arn:aws:iam::111122223333:root")
            .operations(sdk::GrantOperation::Decrypt)
            .operations(sdk::GrantOperation::Sign)
            .build();
        let e = grant_entry_from_sdk(&g);
        assert_eq!(e.issuing_account, "111122223333");
        assert_eq!(e.operations, vec![GrantOperation::Decrypt]);
        assert_eq!(e.name, None);
        assert_eq!(account_of("111122223333"), "111122223333");
        Ok(())
    }
}
