//! The security context of a request, as the binding layer describes the channel it came on
//! (TS-0003 §7.2.1 step 0, §8.2.2; BRIEF §3(c)).
//!
//! These types sit below the CSE engine so that the bindings (which build them from the
//! (D)TLS peer), the MEF and the engine share one definition without depending on each other.

use m2msec_core::ids::{AeId, CredentialId, CseId};

/// The kind of credential a security association was established with (TS-0003 §8.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// Provisioned symmetric key (TLS-PSK, §8.2.2.1) or a MAF-distributed Kc (§8.2.2.3).
    Psk,
    /// X.509 certificate (§8.2.2.2).
    Certificate,
    /// Raw public key (§8.2.2.2, RFC 7250).
    RawPublicKey,
}

/// The identity a security association is bound to by configuration or by a certificate
/// (TS-0003 §8.2.2; BRIEF §3(c): a single CSE-ID, a single AE-ID, or a list of AE-IDs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundIdentity {
    /// The registree is this CSE.
    Cse(CseId),
    /// The registree is an AE with one of these AE-IDs (a list only with device or Node-ID
    /// certificates).
    Ae(Vec<AeId>),
}

/// An established (D)TLS security association, as the binding layer describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    /// Credential kind.
    pub credential_kind: CredentialKind,
    /// The Credential-ID (TS-0003 §10.4), e.g. `12-<KpsaID>`.
    pub credential_id: CredentialId,
    /// The identity bound by configuration or certificate, if any.
    pub bound: Option<BoundIdentity>,
}

/// The security context of one request (TS-0003 §7.2.1 step 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityContext {
    /// No security association: a plaintext local tool.
    None,
    /// Inside an established security association.
    Association(Association),
}
