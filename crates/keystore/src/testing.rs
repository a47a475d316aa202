//! A throwaway SoftHSM2 for tests and benches (feature `testing`): one configuration and
//! token directory per process (SoftHSM2 reads `SOFTHSM2_CONF` once, at `C_Initialize`), one
//! fresh token per test, initialised in-process (`C_InitToken`, `C_InitPIN`). Without
//! SoftHSM2 it panics with the way to install it: tests fail, they do not skip.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use crate::pkcs11::{module_context, slot_list_lock};
use crate::SecureEnvironmentConfig;

/// Where Debian's `softhsm2` package puts the module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The user PIN of every test token.
pub const PIN: &str = "4711-user-pin";
/// The security officer PIN of every test token.
pub const SO_PIN: &str = "0815-so-pin";

/// The process's SoftHSM2 directory (configuration, tokens, PIN files).
#[derive(Debug)]
pub struct SoftHsm {
    /// The temporary directory.
    pub dir: tempfile::TempDir,
}

impl SoftHsm {
    /// The token directory.
    pub fn token_dir(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    /// The configuration file (for `SOFTHSM2_CONF` of child processes).
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }
}

/// Panics unless SoftHSM2 is installed.
pub fn require_softhsm() {
    assert!(
        Path::new(MODULE).is_file(),
        "SoftHSM2 is not installed ({MODULE} is missing): run scripts/setup.sh, which installs the Debian package softhsm2 (CI does)"
    );
}

/// The process's SoftHSM2, configured on first use (sets `SOFTHSM2_CONF` for this process and
/// its children).
pub fn softhsm() -> &'static SoftHsm {
    static S: OnceLock<SoftHsm> = OnceLock::new();
    S.get_or_init(|| {
        require_softhsm();
        let dir = tempfile::tempdir().expect("temporary directory");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("token directory");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .expect("softhsm2.conf");
        // Set before the module is initialised (first module_context call), read once.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        SoftHsm { dir }
    })
}

/// A fresh token labelled `label` (unique per process) with user PIN [`PIN`], and a
/// configuration naming it (PIN file of mode 0600 in the SoftHSM2 temporary directory).
pub fn new_token(label: &str) -> SecureEnvironmentConfig {
    static INIT: Mutex<()> = Mutex::new(());
    let hsm = softhsm();
    let _g = INIT.lock().unwrap_or_else(|e| e.into_inner());
    let ctx = module_context(Path::new(MODULE)).expect("load SoftHSM2");
    let listing = slot_list_lock();
    let mut free = None;
    for slot in ctx.get_slots_with_token().expect("C_GetSlotList") {
        let info = ctx.get_token_info(slot).expect("C_GetTokenInfo");
        assert_ne!(info.label().trim_end(), label, "token label reused");
        if !info.token_initialized() {
            free = Some(slot);
        }
    }
    let slot = free.expect("SoftHSM2 offers a free slot");
    ctx.init_token(slot, &AuthPin::from(SO_PIN.to_string()), label)
        .expect("C_InitToken");
    let s = ctx.open_rw_session(slot).expect("C_OpenSession");
    s.login(UserType::So, Some(&AuthPin::from(SO_PIN.to_string())))
        .expect("C_Login SO");
    s.init_pin(&AuthPin::from(PIN.to_string()))
        .expect("C_InitPIN");
    s.logout().expect("C_Logout");
    drop(s);
    drop(listing);
    let pin_file = hsm.dir.path().join(format!("{label}.pin"));
    crate::write_secret_file(&pin_file, format!("{PIN}\n").as_bytes()).expect("PIN file");
    SecureEnvironmentConfig::pkcs11(MODULE, label, pin_file)
}

/// A session on the token `label` of our own (not the library's pool), logged in as the user,
/// for inspecting and tampering as a PKCS#11 tool would.
pub fn raw_session(label: &str) -> Session {
    let ctx = module_context(Path::new(MODULE)).expect("load SoftHSM2");
    let listing = slot_list_lock();
    let slot = ctx
        .get_slots_with_token()
        .expect("C_GetSlotList")
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| i.label().trim_end() == label)
                .unwrap_or(false)
        })
        .expect("token exists");
    drop(listing);
    let s = ctx.open_rw_session(slot).expect("C_OpenSession");
    match s.login(UserType::User, Some(&AuthPin::from(PIN.to_string()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("login: {e}"),
    }
    s
}
