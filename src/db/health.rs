//! Whether the database still accepts writes. A failed WAL or manifest write or fsync
//! makes it read-only until reopened: the page cache may no longer match the disk, so
//! nothing more may be acknowledged (fsyncgate). Shared by the write path and the
//! version set, which both write files whose failure poisons.

use parking_lot::Mutex;

use crate::error::{Error, Poison, Result};

/// The poison flag, set once by the first failure and kept until the database closes.
#[derive(Default)]
pub(crate) struct Health {
    poisoned: Mutex<Option<Poison>>,
}

impl Health {
    /// `Err(Poisoned)` once a write has failed.
    pub(crate) fn check(&self) -> Result<()> {
        match &*self.poisoned.lock() {
            Some(p) => Err(Error::Poisoned(p.clone())),
            None => Ok(()),
        }
    }

    /// Enters the read-only state (the first cause is kept) and returns the error to report.
    pub(crate) fn poison(&self, why: &str, cause: Error) -> Error {
        let poison = Poison::caused_by(why, cause);
        let mut p = self.poisoned.lock();
        if p.is_none() {
            *p = Some(poison.clone());
        }
        Error::Poisoned(poison)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cause_is_kept() {
        let h = Health::default();
        assert!(h.check().is_ok());
        let first = h.poison("WAL fsync failed", Error::Internal("disk gone".into()));
        assert!(matches!(first, Error::Poisoned(_)));
        h.poison("manifest write failed", Error::Internal("later".into()));
        let Err(Error::Poisoned(p)) = h.check() else {
            panic!("a poisoned database must refuse writes");
        };
        assert_eq!(p.reason(), "WAL fsync failed");
    }
}
