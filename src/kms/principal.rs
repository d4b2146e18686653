//! Who is calling: an IAM principal (or a service principal) and the service it calls through.

use std::fmt;

use sha2::{Digest, Sha256};

use super::KmsError;

/// An identity that makes KMS calls: an ARN in an account, or a service principal.
///
/// Service principals (`sealdb.us-west-2.amazonaws.com`, `sealdb.amazonaws.com`) have no
/// account and their `arn` is the bare service name, as AWS writes them in grants and policies.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Principal {
    /// `arn:aws:iam::<acct>:user/<name>`, `arn:aws:sts::<acct>:assumed-role/<role>/<session>`,
    /// `arn:aws:iam::<acct>:root`, or a service name.
    pub arn: String,
    /// The 12-digit account id; empty for a service principal.
    pub account: String,
}

/// What kind of identity a principal is, as CloudTrail's `userIdentity.type` names it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PrincipalKind {
    /// An account's root user.
    Root,
    /// An IAM user.
    IamUser,
    /// A session of an assumed role.
    AssumedRole,
    /// An IAM role.
    Role,
    /// An AWS service principal.
    AwsService,
}

impl PrincipalKind {
    /// The CloudTrail `userIdentity.type` value.
    pub fn cloudtrail_type(self) -> &'static str {
        match self {
            PrincipalKind::Root => "Root",
            PrincipalKind::IamUser => "IAMUser",
            PrincipalKind::AssumedRole => "AssumedRole",
            PrincipalKind::Role => "Role",
            PrincipalKind::AwsService => "AWSService",
        }
    }
}

impl Principal {
    /// An IAM user: `arn:aws:iam::<account>:user/<name>`.
    pub fn user(account: &str, name: &str) -> Principal {
        Principal {
            arn: format!("arn:aws:iam::{account}:user/{name}"),
            account: account.to_string(),
        }
    }

    /// A role session: `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub fn assumed_role(account: &str, role: &str, session: &str) -> Principal {
        Principal {
            arn: format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"),
            account: account.to_string(),
        }
    }

    /// The account itself: `arn:aws:iam::<account>:root`.
    pub fn root(account: &str) -> Principal {
        Principal {
            arn: root_arn(account),
            account: account.to_string(),
        }
    }

    /// A service principal such as `sealdb.us-west-2.amazonaws.com`; it has no account.
    pub fn service(name: &str) -> Principal {
        Principal {
            arn: name.to_string(),
            account: String::new(),
        }
    }

    /// Parses an ARN (`arn:aws:iam::...`, `arn:aws:sts::...`) or a service name
    /// (`*.amazonaws.com`), as the CLI's `--principal` takes it.
    pub fn parse(arn: &str) -> Result<Principal, KmsError> {
        if !arn.starts_with("arn:") {
            if arn.ends_with(".amazonaws.com") && !arn.contains(char::is_whitespace) {
                return Ok(Principal::service(arn));
            }
            return Err(KmsError::InvalidArgument(format!(
                "principal {arn:?} is neither an ARN nor a service principal name"
            )));
        }
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let well_formed = parts.len() == 6
            && (parts[2] == "iam" || parts[2] == "sts")
            && is_account_id(parts[4])
            && !parts[5].is_empty();
        if !well_formed {
            return Err(KmsError::InvalidArgument(format!(
                "principal ARN {arn:?} is not arn:aws:iam::<account>:<resource> or arn:aws:sts::..."
            )));
        }
        Ok(Principal {
            arn: arn.to_string(),
            account: parts[4].to_string(),
        })
    }

    /// True for a service principal (no account).
    pub fn is_service(&self) -> bool {
        self.account.is_empty()
    }

    /// What kind of identity this is.
    pub fn kind(&self) -> PrincipalKind {
        if self.is_service() {
            return PrincipalKind::AwsService;
        }
        let resource = self.resource();
        if resource == "root" {
            PrincipalKind::Root
        } else if resource.starts_with("assumed-role/") {
            PrincipalKind::AssumedRole
        } else if resource.starts_with("role/") {
            PrincipalKind::Role
        } else {
            PrincipalKind::IamUser
        }
    }

    /// For a role session, the ARN of the role (`arn:aws:iam::<acct>:role/<role>`).
    pub fn role_arn(&self) -> Option<String> {
        let rest = self.resource().strip_prefix("assumed-role/")?;
        let role = rest.split('/').next()?;
        Some(format!("arn:aws:iam::{}:role/{role}", self.account))
    }

    /// A stable, CloudTrail-shaped principal id. AWS assigns opaque unique ids
    /// (`AIDA...` for users, `AROA...:<session>` for role sessions); the local KMS derives
    /// them from the ARN so that the same principal always has the same id.
    pub fn principal_id(&self) -> String {
        match self.kind() {
            PrincipalKind::Root => self.account.clone(),
            PrincipalKind::AwsService => self.arn.clone(),
            PrincipalKind::AssumedRole => {
                let session = self.resource().rsplit('/').next().unwrap_or_default();
                let role = self.role_arn().unwrap_or_default();
                format!("{}:{session}", unique_id("AROA", &role))
            }
            PrincipalKind::Role => unique_id("AROA", &self.arn),
            PrincipalKind::IamUser => unique_id("AIDA", &self.arn),
        }
    }

    /// The part of the ARN after `arn:aws:<svc>::<acct>:`.
    fn resource(&self) -> &str {
        self.arn.splitn(6, ':').nth(5).unwrap_or_default()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

/// `AROA`/`AIDA` followed by 17 upper-case base32-ish characters of SHA-256(arn).
pub(crate) fn unique_id(prefix: &str, arn: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(arn.as_bytes());
    let mut id = String::from(prefix);
    for b in digest.iter().take(17) {
        id.push(char::from(ALPHABET[usize::from(b & 31)]));
    }
    id
}

/// `arn:aws:iam::<account>:root`.
pub(crate) fn root_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:root")
}

/// True for exactly twelve ASCII digits.
pub(crate) fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Who makes a call, and through which service (the `kms:ViaService` condition key).
///
/// Only the engine (this crate) builds a caller that carries `kms:ViaService` or acts as the
/// engine's service principal: AWS KMS sets `kms:ViaService` itself, from the service the
/// request came through, never from the request, and no one but the service signs as its
/// service principal. A caller of the public API builds `Caller::direct` for an IAM
/// principal; `LocalKms` (and `AwsKms`'s local trail) refuse and audit a direct caller that
/// names a service principal (`KmsError::ServicePrincipalRefused`).
///
/// ```compile_fail
/// use sealdb::kms::{Caller, Principal};
/// // Neither form of the engine's identity can be built outside the crate.
/// let c = Caller::engine_via(Principal::user("111122223333", "bob"), "sealdb.us-west-2.amazonaws.com");
/// ```
///
/// ```compile_fail
/// use sealdb::kms::{Caller, Principal};
/// let c = Caller { principal: Principal::user("111122223333", "bob"), via_service: None, origin: todo!() };
/// ```
#[derive(PartialEq, Eq, Debug)]
pub struct Caller {
    principal: Principal,
    via_service: Option<String>,
    origin: Origin,
}

/// Who built a `Caller`: the crate's engine, or a caller of the public API.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Origin {
    /// `Caller::direct`: a principal the application asserts.
    Asserted,
    /// Built by the engine: may carry `kms:ViaService` or the engine's service principal.
    Engine,
}

impl Caller {
    /// The principal calling the KMS directly (no `kms:ViaService`). A service principal
    /// here is refused by the KMS: only the engine acts as one.
    pub fn direct(principal: Principal) -> Caller {
        Caller {
            principal,
            via_service: None,
            origin: Origin::Asserted,
        }
    }

    /// The engine calling on `principal`'s behalf through `service` (`kms:ViaService`).
    pub(crate) fn engine_via(principal: Principal, service: &str) -> Caller {
        Caller {
            principal,
            via_service: Some(service.to_string()),
            origin: Origin::Engine,
        }
    }

    /// The engine acting as its own service principal `service` (the grantee of its
    /// grants), through itself.
    pub(crate) fn engine_service(service: &str) -> Caller {
        Caller {
            principal: Principal::service(service),
            via_service: Some(service.to_string()),
            origin: Origin::Engine,
        }
    }

    /// The engine acting as a service principal directly (no `kms:ViaService`), as AWS
    /// services call `DescribeKey`/`ListGrants` under the seed's third policy statement.
    pub(crate) fn engine_direct_service(service: &str) -> Caller {
        Caller {
            principal: Principal::service(service),
            via_service: None,
            origin: Origin::Engine,
        }
    }

    /// The principal calling.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// `Some("sealdb.<region>.amazonaws.com")` when the engine calls on the principal's behalf.
    pub fn via_service(&self) -> Option<&str> {
        self.via_service.as_deref()
    }

    /// True when the engine built this caller (not a caller of the public API).
    pub fn is_from_engine(&self) -> bool {
        self.origin == Origin::Engine
    }

    /// Refuses what only the engine may be: a service principal asserted by a caller.
    pub(crate) fn check_not_borrowed(&self) -> Result<(), KmsError> {
        if self.origin == Origin::Asserted && self.principal.is_service() {
            return Err(KmsError::ServicePrincipalRefused {
                principal: self.principal.arn.clone(),
            });
        }
        Ok(())
    }

    /// The account the call is billed to: the principal's, or for a service principal none.
    pub fn account(&self) -> &str {
        &self.principal.account
    }
}

/// Callers only the engine may build, for the crate's own integration tests of the KMS
/// (cargo feature `test-callers`, enabled by the crate's dev-dependency on itself). A build
/// that serves principals must not enable it: it lets code outside the engine act as the
/// engine.
#[cfg(feature = "test-callers")]
pub mod testing {
    use super::{Caller, Principal};

    /// What the engine builds when it calls on `principal`'s behalf through `service`.
    pub fn engine_via(principal: Principal, service: &str) -> Caller {
        Caller::engine_via(principal, service)
    }

    /// What the engine builds when it acts as its service principal `service`.
    pub fn engine_service(service: &str) -> Caller {
        Caller::engine_service(service)
    }

    /// What the engine builds when it calls as service principal `service` directly.
    pub fn engine_direct_service(service: &str) -> Caller {
        Caller::engine_direct_service(service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_build_aws_arns() {
        let u = Principal::user("111122223333", "alice");
        assert_eq!(u.arn, "arn:aws:iam::111122223333:user/alice");
        assert_eq!(u.kind(), PrincipalKind::IamUser);
        let r = Principal::assumed_role("111122223333", "Admin", "user01");
        assert_eq!(r.arn, "arn:aws:sts::111122223333:assumed-role/Admin/user01");
        assert_eq!(r.kind(), PrincipalKind::AssumedRole);
        assert_eq!(
            r.role_arn().as_deref(),
            Some("arn:aws:iam::111122223333:role/Admin")
        );
        assert_eq!(Principal::root("111122223333").kind(), PrincipalKind::Root);
        let s = Principal::service("sealdb.amazonaws.com");
        assert!(s.is_service());
        assert_eq!(s.kind().cloudtrail_type(), "AWSService");
    }

    #[test]
    fn principal_ids_are_stable_and_shaped_like_aws() {
        let r = Principal::assumed_role("111122223333", "Admin", "user01");
        let id = r.principal_id();
        assert!(id.starts_with("AROA") && id.ends_with(":user01"), "{id}");
        assert_eq!(id.len(), 4 + 17 + 7);
        assert_eq!(id, r.principal_id());
        let other = Principal::assumed_role("111122223333", "Admin", "user02");
        assert_eq!(id.split(':').next(), other.principal_id().split(':').next());
        assert_eq!(
            Principal::root("111122223333").principal_id(),
            "111122223333"
        );
    }

    #[test]
    fn parse_accepts_arns_and_service_names() -> Result<(), KmsError> {
        let p = Principal::parse("arn:aws:iam::111122223333:user/bob")?;
        assert_eq!(p, Principal::user("111122223333", "bob"));
        let s = Principal::parse("sealdb.us-west-2.amazonaws.com")?;
        assert!(s.is_service());
        for bad in [
            "",
            "bob",
            "arn:aws:iam::12:user/x",
            "arn:aws:s3:::b",
            "arn:aws:iam::111122223333:",
        ] {
            assert!(Principal::parse(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
