//! The engine's names in the KMS and the key policies the KMS writes itself.

/// The alias of the service default key (the seed's `aws/dynamodb`).
pub const SERVICE_DEFAULT_ALIAS: &str = "alias/aws/sealdb";
/// The engine's service principal (the seed's `dynamodb.amazonaws.com`).
pub const SERVICE_PRINCIPAL: &str = "sealdb.amazonaws.com";

/// `sealdb.<region>.amazonaws.com`: the `kms:ViaService` value of calls the engine makes on
/// a principal's behalf, and the grantee and retiring principal of its table grants.
pub fn via_service_name(region: &str) -> String {
    format!("sealdb.{region}.amazonaws.com")
}

/// The service default key's policy: the seed's three statements, with the engine's names
/// and the account filled in. Formatted as AWS prints it.
pub fn service_default_policy(account: &str, region: &str) -> String {
    let via = via_service_name(region);
    format!(
        r#"{{
  "Version" : "2012-10-17",
  "Id" : "auto-sealdb-1",
  "Statement" : [ {{
    "Sid" : "Allow access through sealdb for all principals in the account that are authorized to use sealdb",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "*"
    }},
    "Action" : [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey" ],
    "Resource" : "*",
    "Condition" : {{
      "StringEquals" : {{
        "kms:CallerAccount" : "{account}",
        "kms:ViaService" : "{via}"
      }}
    }}
  }}, {{
    "Sid" : "Allow direct access to key metadata to the account",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "arn:aws:iam::{account}:root"
    }},
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant" ],
    "Resource" : "*"
  }}, {{
    "Sid" : "Allow sealdb Service with service principal name {SERVICE_PRINCIPAL} to describe the key directly",
    "Effect" : "Allow",
    "Principal" : {{
      "Service" : "{SERVICE_PRINCIPAL}"
    }},
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*" ],
    "Resource" : "*"
  }} ]
}}"#
    )
}

/// AWS's default policy for a customer managed key created without one: the account
/// (every principal of it, as the local KMS treats the root ARN) may do everything.
pub fn customer_default_policy(account: &str) -> String {
    format!(
        r#"{{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {{
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "arn:aws:iam::{account}:root"
    }},
    "Action" : "kms:*",
    "Resource" : "*"
  }} ]
}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::KeyPolicy;

    #[test]
    fn templates_parse() -> Result<(), crate::kms::KmsError> {
        let p = KeyPolicy::parse(&service_default_policy("111122223333", "us-west-2"))?;
        assert_eq!(p.id.as_deref(), Some("auto-sealdb-1"));
        KeyPolicy::parse(&customer_default_policy("111122223333"))?;
        Ok(())
    }

    #[test]
    fn service_policy_is_the_seed_with_names_replaced() {
        let seed_like = service_default_policy("111122223333", "us-west-2")
            .replace("sealdb", "dynamodb")
            .replace(
                "through dynamodb for all principals in the account that are authorized to use dynamodb",
                "through Amazon DynamoDB for all principals in the account that are authorized to use Amazon DynamoDB",
            )
            .replace("Allow dynamodb Service", "Allow DynamoDB Service");
        let seed = include_str!("policy_tests.rs");
        assert!(
            seed.contains(&seed_like),
            "template drifted from the seed:\n{seed_like}"
        );
    }
}
