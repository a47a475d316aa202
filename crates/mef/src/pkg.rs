//! The Private Key Generator of seed 001 (BRIEF §3(b), A32): an ECCSI KMS (RFC 6507) whose
//! secret (KSAK) rests sealed in the MEF's store and is only ever used in this process.
//!
//! [`Pkg`] is the seam for a PKG on another host: the MEF needs extraction and the public
//! KPAK, nothing else. The in-process [`LocalPkg`] is the default.

use m2msec_core::eccsi::{EccsiError, Kms, Kpak, Ksak, UserKeys};
use rand_core::OsRng;

/// What the MEF asks of a PKG.
pub trait Pkg: Send + Sync + 'static {
    /// The KMS Public Authentication Key (seed 001's MPK).
    fn kpak(&self) -> Kpak;
    /// Extract (SSK, PVT) for ID2 (RFC 6507 §5.1.1).
    fn extract(&self, id2: &[u8]) -> Result<UserKeys, EccsiError>;
}

/// A PKG in this process.
pub struct LocalPkg {
    kms: Kms,
}

impl std::fmt::Debug for LocalPkg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPkg")
            .field("kpak", &self.kms.kpak().to_hex())
            .finish_non_exhaustive()
    }
}

impl LocalPkg {
    /// From a KSAK (32 bytes, big-endian).
    pub fn from_ksak_bytes(ksak: &[u8]) -> Result<Self, EccsiError> {
        Ok(LocalPkg {
            kms: Kms::from_ksak(Ksak::from_bytes(ksak)?)?,
        })
    }

    /// A fresh random KMS.
    pub fn generate() -> Self {
        LocalPkg {
            kms: Kms::generate(&mut OsRng),
        }
    }

    /// The KSAK bytes (to seal them).
    pub fn ksak_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        self.kms.ksak().to_bytes()
    }
}

impl Pkg for LocalPkg {
    fn kpak(&self) -> Kpak {
        *self.kms.kpak()
    }

    fn extract(&self, id2: &[u8]) -> Result<UserKeys, EccsiError> {
        self.kms.extract(id2, &mut OsRng)
    }
}

impl LocalPkg {
    /// The PKG of a MEF store: its KSAK, sealed in the store, created on first use.
    pub fn from_store(
        store: &mut crate::store::MefStore,
    ) -> Result<Self, crate::store::StoreError> {
        let ksak = store.ksak_or_init(|| LocalPkg::generate().ksak_bytes())?;
        LocalPkg::from_ksak_bytes(&ksak)
            .map_err(|e| crate::store::StoreError::Corrupt(format!("KSAK: {e}")))
    }
}
