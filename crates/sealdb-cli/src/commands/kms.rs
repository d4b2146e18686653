//! `kms ...`: direct calls to the local KMS, as the acting principal, with the AWS CLI's
//! command names, flags and output shapes. Never through the engine: `kms:ViaService` is
//! the engine's to set (it makes the grants it needs itself), so a caller cannot claim it.

use serde_json::{json, Value};

use sealdb::kms::{
    Caller, CreateGrantRequest, CreateKeyRequest, EncryptionContext, GrantConstraints, GrantEntry,
    GrantOperation, KeyMetadata, Kms, LocalKms,
};

use super::Context;
use crate::args::{CreateGrantArgs, KmsCommand};
use crate::output::{print_json, rfc3339, CliError};

fn caller(ctx: &Context) -> Caller {
    Caller::direct(ctx.principal.clone())
}

/// A policy given as JSON text or `file://<path>`, as the AWS CLI takes it.
fn policy_text(arg: &str) -> Result<String, CliError> {
    match arg.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("--policy {arg}: {e}"))),
        None => Ok(arg.to_owned()),
    }
}

fn metadata_json(m: &KeyMetadata) -> Value {
    let mut md = json!({
        "AWSAccountId": m.aws_account_id,
        "KeyId": m.key_id,
        "Arn": m.arn,
        "CreationDate": rfc3339(m.creation_date),
        "Enabled": m.enabled,
        "Description": m.description,
        "KeyUsage": m.key_usage,
        "KeyState": m.key_state.as_str(),
        "Origin": "AWS_KMS",
        "KeyManager": format!("{:?}", m.key_manager).to_uppercase(),
        "KeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
    });
    if let Some(d) = m.deletion_date {
        md["DeletionDate"] = json!(rfc3339(d));
    }
    json!({ "KeyMetadata": md })
}

fn grant_json(g: &GrantEntry) -> Result<Value, CliError> {
    Ok(json!({
        "KeyId": g.key_id,
        "GrantId": g.grant_id,
        "Name": g.name,
        "CreationDate": rfc3339(g.creation_date),
        "GranteePrincipal": g.grantee_principal,
        "RetiringPrincipal": g.retiring_principal,
        "IssuingAccount": g.issuing_account,
        "Operations": g.operations.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        "Constraints": serde_json::to_value(&g.constraints)?,
    }))
}

fn parse_operation(s: &str) -> Result<GrantOperation, CliError> {
    const ALL: [GrantOperation; 9] = [
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
    ALL.into_iter()
        .find(|o| o.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|o| o.as_str()).collect();
            CliError::usage(format!(
                "unknown grant operation {s:?}; expected one of {}",
                names.join(", ")
            ))
        })
}

fn create_grant(ctx: &Context, kms: &dyn Kms, a: &CreateGrantArgs) -> Result<Value, CliError> {
    let operations = a
        .operations
        .iter()
        .map(|s| parse_operation(s))
        .collect::<Result<Vec<_>, _>>()?;
    let constraints = a
        .table
        .as_ref()
        .map(|t| GrantConstraints::subset(EncryptionContext::for_table(t, &ctx.account)));
    let mut req = CreateGrantRequest::new(a.key.key_id.clone(), a.grantee.clone(), operations);
    req.retiring_principal = a.retiring.clone();
    req.constraints = constraints;
    req.name = a.name.clone();
    let resp = kms.create_grant(&caller(ctx), req)?;
    Ok(json!({"GrantId": resp.grant_id}))
}

/// Runs one `kms` command; like the AWS CLI, commands that change a key without returning
/// anything print nothing.
pub fn run(ctx: &Context, cmd: KmsCommand) -> Result<(), CliError> {
    let local = ctx.open_kms()?;
    let kms: &dyn Kms = local.as_ref();
    match run_one(ctx, &local, kms, &cmd)? {
        Some(out) => print_json(&out),
        None => Ok(()),
    }
}

fn run_one(
    ctx: &Context,
    local: &LocalKms,
    kms: &dyn Kms,
    cmd: &KmsCommand,
) -> Result<Option<Value>, CliError> {
    let c = caller(ctx);
    Ok(Some(match cmd {
        KmsCommand::CreateKey(a) => {
            let policy = a.policy.as_deref().map(policy_text).transpose()?;
            let md = kms.create_key(
                &c,
                match policy {
                    Some(p) => CreateKeyRequest::new(a.description.clone()).with_policy(p),
                    None => CreateKeyRequest::new(a.description.clone()),
                },
            )?;
            metadata_json(&md)
        }
        KmsCommand::DescribeKey(k) => metadata_json(&kms.describe_key(&c, &k.key_id)?),
        KmsCommand::ListKeys => {
            let keys: Vec<Value> = local
                .list_keys(&c)?
                .into_iter()
                .map(|k| json!({"KeyId": k.key_id, "KeyArn": k.key_arn}))
                .collect();
            json!({ "Keys": keys })
        }
        KmsCommand::ListAliases(a) => {
            let aliases: Vec<Value> = local
                .list_aliases(&c, a.key_id.as_deref())?
                .into_iter()
                .map(|a| {
                    json!({"AliasName": a.alias_name, "AliasArn": a.alias_arn,
                           "TargetKeyId": a.target_key_id})
                })
                .collect();
            json!({ "Aliases": aliases })
        }
        KmsCommand::CreateAlias(a) => {
            kms.create_alias(&c, &a.alias_name, &a.target_key_id)?;
            return Ok(None);
        }
        KmsCommand::EnableKey(k) => {
            kms.enable_key(&c, &k.key_id)?;
            return Ok(None);
        }
        KmsCommand::DisableKey(k) => {
            kms.disable_key(&c, &k.key_id)?;
            return Ok(None);
        }
        KmsCommand::ScheduleKeyDeletion(a) => {
            kms.schedule_key_deletion(&c, &a.key_id, a.pending_window_in_days)?;
            let md = kms.describe_key(&c, &a.key_id)?;
            json!({
                "KeyId": md.arn,
                "DeletionDate": md.deletion_date.map(rfc3339),
                "KeyState": md.key_state.as_str(),
                "PendingWindowInDays": a.pending_window_in_days,
            })
        }
        KmsCommand::CancelKeyDeletion(k) => {
            kms.cancel_key_deletion(&c, &k.key_id)?;
            json!({ "KeyId": kms.describe_key(&c, &k.key_id)?.arn })
        }
        KmsCommand::GetKeyPolicy(k) => {
            let policy = kms.get_key_policy(&c, &k.key_id)?;
            // AWS returns the policy as a string; shown parsed, it reads as the document.
            let doc = serde_json::from_str::<Value>(&policy).unwrap_or(Value::String(policy));
            json!({"PolicyName": "default", "Policy": doc})
        }
        KmsCommand::PutKeyPolicy(a) => {
            if a.policy_name != "default" {
                return Err(CliError::usage(format!(
                    "--policy-name {:?}: the only policy name is \"default\"",
                    a.policy_name
                )));
            }
            kms.put_key_policy(&c, &a.key_id, &policy_text(&a.policy)?)?;
            return Ok(None);
        }
        KmsCommand::ListGrants(k) => {
            let grants = kms.list_grants(&c, &k.key_id)?;
            let v = grants
                .iter()
                .map(grant_json)
                .collect::<Result<Vec<_>, _>>()?;
            json!({"Grants": v})
        }
        KmsCommand::CreateGrant(a) => create_grant(ctx, kms, a)?,
        KmsCommand::RevokeGrant(g) => {
            kms.revoke_grant(&c, &g.key.key_id, g.grant_id())?;
            json!({"Revoked": g.grant_id()})
        }
        KmsCommand::RetireGrant(g) => {
            kms.retire_grant(&c, &g.key.key_id, g.grant_id())?;
            json!({"Retired": g.grant_id()})
        }
        KmsCommand::EnableKeyRotation(a) => {
            kms.enable_key_rotation(&c, &a.key_id, a.rotation_period_in_days)?;
            return Ok(None);
        }
        KmsCommand::DisableKeyRotation(k) => {
            kms.disable_key_rotation(&c, &k.key_id)?;
            return Ok(None);
        }
        KmsCommand::GetKeyRotationStatus(k) => {
            let st = kms.get_key_rotation_status(&c, &k.key_id)?;
            let mut v = json!({"KeyId": st.key_id, "KeyRotationEnabled": st.key_rotation_enabled});
            if let Some(d) = st.rotation_period_in_days {
                v["RotationPeriodInDays"] = json!(d);
            }
            if let Some(t) = st.next_rotation_date {
                v["NextRotationDate"] = json!(rfc3339(t));
            }
            if let Some(m) = st.current_key_material_id {
                v["CurrentKeyMaterialId"] = json!(m);
            }
            v
        }
        KmsCommand::RotateKeyOnDemand(k) => {
            json!({"KeyId": kms.rotate_key_on_demand(&c, &k.key_id)?})
        }
        KmsCommand::ListKeyRotations(k) => {
            let v: Vec<Value> = kms
                .list_key_rotations(&c, &k.key_id)?
                .into_iter()
                .map(|r| {
                    json!({"KeyId": r.key_id, "KeyMaterialId": r.key_material_id,
                           "RotationDate": rfc3339(r.rotation_date),
                           "RotationType": r.rotation_type.as_str()})
                })
                .collect();
            json!({"Rotations": v, "Truncated": false})
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_parse_case_insensitively() -> Result<(), CliError> {
        assert_eq!(parse_operation("decrypt")?, GrantOperation::Decrypt);
        assert_eq!(
            parse_operation("ReEncryptFrom")?,
            GrantOperation::ReEncryptFrom
        );
        assert!(parse_operation("Launch").is_err());
        Ok(())
    }
}
