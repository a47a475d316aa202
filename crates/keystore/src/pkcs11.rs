//! The PKCS#11 backend of the secure environment (TS-0003 §6.3.1): long-term keys live in a
//! token as non-extractable secret-key objects and every operation on them runs inside it.
//!
//! - Keys are token objects (`CKA_TOKEN` true) created with `CKA_SENSITIVE` true and
//!   `CKA_EXTRACTABLE` false, found by `CKA_LABEL`: generated in the token on first use
//!   ([`Pkcs11Token::aes_key`], [`Pkcs11Token::hmac_key`]) or imported once
//!   ([`Pkcs11Token::import_hmac_key`], [`Pkcs11Token::import_aes_key`]). A key found under the
//!   label that is extractable or not sensitive is refused ([`TokenError::KeyExportable`]).
//! - Sealing: `CKM_AES_GCM` (PKCS#11 Current Mechanisms v2.40, AES-GCM) under a `CKK_AES` 256-bit key, 12-byte
//!   random IV, 128-bit tag; the record has the layout of [`m2msec_core::seal`] version 1
//!   (`0x01 ‖ nonce ‖ ciphertext ‖ tag`), so the file and token backends differ only in where
//!   the key is.
//! - HMAC: `CKM_SHA256_HMAC` (PKCS#11 Current Mechanisms v2.40, general-length HMAC) over a `CKK_GENERIC_SECRET` key, for a
//!   device's Kpm and master keys: the TS-0003 §10.3 derivations that start from them run in
//!   the token.
//!
//! Sessions: one `Pkcs11` context per module and process (a module is initialised once,
//! `C_Initialize` with `CKF_OS_LOCKING_OK`), and a pool of read-write sessions per token, each
//! used by one thread at a time (a PKCS#11 session is not for concurrent use). The first session
//! logs the user in; the login is shared by every session of the application (PKCS#11 base
//! specification, session login state), and a session that finds itself logged out (or a key
//! invisible) logs in again before giving up. A session that the token
//! invalidated (closed, token removed, module finalised) is dropped and the operation retried
//! once on a fresh session; if that fails too the caller gets [`TokenError::Unavailable`] and
//! nothing was changed (seal and open have no side effects in the token).
//!
//! ## What exists outside the token
//!
//! - The PIN: read from the PIN file (mode 0600) at start-up and held in process memory
//!   ([`AuthPin`], zeroized on drop) for the process lifetime, to log fresh sessions in.
//! - Never the KEK or an HMAC key generated in the token: no call of this module reads
//!   `CKA_VALUE`, wraps or exports a key.
//! - A key imported with `import_*` existed outside before the import (in the caller's memory,
//!   zeroized when the caller drops it; the caller should delete its file copy).
//! - Outputs: plaintexts opened by [`Pkcs11Token::open`] and HMAC outputs of
//!   [`Pkcs11Token::hmac_sha256`] (derived keys such as a PSK handed to a (D)TLS library) are in
//!   process memory for as long as the caller keeps them (`Zeroizing`, wiped on drop).
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
pub use cryptoki::types::AuthPin;
use m2msec_core::seal::{SealError, NONCE_LEN, OVERHEAD, SEAL_V1};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

/// Sessions kept open per token for reuse (more are opened under load and closed after use).
pub const MAX_IDLE_SESSIONS: usize = 8;

/// Errors of the PKCS#11 secure environment. Messages name the token and the key label, never
/// the PIN.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The module could not be loaded or initialised.
    #[error("PKCS#11 module {module}: {reason} (for SoftHSM2 run scripts/setup.sh, or fix [secure_environment] pkcs11_module)")]
    Module {
        /// The module path.
        module: PathBuf,
        /// Why.
        reason: String,
    },
    /// No initialised token with that label or slot.
    #[error("PKCS#11 module {module}: no initialised token {wanted} (tokens present: {present}); create one, e.g. softhsm2-util --init-token --free --label …")]
    TokenNotFound {
        /// What was asked for.
        wanted: String,
        /// The module path.
        module: PathBuf,
        /// The tokens the module offers.
        present: String,
    },
    /// `C_Login` refused the PIN.
    #[error("token {token}: wrong PIN (check the [secure_environment] pin_file)")]
    WrongPin {
        /// The token.
        token: String,
    },
    /// The user PIN is locked.
    #[error("token {token}: the user PIN is locked (the token's security officer must reset it)")]
    PinLocked {
        /// The token.
        token: String,
    },
    /// No key with that label in the token.
    #[error("token {token}: no key labelled {label:?} (deleted from the token? restore the token from its backup)")]
    KeyMissing {
        /// The token.
        token: String,
        /// The key label.
        label: String,
    },
    /// The key under that label could leave the token: refused.
    #[error("token {token}: key {label:?} is extractable or not sensitive: refusing to use it")]
    KeyExportable {
        /// The token.
        token: String,
        /// The key label.
        label: String,
    },
    /// More than one key with that label.
    #[error("token {token}: {count} keys labelled {label:?}: remove the extra ones")]
    KeyAmbiguous {
        /// The token.
        token: String,
        /// The key label.
        label: String,
        /// How many.
        count: usize,
    },
    /// The token went away (removed, module finalised, sessions closed and none can be opened).
    #[error("token {token} is unavailable during {operation}: {reason}; nothing was changed")]
    Unavailable {
        /// The token.
        token: String,
        /// What was being done.
        operation: String,
        /// The PKCS#11 error.
        reason: String,
    },
    /// Another PKCS#11 error.
    #[error("token {token}: {operation} failed: {reason}")]
    Pkcs11 {
        /// The token.
        token: String,
        /// What was being done.
        operation: String,
        /// The PKCS#11 error.
        reason: String,
    },
    /// A sealed record did not open.
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Which token of a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSelector {
    /// The token with this `CKA_LABEL` (token info label, trailing blanks ignored).
    Label(String),
    /// The slot with this slot ID.
    Slot(u64),
}

impl std::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSelector::Label(l) => write!(f, "labelled {l:?}"),
            TokenSelector::Slot(s) => write!(f, "in slot {s}"),
        }
    }
}

/// The `Pkcs11` context of `module`, loaded and initialised once per process: a module
/// answers a second `C_Initialize` with `CKR_CRYPTOKI_ALREADY_INITIALIZED`, and the services of
/// one process (the demo runs MEF, PKG and CSE together) share one token module.
pub fn module_context(module: &Path) -> Result<Pkcs11, TokenError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let err = |reason: String| TokenError::Module {
        module: module.to_path_buf(),
        reason,
    };
    if !module.is_file() {
        return Err(err("no such file".into()));
    }
    let key = module
        .canonicalize()
        .unwrap_or_else(|_| module.to_path_buf());
    let mut map = lock(MODULES.get_or_init(Default::default));
    if let Some(c) = map.get(&key) {
        return Ok(c.clone());
    }
    let ctx = Pkcs11::new(&key).map_err(|e| err(format!("cannot load: {e}")))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(err(format!("C_Initialize: {e}"))),
    }
    map.insert(key, ctx.clone());
    Ok(ctx)
}

/// Serialises this process's slot listings and token initialisations: SoftHSM2 2.6 refreshes
/// its slot table inside `C_GetSlotList` without a lock and aborts the process
/// (`SlotManager::insertToken` assertion) when two threads list slots while a token appears.
pub fn slot_list_lock() -> MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    lock(&L)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data (a session list, a handle
    // cache) that is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The kinds of key kept in the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// AES-256 for `CKM_AES_GCM` sealing (a KEK).
    Aes,
    /// A generic secret for `CKM_SHA256_HMAC` (Kpm, master keys).
    Hmac,
}

impl KeyKind {
    fn key_type(self) -> KeyType {
        match self {
            KeyKind::Aes => KeyType::AES,
            KeyKind::Hmac => KeyType::GENERIC_SECRET,
        }
    }
}

/// Errors while looking a key up.
enum Lookup {
    Ck(CkError),
    Token(TokenError),
}

/// One token, logged in, with a pool of sessions.
pub struct Pkcs11Token {
    ctx: Pkcs11,
    module: PathBuf,
    slot: Slot,
    label: String,
    manufacturer: String,
    model: String,
    hardware: bool,
    pin: AuthPin,
    idle: Mutex<Vec<Session>>,
    handles: Mutex<HashMap<(String, u8), ObjectHandle>>,
}

impl std::fmt::Debug for Pkcs11Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Token")
            .field("module", &self.module)
            .field("slot", &self.slot.id())
            .field("label", &self.label)
            .field("manufacturer", &self.manufacturer)
            .field("pin", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn is_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::DeviceError
                | RvError::CryptokiNotInitialized
                | RvError::UserNotLoggedIn,
            _
        )
    )
}

fn is_stale_handle(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid, _)
    )
}

impl Pkcs11Token {
    /// Opens the token `which` of `module` and logs the user in with `pin`.
    pub fn connect(module: &Path, which: &TokenSelector, pin: AuthPin) -> Result<Self, TokenError> {
        let ctx = module_context(module)?;
        let module_err = |e: CkError| TokenError::Module {
            module: module.to_path_buf(),
            reason: e.to_string(),
        };
        let mut present = Vec::new();
        let mut found = None;
        let listing = slot_list_lock();
        for slot in ctx.get_slots_with_token().map_err(module_err)? {
            let Ok(info) = ctx.get_token_info(slot) else {
                continue;
            };
            if !info.token_initialized() {
                continue;
            }
            let label = info.label().trim_end().to_string();
            present.push(format!("{label:?} (slot {})", slot.id()));
            let hit = match which {
                TokenSelector::Label(l) => *l == label,
                TokenSelector::Slot(s) => *s == slot.id(),
            };
            if hit && found.is_none() {
                let hardware = ctx
                    .get_slot_info(slot)
                    .map(|s| s.hardware_slot())
                    .unwrap_or(false);
                found = Some((slot, info, hardware));
            }
        }
        drop(listing);
        let Some((slot, info, hardware)) = found else {
            return Err(TokenError::TokenNotFound {
                wanted: which.to_string(),
                module: module.to_path_buf(),
                present: if present.is_empty() {
                    "none".into()
                } else {
                    present.join(", ")
                },
            });
        };
        let token = Pkcs11Token {
            ctx,
            module: module.to_path_buf(),
            slot,
            label: info.label().trim_end().to_string(),
            manufacturer: info.manufacturer_id().trim_end().to_string(),
            model: info.model().trim_end().to_string(),
            hardware,
            pin,
            idle: Mutex::new(Vec::new()),
            handles: Mutex::new(HashMap::new()),
        };
        // Log in now: a wrong PIN is reported at start-up, not at the first seal.
        let s = token.new_session("log in")?;
        lock(&token.idle).push(s);
        Ok(token)
    }

    /// The token label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The module path.
    pub fn module(&self) -> &Path {
        &self.module
    }

    /// The slot ID.
    pub fn slot_id(&self) -> u64 {
        self.slot.id()
    }

    /// The token's manufacturer and model, as the token reports them.
    pub fn manufacturer(&self) -> String {
        format!("{} {}", self.manufacturer, self.model)
    }

    /// Whether the slot is a hardware slot (`CKF_HW_SLOT`), as the module reports it.
    pub fn hardware_slot(&self) -> bool {
        self.hardware
    }

    fn classify(&self, operation: &str, e: CkError) -> TokenError {
        let token = self.label.clone();
        match e {
            CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _) => {
                TokenError::WrongPin { token }
            }
            CkError::Pkcs11(RvError::PinLocked, _) => TokenError::PinLocked { token },
            e if is_lost(&e) => TokenError::Unavailable {
                token,
                operation: operation.into(),
                reason: e.to_string(),
            },
            e => TokenError::Pkcs11 {
                token,
                operation: operation.into(),
                reason: e.to_string(),
            },
        }
    }

    fn new_session(&self, operation: &str) -> Result<Session, TokenError> {
        let s = self
            .ctx
            .open_rw_session(self.slot)
            .map_err(|e| self.classify(operation, e))?;
        match s.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(s),
            Err(e) => Err(self.classify(operation, e)),
        }
    }

    fn take_session(&self, operation: &str) -> Result<Session, TokenError> {
        let pooled = lock(&self.idle).pop();
        match pooled {
            Some(s) => Ok(s),
            None => self.new_session(operation),
        }
    }

    fn give_back(&self, s: Session) {
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE_SESSIONS {
            idle.push(s);
        }
    }

    /// Drops every pooled session (after one was found invalid: the others are likely too)
    /// and the handle cache.
    fn reset(&self) {
        let stale: Vec<Session> = std::mem::take(&mut *lock(&self.idle));
        drop(stale);
        lock(&self.handles).clear();
    }

    fn find(&self, s: &Session, label: &str, kind: KeyKind) -> Result<Vec<ObjectHandle>, CkError> {
        s.find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(kind.key_type()),
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
    }

    /// The one key `label` of `kind`, checked non-extractable (cached handle).
    fn handle(
        &self,
        s: &Session,
        label: &str,
        kind: KeyKind,
    ) -> Result<Option<ObjectHandle>, Lookup> {
        let k = (label.to_string(), kind as u8);
        if let Some(h) = lock(&self.handles).get(&k) {
            return Ok(Some(*h));
        }
        let found = self.find(s, label, kind).map_err(Lookup::Ck)?;
        let h = match found.as_slice() {
            [] => return Ok(None),
            [h] => *h,
            more => {
                return Err(Lookup::Token(TokenError::KeyAmbiguous {
                    token: self.label.clone(),
                    label: label.into(),
                    count: more.len(),
                }))
            }
        };
        let attrs = s
            .get_attributes(h, &[AttributeType::Sensitive, AttributeType::Extractable])
            .map_err(Lookup::Ck)?;
        let sensitive = attrs
            .iter()
            .any(|a| matches!(a, Attribute::Sensitive(true)));
        let extractable = attrs
            .iter()
            .any(|a| matches!(a, Attribute::Extractable(true)));
        if !sensitive || extractable {
            return Err(Lookup::Token(TokenError::KeyExportable {
                token: self.label.clone(),
                label: label.into(),
            }));
        }
        lock(&self.handles).insert(k, h);
        Ok(Some(h))
    }

    /// Runs `f` with a session and the key `label`; retries once on a fresh session when the
    /// token invalidated the session or the handle.
    fn run<T>(
        &self,
        operation: &str,
        label: &str,
        kind: KeyKind,
        f: impl Fn(&Session, ObjectHandle) -> Result<T, CkError>,
    ) -> Result<T, TokenError> {
        let mut last = None;
        for _ in 0..2 {
            let s = self.take_session(operation)?;
            let mut found = self.handle(&s, label, kind);
            if let Ok(None) = found {
                // Private objects are invisible to a session that lost its login (token reset,
                // another part of the application called C_Logout): log in again and look
                // once more before calling the key missing.
                match s.login(UserType::User, Some(&self.pin)) {
                    Ok(()) => found = self.handle(&s, label, kind),
                    Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                    Err(e) => found = Err(Lookup::Ck(e)),
                }
            }
            let h = match found {
                Ok(Some(h)) => h,
                Ok(None) => {
                    self.give_back(s);
                    return Err(TokenError::KeyMissing {
                        token: self.label.clone(),
                        label: label.into(),
                    });
                }
                Err(Lookup::Token(e)) => {
                    self.give_back(s);
                    return Err(e);
                }
                Err(Lookup::Ck(e)) if is_lost(&e) => {
                    drop(s);
                    self.reset();
                    last = Some(e);
                    continue;
                }
                Err(Lookup::Ck(e)) => {
                    self.give_back(s);
                    return Err(self.classify(operation, e));
                }
            };
            match f(&s, h) {
                Ok(v) => {
                    self.give_back(s);
                    return Ok(v);
                }
                Err(e) if is_lost(&e) => {
                    drop(s);
                    self.reset();
                    last = Some(e);
                }
                Err(e) if is_stale_handle(&e) => {
                    lock(&self.handles).remove(&(label.to_string(), kind as u8));
                    self.give_back(s);
                    last = Some(e);
                }
                Err(e) => {
                    self.give_back(s);
                    return Err(self.classify(operation, e));
                }
            }
        }
        let e = last.unwrap_or(CkError::Pkcs11(RvError::GeneralError, Function::Login));
        Err(match self.classify(operation, e) {
            TokenError::Pkcs11 {
                token,
                operation,
                reason,
            } => TokenError::Unavailable {
                token,
                operation,
                reason,
            },
            other => other,
        })
    }

    fn key_template(label: &str, kind: KeyKind) -> Vec<Attribute> {
        let mut t = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(kind.key_type()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
        ];
        match kind {
            KeyKind::Aes => {
                t.push(Attribute::Encrypt(true));
                t.push(Attribute::Decrypt(true));
            }
            KeyKind::Hmac => {
                t.push(Attribute::Sign(true));
                t.push(Attribute::Verify(true));
            }
        }
        t
    }

    /// Finds the key `label`, or creates it with `create` (under a lock, so two threads of
    /// this process do not both create it).
    fn find_or_create(
        &self,
        label: &str,
        kind: KeyKind,
        create: impl Fn(&Session) -> Result<ObjectHandle, CkError>,
        created: &mut bool,
    ) -> Result<(), TokenError> {
        static CREATE: Mutex<()> = Mutex::new(());
        let _g = lock(&CREATE);
        let op = "key lookup";
        match self.run(op, label, kind, |_, _| Ok(())) {
            Ok(()) => return Ok(()),
            Err(TokenError::KeyMissing { .. }) => {}
            Err(e) => return Err(e),
        }
        let s = self.take_session(op)?;
        match create(&s) {
            Ok(h) => {
                lock(&self.handles).insert((label.to_string(), kind as u8), h);
                self.give_back(s);
                *created = true;
                Ok(())
            }
            Err(e) => Err(self.classify("key creation", e)),
        }
    }

    /// The AES-256 key `label`, generated in the token (`CKM_AES_KEY_GEN`) if missing.
    /// Returns whether it was created now.
    pub fn aes_key(&self, label: &str) -> Result<bool, TokenError> {
        let mut created = false;
        self.find_or_create(
            label,
            KeyKind::Aes,
            |s| {
                let mut t = Self::key_template(label, KeyKind::Aes);
                t.push(Attribute::ValueLen(32u64.into()));
                s.generate_key(&Mechanism::AesKeyGen, &t)
            },
            &mut created,
        )?;
        Ok(created)
    }

    /// The 256-bit HMAC key `label`, generated in the token (`CKM_GENERIC_SECRET_KEY_GEN`) if
    /// missing. Returns whether it was created now.
    pub fn hmac_key(&self, label: &str) -> Result<bool, TokenError> {
        let mut created = false;
        self.find_or_create(
            label,
            KeyKind::Hmac,
            |s| {
                let mut t = Self::key_template(label, KeyKind::Hmac);
                t.push(Attribute::ValueLen(32u64.into()));
                s.generate_key(&Mechanism::GenericSecretKeyGen, &t)
            },
            &mut created,
        )?;
        Ok(created)
    }

    fn import(&self, label: &str, kind: KeyKind, value: &[u8]) -> Result<bool, TokenError> {
        let mut created = false;
        self.find_or_create(
            label,
            kind,
            |s| {
                let mut t = Self::key_template(label, kind);
                t.push(Attribute::Value(value.to_vec()));
                let r = s.create_object(&t);
                // The template's copy of the value.
                for a in t.iter_mut() {
                    if let Attribute::Value(v) = a {
                        zeroize::Zeroize::zeroize(v);
                    }
                }
                r
            },
            &mut created,
        )?;
        Ok(created)
    }

    /// Imports `value` as the non-extractable HMAC key `label`, once: an existing key with
    /// that label is kept (returns false). SoftHSM2 refuses `CKM_SHA256_HMAC` with keys shorter
    /// than 32 bytes (`CKR_KEY_SIZE_RANGE` at the first HMAC).
    pub fn import_hmac_key(&self, label: &str, value: &[u8]) -> Result<bool, TokenError> {
        self.import(label, KeyKind::Hmac, value)
    }

    /// Imports a 32-byte `value` as the non-extractable AES key `label`, once (migration of a
    /// file KEK): an existing key with that label is kept (returns false).
    pub fn import_aes_key(&self, label: &str, value: &[u8; 32]) -> Result<bool, TokenError> {
        self.import(label, KeyKind::Aes, value)
    }

    /// Whether the key `label` of `kind` exists.
    pub fn has_key(&self, label: &str, kind: KeyKind) -> Result<bool, TokenError> {
        match self.run("key lookup", label, kind, |_, _| Ok(())) {
            Ok(()) => Ok(true),
            Err(TokenError::KeyMissing { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Destroys the key `label` of `kind` (`C_DestroyObject`).
    pub fn destroy_key(&self, label: &str, kind: KeyKind) -> Result<(), TokenError> {
        self.run("key destruction", label, kind, |s, h| s.destroy_object(h))?;
        lock(&self.handles).remove(&(label.to_string(), kind as u8));
        Ok(())
    }

    /// Seals `plaintext` bound to `aad` under the AES key `label`, inside the token
    /// (`CKM_AES_GCM`, fresh random 96-bit IV, 128-bit tag). Same layout as
    /// [`m2msec_core::seal::seal`].
    pub fn seal(&self, label: &str, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, TokenError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ct = self.run(
            "seal (C_Encrypt CKM_AES_GCM)",
            label,
            KeyKind::Aes,
            |s, h| {
                let mut iv = nonce;
                let params = GcmParams::new(&mut iv, aad, 128u64.into())?;
                s.encrypt(&Mechanism::AesGcm(params), h, plaintext)
            },
        )?;
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        out.push(SEAL_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a record sealed by [`Pkcs11Token::seal`] (or by the file backend under the same
    /// key value) inside the token.
    pub fn open(
        &self,
        label: &str,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        if sealed.len() < OVERHEAD || sealed.first() != Some(&SEAL_V1) {
            return Err(SealError::Malformed.into());
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
        let body = &sealed[1 + NONCE_LEN..];
        let r = self.run(
            "open (C_Decrypt CKM_AES_GCM)",
            label,
            KeyKind::Aes,
            |s, h| {
                let mut iv = nonce;
                let params = GcmParams::new(&mut iv, aad, 128u64.into())?;
                match s.decrypt(&Mechanism::AesGcm(params), h, body) {
                    Ok(p) => Ok(Some(Zeroizing::new(p))),
                    // GCM tag mismatch: CKR_ENCRYPTED_DATA_INVALID (PKCS#11 base specification, C_Decrypt);
                    // SoftHSM2 2.6 answers CKR_GENERAL_ERROR from C_Decrypt itself (after
                    // C_DecryptInit accepted key and parameters).
                    Err(CkError::Pkcs11(
                        RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange,
                        _,
                    ))
                    | Err(CkError::Pkcs11(RvError::GeneralError, Function::Decrypt)) => Ok(None),
                    Err(e) => Err(e),
                }
            },
        )?;
        r.ok_or(TokenError::Seal(SealError::Authentication))
    }

    /// HMAC-SHA-256 of `data` under the key `label`, inside the token (`CKM_SHA256_HMAC`).
    pub fn hmac_sha256(&self, label: &str, data: &[u8]) -> Result<Zeroizing<[u8; 32]>, TokenError> {
        let mac = self.run(
            "HMAC (C_Sign CKM_SHA256_HMAC)",
            label,
            KeyKind::Hmac,
            |s, h| s.sign(&Mechanism::Sha256Hmac, h, data),
        )?;
        let mac = Zeroizing::new(mac);
        let mut out = Zeroizing::new([0u8; 32]);
        if mac.len() != 32 {
            return Err(TokenError::Pkcs11 {
                token: self.label.clone(),
                operation: "HMAC".into(),
                reason: format!("{} bytes of MAC, expected 32", mac.len()),
            });
        }
        out.copy_from_slice(&mac);
        Ok(out)
    }
}
