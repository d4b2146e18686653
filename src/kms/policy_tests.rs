//! Unit tests of the policy grammar and evaluator, starting from the seed's exact policy.

use super::*;
use crate::kms::Principal;

/// The seed's DynamoDB service default key policy, verbatim.
const SEED_POLICY: &str = r#"{
  "Version" : "2012-10-17",
  "Id" : "auto-dynamodb-1",
  "Statement" : [ {
    "Sid" : "Allow access through Amazon DynamoDB for all principals in the account that are authorized to use Amazon DynamoDB",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "*"
    },
    "Action" : [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey" ],
    "Resource" : "*",
    "Condition" : {
      "StringEquals" : {
        "kms:CallerAccount" : "111122223333",
        "kms:ViaService" : "dynamodb.us-west-2.amazonaws.com"
      }
    }
  }, {
    "Sid" : "Allow direct access to key metadata to the account",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::111122223333:root"
    },
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant" ],
    "Resource" : "*"
  }, {
    "Sid" : "Allow DynamoDB Service with service principal name dynamodb.amazonaws.com to describe the key directly",
    "Effect" : "Allow",
    "Principal" : {
      "Service" : "dynamodb.amazonaws.com"
    },
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*" ],
    "Resource" : "*"
  } ]
}"#;

const KEY: &str = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const VIA: &str = "dynamodb.us-west-2.amazonaws.com";

fn decide(policy: &KeyPolicy, caller: &Caller, action: &str) -> PolicyDecision {
    let ctx = EncryptionContext::new().with("aws:dynamodb:tableName", "Books");
    policy.evaluate(&PolicyRequest::new(caller, action, KEY).with_context(&ctx))
}

fn allowed(d: &PolicyDecision) -> bool {
    matches!(d, PolicyDecision::Allow { .. })
}

#[test]
fn seed_policy_allows_account_principal_through_the_service() -> Result<(), KmsError> {
    let p = KeyPolicy::parse(SEED_POLICY)?;
    assert_eq!(p.id.as_deref(), Some("auto-dynamodb-1"));
    let user = Principal::assumed_role("111122223333", "Admin", "user01");
    let via = Caller::engine_via(user.clone(), VIA);
    for action in [
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
        "kms:CreateGrant",
        "kms:DescribeKey",
    ] {
        assert!(allowed(&decide(&p, &via, action)), "{action}");
    }
    // Not in the statement's action list, even through the service.
    assert_eq!(
        decide(&p, &via, "kms:PutKeyPolicy"),
        PolicyDecision::ImplicitDeny
    );
    // RevokeGrant comes from the second statement (any principal of the account).
    assert!(allowed(&decide(&p, &via, "kms:RevokeGrant")));
    Ok(())
}

#[test]
fn seed_policy_denies_the_same_call_made_directly() -> Result<(), KmsError> {
    let p = KeyPolicy::parse(SEED_POLICY)?;
    let user = Principal::assumed_role("111122223333", "Admin", "user01");
    let direct = Caller::direct(user.clone());
    assert_eq!(
        decide(&p, &direct, "kms:Decrypt"),
        PolicyDecision::ImplicitDeny
    );
    // Through another service is not through this one.
    let other = Caller::engine_via(user, "s3.us-west-2.amazonaws.com");
    assert_eq!(
        decide(&p, &other, "kms:Decrypt"),
        PolicyDecision::ImplicitDeny
    );
    Ok(())
}

#[test]
fn seed_policy_denies_another_account() -> Result<(), KmsError> {
    let p = KeyPolicy::parse(SEED_POLICY)?;
    let stranger = Caller::engine_via(Principal::user("444455556666", "mallory"), VIA);
    assert_eq!(
        decide(&p, &stranger, "kms:Decrypt"),
        PolicyDecision::ImplicitDeny
    );
    let stranger_root = Caller::direct(Principal::root("444455556666"));
    assert_eq!(
        decide(&p, &stranger_root, "kms:RevokeGrant"),
        PolicyDecision::ImplicitDeny
    );
    Ok(())
}

#[test]
fn seed_policy_lets_the_account_root_revoke_grants_and_read_metadata() -> Result<(), KmsError> {
    let p = KeyPolicy::parse(SEED_POLICY)?;
    let root = Caller::direct(Principal::root("111122223333"));
    for action in [
        "kms:RevokeGrant",
        "kms:DescribeKey",
        "kms:GetKeyPolicy",
        "kms:ListGrants",
    ] {
        assert_eq!(
            decide(&p, &root, action),
            PolicyDecision::Allow {
                sid: Some("Allow direct access to key metadata to the account".into())
            },
            "{action}"
        );
    }
    // The root may not use the key directly.
    assert_eq!(
        decide(&p, &root, "kms:Decrypt"),
        PolicyDecision::ImplicitDeny
    );
    // "The account" means every principal of it, as KMS treats the root ARN.
    let user = Caller::direct(Principal::user("111122223333", "alice"));
    assert!(allowed(&decide(&p, &user, "kms:DescribeKey")));
    Ok(())
}

#[test]
fn seed_policy_lets_the_service_principal_describe_the_key() -> Result<(), KmsError> {
    let p = KeyPolicy::parse(SEED_POLICY)?;
    let svc = Caller::direct(Principal::service("dynamodb.amazonaws.com"));
    assert!(allowed(&decide(&p, &svc, "kms:DescribeKey")));
    assert!(allowed(&decide(&p, &svc, "kms:GetKeyPolicy")));
    assert_eq!(
        decide(&p, &svc, "kms:Decrypt"),
        PolicyDecision::ImplicitDeny
    );
    let other_svc = Caller::direct(Principal::service("s3.amazonaws.com"));
    assert_eq!(
        decide(&p, &other_svc, "kms:DescribeKey"),
        PolicyDecision::ImplicitDeny
    );
    Ok(())
}

#[test]
fn explicit_deny_wins_over_allow() -> Result<(), KmsError> {
    let p = KeyPolicy::parse(
        r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"},
          {"Sid":"NoMovies","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*",
           "Condition":{"StringEquals":{"kms:EncryptionContext:sealdb:tableName":"Movies"}}}]}"#,
    )?;
    let u = Caller::direct(Principal::user("111122223333", "alice"));
    let books = EncryptionContext::new().with("sealdb:tableName", "Books");
    let movies = EncryptionContext::new().with("sealdb:tableName", "Movies");
    let req = PolicyRequest::new(&u, "kms:Decrypt", KEY);
    assert!(allowed(&p.evaluate(&req.with_context(&books))));
    assert_eq!(
        p.evaluate(&req.with_context(&movies)),
        PolicyDecision::ExplicitDeny {
            sid: Some("NoMovies".into())
        }
    );
    Ok(())
}

#[test]
fn string_like_grant_operations_and_role_arns() -> Result<(), KmsError> {
    let p = KeyPolicy::parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
          "Principal":{"AWS":["arn:aws:iam::111122223333:role/Admin"]},
          "Action":["kms:CreateGrant"],"Resource":"arn:aws:kms:us-west-2:111122223333:key/*",
          "Condition":{
            "StringLike":{"kms:ViaService":"sealdb.*.amazonaws.com"},
            "ForAllValues:StringEquals":{"kms:GrantOperations":["Decrypt","Encrypt"]}}}}"#,
    )?;
    let role = Principal::assumed_role("111122223333", "Admin", "s1");
    let caller = Caller::engine_via(role, "sealdb.us-west-2.amazonaws.com");
    let mut req = PolicyRequest::new(&caller, "kms:CreateGrant", KEY);
    req.grant_operations = &["Decrypt"];
    assert!(allowed(&p.evaluate(&req)));
    req.grant_operations = &["Decrypt", "RetireGrant"];
    assert_eq!(p.evaluate(&req), PolicyDecision::ImplicitDeny);
    let other_role = Caller::engine_via(
        Principal::assumed_role("111122223333", "Reader", "s1"),
        "sealdb.us-west-2.amazonaws.com",
    );
    let mut req2 = PolicyRequest::new(&other_role, "kms:CreateGrant", KEY);
    req2.grant_operations = &["Decrypt"];
    assert_eq!(p.evaluate(&req2), PolicyDecision::ImplicitDeny);
    Ok(())
}

#[test]
fn malformed_policies_name_the_problem() {
    let cases = [
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        (r#"{"Statement":[]}"#, "Version"),
        (r#"{"Version":"2012-10-17"}"#, "missing Statement"),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Permit","Principal":"*","Action":"kms:*","Resource":"*"}]}"#,
            "Effect",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Decrpyt","Resource":"*"}]}"#,
            "kms:Decrpyt",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#,
            "not a KMS action",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"x"},"Action":"kms:*","Resource":"*"}]}"#,
            "Federated",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"NumericLessThan":{"kms:CallerAccount":"1"}}}]}"#,
            "NumericLessThan",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"aws:SourceIp":"1"}}}]}"#,
            "aws:SourceIp",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*"}]}"#,
            "Statement[0]: missing Resource",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"kms:*","Resource":"*"}]}"#,
            "bob",
        ),
    ];
    for (doc, needle) in cases {
        match KeyPolicy::parse(doc) {
            Err(KmsError::MalformedPolicy(msg)) => {
                assert!(msg.contains(needle), "{doc}: {msg} lacks {needle}")
            }
            other => panic!("{doc}: expected MalformedPolicy, got {other:?}"),
        }
    }
    let huge = format!(
        "{{\"Version\":\"2012-10-17\",\"Id\":\"{}\"}}",
        "x".repeat(MAX_POLICY_BYTES)
    );
    assert!(matches!(
        KeyPolicy::parse(&huge),
        Err(KmsError::MalformedPolicy(_))
    ));
}

#[test]
fn glob() {
    assert!(glob_match("kms:reencrypt*", "kms:reencryptfrom"));
    assert!(glob_match("*", ""));
    assert!(glob_match("a*b*c", "aXXbYYc"));
    assert!(!glob_match("a*b*c", "aXXbYY"));
    assert!(glob_match(
        "sealdb.?s-west-2.*",
        "sealdb.us-west-2.amazonaws.com"
    ));
    assert!(!glob_match("kms:describe*", "kms:decrypt"));
    assert!(glob_match("abc", "abc"));
    assert!(!glob_match("abc", "abcd"));
}

proptest::proptest! {
    /// Arbitrary JSON-ish text and mutated seed policies are parsed or rejected, never panic.
    #[test]
    fn parse_never_panics(s in "\\PC{0,200}", cut in 0usize..1600, flip in 0usize..1600) {
        let _ = KeyPolicy::parse(&s);
        let mut bytes = SEED_POLICY.as_bytes().to_vec();
        if let Some(b) = bytes.get_mut(flip) {
            *b = b.wrapping_add(1);
        }
        bytes.truncate(cut);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = KeyPolicy::parse(text);
        }
    }
}
