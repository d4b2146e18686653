//! `kms ...`: direct calls to the local KMS, as the acting principal.

use std::time::SystemTime;

use serde_json::{json, Value};

use sealdb::kms::{
    via_service_name, Caller, CreateGrantRequest, EncryptionContext, GrantConstraints, GrantEntry,
    GrantOperation, KeyMetadata, Kms,
};

use super::Context;
use crate::args::{CreateGrantArgs, KeyArg, KmsCommand};
use crate::output::{print_json, CliError};

fn caller(ctx: &Context, k: &KeyArg) -> Caller {
    if k.via_service {
        Caller::via(ctx.principal.clone(), &via_service_name(&ctx.region))
    } else {
        Caller::direct(ctx.principal.clone())
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn metadata_json(m: &KeyMetadata) -> Value {
    json!({"KeyMetadata": {
        "KeyId": m.key_id,
        "Arn": m.arn,
        "AWSAccountId": m.aws_account_id,
        "Description": m.description,
        "CreationDate": rfc3339(m.creation_date),
        "Enabled": m.enabled,
        "KeyState": m.key_state.as_str(),
        "DeletionDate": m.deletion_date.map(rfc3339),
        "KeyManager": format!("{:?}", m.key_manager).to_uppercase(),
        "KeyUsage": m.key_usage,
    }})
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
    let resp = kms.create_grant(
        &caller(ctx, &a.key),
        CreateGrantRequest {
            key_id: a.key.key_id.clone(),
            grantee_principal: a.grantee.clone(),
            retiring_principal: a.retiring.clone(),
            operations,
            constraints,
            name: a.name.clone(),
        },
    )?;
    Ok(json!({"GrantId": resp.grant_id}))
}

pub fn run(ctx: &Context, cmd: KmsCommand) -> Result<(), CliError> {
    let kms = ctx.open_kms()?;
    let kms: &dyn Kms = kms.as_ref();
    let out = match &cmd {
        KmsCommand::DescribeKey(k) => metadata_json(&kms.describe_key(&caller(ctx, k), &k.key_id)?),
        KmsCommand::GetKeyPolicy(k) => {
            let policy = kms.get_key_policy(&caller(ctx, k), &k.key_id)?;
            // AWS returns the policy as a string; shown parsed, it reads as the document.
            let doc = serde_json::from_str::<Value>(&policy).unwrap_or(Value::String(policy));
            json!({"PolicyName": "default", "Policy": doc})
        }
        KmsCommand::ListGrants(k) => {
            let grants = kms.list_grants(&caller(ctx, k), &k.key_id)?;
            let v = grants
                .iter()
                .map(grant_json)
                .collect::<Result<Vec<_>, _>>()?;
            json!({"Grants": v})
        }
        KmsCommand::CreateGrant(a) => create_grant(ctx, kms, a)?,
        KmsCommand::RevokeGrant(g) => {
            kms.revoke_grant(&caller(ctx, &g.key), &g.key.key_id, &g.grant_id)?;
            json!({"Revoked": g.grant_id})
        }
        KmsCommand::RetireGrant(g) => {
            kms.retire_grant(&caller(ctx, &g.key), &g.key.key_id, &g.grant_id)?;
            json!({"Retired": g.grant_id})
        }
    };
    print_json(&out)
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
