//! Key policies: the seed's JSON grammar, parsed with serde_json and validated by hand so
//! that every rejection names the problem, and an evaluator that decides as KMS does.
//!
//! Evaluation order (see DESIGN.md section 12): a matching `Deny` statement wins over everything;
//! otherwise a matching `Allow` statement allows; otherwise the caller falls through to
//! grants (checked by `LocalKms`), and without a grant the request is implicitly denied.

use serde_json::{Map, Value};

use super::principal::is_account_id;
use super::{Caller, EncryptionContext, KmsError};

/// AWS's limit on a key policy document.
pub const MAX_POLICY_BYTES: usize = 32 * 1024;

/// Every KMS action name, for validating `Action` patterns.
const KMS_ACTIONS: &[&str] = &[
    "CancelKeyDeletion",
    "ConnectCustomKeyStore",
    "CreateAlias",
    "CreateGrant",
    "CreateKey",
    "Decrypt",
    "DeleteAlias",
    "DescribeKey",
    "DisableKey",
    "DisableKeyRotation",
    "EnableKey",
    "EnableKeyRotation",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GenerateRandom",
    "GetKeyPolicy",
    "GetKeyRotationStatus",
    "GetPublicKey",
    "ListAliases",
    "ListGrants",
    "ListKeyPolicies",
    "ListKeyRotations",
    "ListKeys",
    "ListResourceTags",
    "ListRetirableGrants",
    "PutKeyPolicy",
    "ReEncryptFrom",
    "ReEncryptTo",
    "RetireGrant",
    "RevokeGrant",
    "RotateKeyOnDemand",
    "ScheduleKeyDeletion",
    "Sign",
    "TagResource",
    "UntagResource",
    "UpdateAlias",
    "UpdateKeyDescription",
    "Verify",
    "VerifyMac",
];

/// A parsed, validated key policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPolicy {
    /// The document's `Id`, if any.
    pub id: Option<String>,
    statements: Vec<Statement>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PrincipalSpec {
    /// `"*"` or `{"AWS": "*"}`.
    Anyone,
    /// `{"AWS": "111122223333"}` or `{"AWS": "arn:aws:iam::111122223333:root"}`: any
    /// principal of the account, as KMS treats the account in a key policy.
    Account(String),
    /// `{"AWS": "<arn>"}`; a role ARN also matches that role's sessions.
    Arn(String),
    /// `{"Service": "<name>"}`.
    Service(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(
    clippy::enum_variant_names,
    reason = "the names are IAM's operator names"
)]
enum Operator {
    StringEquals,
    StringNotEquals,
    StringLike,
    StringNotLike,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetQualifier {
    /// The plain operator: true when some request value matches some policy value.
    Single,
    /// `ForAllValues:`: every request value matches (true for none).
    ForAll,
    /// `ForAnyValue:`: some request value matches.
    ForAny,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ConditionKey {
    CallerAccount,
    ViaService,
    EncryptionContext(String),
    EncryptionContextKeys,
    GrantOperations,
    GranteePrincipal,
    RetiringPrincipal,
    PrincipalArn,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Condition {
    qualifier: SetQualifier,
    operator: Operator,
    key: ConditionKey,
    values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Statement {
    sid: Option<String>,
    effect: Effect,
    principals: Vec<PrincipalSpec>,
    /// Lower-cased action patterns (`kms:reencrypt*`); actions are case-insensitive.
    actions: Vec<String>,
    resources: Vec<String>,
    conditions: Vec<Condition>,
}

/// What the evaluator needs to know about a request.
#[derive(Clone, Copy, Debug)]
pub struct PolicyRequest<'a> {
    /// Who calls, and through which service.
    pub caller: &'a Caller,
    /// The action, e.g. `kms:Decrypt`.
    pub action: &'a str,
    /// The key's ARN (the `Resource`).
    pub key_arn: &'a str,
    /// The request's encryption context, if it has one.
    pub encryption_context: Option<&'a EncryptionContext>,
    /// For CreateGrant: the operations, grantee and retiring principal of the new grant.
    pub grant_operations: &'a [&'a str],
    /// `CreateGrant`'s grantee, for grant conditions.
    pub grantee_principal: Option<&'a str>,
    /// `CreateGrant`'s retiring principal.
    pub retiring_principal: Option<&'a str>,
}

impl<'a> PolicyRequest<'a> {
    /// A request with no encryption context and no grant facts.
    pub fn new(caller: &'a Caller, action: &'a str, key_arn: &'a str) -> PolicyRequest<'a> {
        PolicyRequest {
            caller,
            action,
            key_arn,
            encryption_context: None,
            grant_operations: &[],
            grantee_principal: None,
            retiring_principal: None,
        }
    }

    /// The same request with an encryption context.
    pub fn with_context(mut self, ctx: &'a EncryptionContext) -> PolicyRequest<'a> {
        self.encryption_context = Some(ctx);
        self
    }
}

/// The policy's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyDecision {
    /// A `Deny` statement matched; nothing (not even a grant) can allow the request.
    ExplicitDeny {
        /// The matching statement's `Sid`, if it has one.
        sid: Option<String>,
    },
    /// An `Allow` statement matched.
    Allow {
        /// The matching statement's `Sid`, if it has one.
        sid: Option<String>,
    },
    /// No statement matched; a grant may still allow the request.
    ImplicitDeny,
}

fn malformed(msg: impl Into<String>) -> KmsError {
    KmsError::MalformedPolicy(msg.into())
}

impl KeyPolicy {
    /// Parses and validates a policy document.
    pub fn parse(json: &str) -> Result<KeyPolicy, KmsError> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(malformed(format!(
                "policy is {} bytes; the limit is {MAX_POLICY_BYTES}",
                json.len()
            )));
        }
        let doc: Value =
            serde_json::from_str(json).map_err(|e| malformed(format!("not valid JSON: {e}")))?;
        let obj = doc
            .as_object()
            .ok_or_else(|| malformed("policy must be a JSON object"))?;
        for field in obj.keys() {
            if !matches!(field.as_str(), "Version" | "Id" | "Statement") {
                return Err(malformed(format!("unknown top-level field {field:?}")));
            }
        }
        match obj.get("Version") {
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(other) => {
                return Err(malformed(format!(
                    "Version must be \"2012-10-17\", got {other}"
                )))
            }
            None => return Err(malformed("missing Version")),
        }
        let id = match obj.get("Id") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(malformed("Id must be a string")),
        };
        let raw = match obj.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect::<Vec<_>>(),
            Some(v @ Value::Object(_)) => vec![v],
            Some(_) => {
                return Err(malformed(
                    "Statement must be an object or a non-empty array",
                ))
            }
            None => return Err(malformed("missing Statement")),
        };
        let statements = raw
            .iter()
            .enumerate()
            .map(|(i, s)| parse_statement(s).map_err(|e| malformed(format!("Statement[{i}]: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyPolicy { id, statements })
    }

    /// Decides a request: explicit Deny wins, then Allow, else implicit deny.
    pub fn evaluate(&self, req: &PolicyRequest<'_>) -> PolicyDecision {
        let mut allowed = None;
        for st in &self.statements {
            if !st.matches(req) {
                continue;
            }
            match st.effect {
                Effect::Deny => {
                    return PolicyDecision::ExplicitDeny {
                        sid: st.sid.clone(),
                    }
                }
                Effect::Allow => {
                    if allowed.is_none() {
                        allowed = Some(st.sid.clone());
                    }
                }
            }
        }
        match allowed {
            Some(sid) => PolicyDecision::Allow { sid },
            None => PolicyDecision::ImplicitDeny,
        }
    }
}

fn parse_statement(v: &Value) -> Result<Statement, String> {
    let obj = v.as_object().ok_or("a statement must be an object")?;
    for field in obj.keys() {
        match field.as_str() {
            "Sid" | "Effect" | "Principal" | "Action" | "Resource" | "Condition" => {}
            "NotPrincipal" | "NotAction" | "NotResource" => {
                return Err(format!("{field} is not supported by sealdb's KMS"))
            }
            other => return Err(format!("unknown field {other:?}")),
        }
    }
    let sid = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("Sid must be a string".into()),
    };
    let effect = match obj.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        Some(other) => {
            return Err(format!(
                "Effect must be \"Allow\" or \"Deny\", got {other:?}"
            ))
        }
        None => return Err("missing Effect".into()),
    };
    let principals = parse_principal(obj.get("Principal").ok_or("missing Principal")?)?;
    let actions = string_list(obj.get("Action").ok_or("missing Action")?, "Action")?
        .into_iter()
        .map(|a| validate_action(&a))
        .collect::<Result<Vec<_>, _>>()?;
    let resources = string_list(obj.get("Resource").ok_or("missing Resource")?, "Resource")?;
    for r in &resources {
        if r != "*" && !r.starts_with("arn:aws:kms:") {
            return Err(format!("Resource {r:?} is neither \"*\" nor a KMS key ARN"));
        }
    }
    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(ops)) => parse_conditions(ops)?,
        Some(_) => return Err("Condition must be an object".into()),
    };
    Ok(Statement {
        sid,
        effect,
        principals,
        actions,
        resources,
        conditions,
    })
}

fn string_list(v: &Value, what: &str) -> Result<Vec<String>, String> {
    let list = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what} entries must be strings"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(format!(
                "{what} must be a string or a non-empty array of strings"
            ))
        }
    };
    if list.iter().any(String::is_empty) {
        return Err(format!("{what} contains an empty string"));
    }
    Ok(list)
}

fn parse_principal(v: &Value) -> Result<Vec<PrincipalSpec>, String> {
    match v {
        Value::String(s) if s == "*" => Ok(vec![PrincipalSpec::Anyone]),
        Value::Object(map) if !map.is_empty() => {
            let mut out = Vec::new();
            for (kind, vals) in map {
                for p in string_list(vals, &format!("Principal.{kind}"))? {
                    out.push(match kind.as_str() {
                        "AWS" => parse_aws_principal(&p)?,
                        "Service" => PrincipalSpec::Service(p),
                        other => {
                            return Err(format!(
                                "Principal type {other:?} is not supported (use AWS or Service)"
                            ))
                        }
                    });
                }
            }
            Ok(out)
        }
        _ => Err("Principal must be \"*\" or an object with AWS and/or Service".into()),
    }
}

fn parse_aws_principal(p: &str) -> Result<PrincipalSpec, String> {
    if p == "*" {
        return Ok(PrincipalSpec::Anyone);
    }
    if is_account_id(p) {
        return Ok(PrincipalSpec::Account(p.to_string()));
    }
    let parts: Vec<&str> = p.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && (parts[2] == "iam" || parts[2] == "sts")
        && is_account_id(parts[4])
        && !parts[5].is_empty();
    if !ok {
        return Err(format!(
            "Principal.AWS {p:?} is not \"*\", an account id or an IAM/STS ARN"
        ));
    }
    if parts[2] == "iam" && parts[5] == "root" {
        return Ok(PrincipalSpec::Account(parts[4].to_string()));
    }
    Ok(PrincipalSpec::Arn(p.to_string()))
}

fn validate_action(a: &str) -> Result<String, String> {
    let lower = a.to_ascii_lowercase();
    if lower == "*" {
        return Ok(lower);
    }
    let Some(name) = lower.strip_prefix("kms:") else {
        return Err(format!("Action {a:?} is not a KMS action (kms:...)"));
    };
    if !KMS_ACTIONS
        .iter()
        .any(|k| glob_match(name, &k.to_ascii_lowercase()))
    {
        return Err(format!("Action {a:?} matches no KMS action"));
    }
    Ok(lower)
}

fn parse_conditions(ops: &Map<String, Value>) -> Result<Vec<Condition>, String> {
    let mut out = Vec::new();
    for (op_name, body) in ops {
        let (qualifier, base) = if let Some(rest) = op_name.strip_prefix("ForAllValues:") {
            (SetQualifier::ForAll, rest)
        } else if let Some(rest) = op_name.strip_prefix("ForAnyValue:") {
            (SetQualifier::ForAny, rest)
        } else {
            (SetQualifier::Single, op_name.as_str())
        };
        let operator = match base {
            "StringEquals" => Operator::StringEquals,
            "StringNotEquals" => Operator::StringNotEquals,
            "StringLike" => Operator::StringLike,
            "StringNotLike" => Operator::StringNotLike,
            other => return Err(format!("condition operator {other:?} is not supported")),
        };
        let keys = body
            .as_object()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| format!("Condition.{op_name} must be a non-empty object"))?;
        for (key_name, vals) in keys {
            out.push(Condition {
                qualifier,
                operator,
                key: parse_condition_key(key_name)?,
                values: string_list(vals, &format!("Condition.{op_name}.{key_name}"))?,
            });
        }
    }
    Ok(out)
}

fn parse_condition_key(k: &str) -> Result<ConditionKey, String> {
    let lower = k.to_ascii_lowercase();
    if let Some(ctx_key) = lower.strip_prefix("kms:encryptioncontext:") {
        if ctx_key.is_empty() {
            return Err("kms:EncryptionContext: needs a context key".into());
        }
        return Ok(ConditionKey::EncryptionContext(ctx_key.to_string()));
    }
    Ok(match lower.as_str() {
        "kms:calleraccount" => ConditionKey::CallerAccount,
        "kms:viaservice" => ConditionKey::ViaService,
        "kms:encryptioncontextkeys" => ConditionKey::EncryptionContextKeys,
        "kms:grantoperations" => ConditionKey::GrantOperations,
        "kms:granteeprincipal" => ConditionKey::GranteePrincipal,
        "kms:retiringprincipal" => ConditionKey::RetiringPrincipal,
        "aws:principalarn" => ConditionKey::PrincipalArn,
        _ => return Err(format!("condition key {k:?} is not supported")),
    })
}

impl Statement {
    fn matches(&self, req: &PolicyRequest<'_>) -> bool {
        let action = req.action.to_ascii_lowercase();
        self.principals.iter().any(|p| p.matches(req.caller))
            && self.actions.iter().any(|a| glob_match(a, &action))
            && self.resources.iter().any(|r| glob_match(r, req.key_arn))
            && self.conditions.iter().all(|c| c.holds(req))
    }
}

impl PrincipalSpec {
    fn matches(&self, caller: &Caller) -> bool {
        let p = caller.principal();
        match self {
            PrincipalSpec::Anyone => true,
            PrincipalSpec::Account(acct) => !p.is_service() && p.account == *acct,
            PrincipalSpec::Arn(arn) => {
                p.arn == *arn || p.role_arn().as_deref() == Some(arn.as_str())
            }
            PrincipalSpec::Service(name) => p.is_service() && p.arn == *name,
        }
    }
}

impl Condition {
    fn request_values(&self, req: &PolicyRequest<'_>) -> Vec<String> {
        let one = |s: Option<&str>| s.map(str::to_string).into_iter().collect();
        match &self.key {
            ConditionKey::CallerAccount => {
                let acct = req.caller.account();
                one((!acct.is_empty()).then_some(acct))
            }
            ConditionKey::ViaService => one(req.caller.via_service()),
            ConditionKey::EncryptionContext(k) => one(req.encryption_context.and_then(|c| {
                c.iter()
                    .find(|(ck, _)| ck.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v)
            })),
            ConditionKey::EncryptionContextKeys => req
                .encryption_context
                .map(|c| c.iter().map(|(k, _)| k.to_string()).collect())
                .unwrap_or_default(),
            ConditionKey::GrantOperations => {
                req.grant_operations.iter().map(|s| s.to_string()).collect()
            }
            ConditionKey::GranteePrincipal => one(req.grantee_principal),
            ConditionKey::RetiringPrincipal => one(req.retiring_principal),
            ConditionKey::PrincipalArn => {
                let p = req.caller.principal();
                one(Some(p.role_arn().unwrap_or_else(|| p.arn.clone()).as_str()))
            }
        }
    }

    fn holds(&self, req: &PolicyRequest<'_>) -> bool {
        let actual = self.request_values(req);
        let positive = |v: &str| match self.operator {
            Operator::StringEquals | Operator::StringNotEquals => {
                self.values.iter().any(|p| p == v)
            }
            Operator::StringLike | Operator::StringNotLike => {
                self.values.iter().any(|p| glob_match(p, v))
            }
        };
        let negated = matches!(
            self.operator,
            Operator::StringNotEquals | Operator::StringNotLike
        );
        let matches = |v: &String| positive(v) != negated;
        match self.qualifier {
            SetQualifier::ForAll => actual.iter().all(matches),
            SetQualifier::ForAny => actual.iter().any(matches),
            // An absent key fails a positive operator and satisfies a negated one.
            SetQualifier::Single if actual.is_empty() => negated,
            SetQualifier::Single if negated => actual.iter().all(matches),
            SetQualifier::Single => actual.iter().any(matches),
        }
    }
}

/// `*` matches any run of characters, `?` one character; everything else literally.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
