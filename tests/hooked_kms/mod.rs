//! A KMS for tests that wraps the local KMS with faults a test turns on: RetireGrant and
//! RevokeGrant fail (an outage of those calls), and a hook runs before each Decrypt, which
//! may fail the call (a blob that will not unwrap) or act while the engine waits on the KMS.
//! Used by `mod hooked_kms;` in the test binaries that need it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use sealdb::kms::{
    Caller, CreateGrantRequest, CreateGrantResponse, CreateKeyRequest, DataKeySpec, DecryptedKey,
    EncryptionContext, GeneratedDataKey, GrantEntry, KeyMetadata, Kms, KmsError, LocalKms,
};
use sealdb::Options;

use super::common::EncryptedFixture;

/// What a [`Hooked`] KMS runs at the start of each Decrypt.
pub type DecryptHook = Arc<dyn Fn(&Caller, &[u8]) -> Result<(), KmsError> + Send + Sync>;

/// The local KMS with two faults a test can turn on: RetireGrant and RevokeGrant fail
/// (an outage of those calls), and a hook runs before each Decrypt (to act, or look at the
/// database, while the engine waits on the KMS).
pub struct Hooked {
    pub kms: Arc<LocalKms>,
    pub fail_retire: AtomicBool,
    pub on_decrypt: Mutex<Option<DecryptHook>>,
    /// GenerateDataKey returns a 128-bit plaintext (a KMS that answers a wrong key spec).
    pub short_data_keys: AtomicBool,
}

impl Hooked {
    pub fn new(kms: &Arc<LocalKms>) -> Arc<Hooked> {
        Arc::new(Hooked {
            kms: Arc::clone(kms),
            fail_retire: AtomicBool::new(false),
            on_decrypt: Mutex::new(None),
            short_data_keys: AtomicBool::new(false),
        })
    }

    pub fn options(self: &Arc<Self>, fx: &EncryptedFixture) -> Options {
        let mut o = fx.options();
        o.kms = Some(Arc::clone(self) as Arc<dyn Kms>);
        o
    }

    fn check_retire(&self) -> Result<(), KmsError> {
        if self.fail_retire.load(Ordering::SeqCst) {
            return Err(KmsError::Unavailable("RetireGrant endpoint down".into()));
        }
        Ok(())
    }
}

impl Kms for Hooked {
    fn create_key(&self, c: &Caller, r: CreateKeyRequest) -> Result<KeyMetadata, KmsError> {
        self.kms.create_key(c, r)
    }
    fn describe_key(&self, c: &Caller, k: &str) -> Result<KeyMetadata, KmsError> {
        self.kms.describe_key(c, k)
    }
    fn create_alias(&self, c: &Caller, a: &str, k: &str) -> Result<(), KmsError> {
        self.kms.create_alias(c, a, k)
    }
    fn generate_data_key(
        &self,
        c: &Caller,
        k: &str,
        s: DataKeySpec,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        let mut g = self.kms.generate_data_key(c, k, s, ctx)?;
        if self.short_data_keys.load(Ordering::SeqCst) {
            g.plaintext.truncate(16);
        }
        Ok(g)
    }
    fn encrypt(
        &self,
        c: &Caller,
        k: &str,
        p: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        self.kms.encrypt(c, k, p, ctx)
    }
    fn decrypt(
        &self,
        c: &Caller,
        b: &[u8],
        ctx: &EncryptionContext,
        k: Option<&str>,
    ) -> Result<DecryptedKey, KmsError> {
        // Called without the hook's lock held: other threads' calls go on meanwhile.
        let hook = self.on_decrypt.lock().clone();
        if let Some(hook) = hook {
            hook(c, b)?;
        }
        self.kms.decrypt(c, b, ctx, k)
    }
    fn re_encrypt(
        &self,
        c: &Caller,
        b: &[u8],
        s: &EncryptionContext,
        d: &str,
        dc: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        self.kms.re_encrypt(c, b, s, d, dc)
    }
    fn create_grant(
        &self,
        c: &Caller,
        r: CreateGrantRequest,
    ) -> Result<CreateGrantResponse, KmsError> {
        self.kms.create_grant(c, r)
    }
    fn list_grants(&self, c: &Caller, k: &str) -> Result<Vec<GrantEntry>, KmsError> {
        self.kms.list_grants(c, k)
    }
    fn retire_grant(&self, c: &Caller, k: &str, g: &str) -> Result<(), KmsError> {
        self.check_retire()?;
        self.kms.retire_grant(c, k, g)
    }
    fn revoke_grant(&self, c: &Caller, k: &str, g: &str) -> Result<(), KmsError> {
        self.check_retire()?;
        self.kms.revoke_grant(c, k, g)
    }
    fn get_key_policy(&self, c: &Caller, k: &str) -> Result<String, KmsError> {
        self.kms.get_key_policy(c, k)
    }
    fn put_key_policy(&self, c: &Caller, k: &str, p: &str) -> Result<(), KmsError> {
        self.kms.put_key_policy(c, k, p)
    }
    fn enable_key(&self, c: &Caller, k: &str) -> Result<(), KmsError> {
        self.kms.enable_key(c, k)
    }
    fn disable_key(&self, c: &Caller, k: &str) -> Result<(), KmsError> {
        self.kms.disable_key(c, k)
    }
    fn schedule_key_deletion(&self, c: &Caller, k: &str, d: u32) -> Result<(), KmsError> {
        self.kms.schedule_key_deletion(c, k, d)
    }
    fn cancel_key_deletion(&self, c: &Caller, k: &str) -> Result<(), KmsError> {
        self.kms.cancel_key_deletion(c, k)
    }
}
