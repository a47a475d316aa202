//! The Enrolment Target side (TS-0003 §8.3.2.1 step 6, §8.3.4.3): a registrar CSE that
//! receives a `psk_identity` it does not hold, whose FQDN is its MEF's, retrieves the key from
//! the MEF over its own authenticated channel (`RETRIEVE /fetchCredentials/<KeID>/<SUID>` with
//! From = its CSE-ID), and completes the handshake with it. The CSE caches the key for the
//! lifetime the MEF returns (never beyond the Enrolment Expiry, §10.7).
//!
//! [`MefKeySource`] implements the bindings' [`RemoteKeySource`]: it runs inside the TLS
//! handshake callback, so each fetch is bounded by a deadline and runs on a thread of its own.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use m2msec_bindings::client::HttpClient;
use m2msec_bindings::service::{RemoteKey, RemoteKeySource};
use m2msec_core::ids::{AeId, CredentialId, CseId, Fqdn, KeId, KpsaId};
use m2msec_cse::{BoundIdentity, Operation, RequestPrimitive, Rsc};
use m2msec_tls::{ClientConfig, Psk, PskIdentity, TlsClient};

use crate::wire::{FetchCredentialsResponse, FETCH_CREDENTIALS};

/// How a CSE reaches its MEF.
#[derive(Debug, Clone)]
pub struct MefLink {
    /// MEF host and port.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The MEF's FQDN (SNI, and the FQDN part of KeIDs it serves).
    pub fqdn: Fqdn,
    /// This CSE's psk_identity at the MEF.
    pub psk_identity: PskIdentity,
    /// This CSE's PSK at the MEF.
    pub psk: Psk,
    /// This CSE's absolute CSE-ID: the originator of the retrieval, and the Enrolment Target ID
    /// of the §10.3.7 derivation.
    pub cse_id: String,
    /// SUID of the keys requested (22: RSPF symmetric key for SAEF).
    pub suid: u8,
    /// Deadline of one fetch (handshake plus request).
    pub timeout: Duration,
}

/// Fetches keys from the MEF for a CSE's TLS-PSK handshakes.
#[derive(Clone)]
pub struct MefKeySource {
    link: Arc<MefLink>,
    client: TlsClient,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not a KeID of this MEF.
    #[error("{0} is not a KeID of this MEF")]
    NotOurs(String),
    /// Transport or timeout.
    #[error("MEF unreachable: {0}")]
    Transport(String),
    /// The MEF refused (Status=False).
    #[error("MEF refused ({0}): {1}")]
    Refused(u16, String),
    /// Malformed answer.
    #[error("MEF answer: {0}")]
    Protocol(String),
}

/// A key fetched from the MEF.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The key.
    pub key: Psk,
    /// EnroleeID.
    pub enrolee_id: String,
    /// Lifetime end.
    pub expires: SystemTime,
}

impl std::fmt::Debug for MefKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MefKeySource")
            .field("mef", &self.link.fqdn)
            .field("cse_id", &self.link.cse_id)
            .finish_non_exhaustive()
    }
}

impl MefKeySource {
    /// A source for `link`.
    pub fn new(link: MefLink) -> Result<Self, m2msec_tls::Error> {
        let client = TlsClient::new(ClientConfig::psk(
            link.psk_identity.clone(),
            link.psk.clone(),
        ))?;
        Ok(MefKeySource {
            link: Arc::new(link),
            client,
        })
    }

    /// Whether `psk_identity` is a KeID issued by this CSE's MEF (§8.3.4.3: "the FQDN equals
    /// the MEF's").
    pub fn is_ours(&self, psk_identity: &str) -> Option<KeId> {
        let id: KeId = psk_identity.parse().ok()?;
        (id.mef_fqdn() == &self.link.fqdn).then_some(id)
    }

    /// One retrieval (async).
    pub async fn fetch_async(&self, ke_id: &KeId) -> Result<Fetched, FetchError> {
        let l = &self.link;
        let ch = self
            .client
            .connect(&l.host, l.port, Some(l.fqdn.as_str()))
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        let mut http = HttpClient::new(ch, l.fqdn.as_str())
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        let req = RequestPrimitive::new(
            Operation::Retrieve,
            format!("{FETCH_CREDENTIALS}/{ke_id}/{}", l.suid),
            Some(&l.cse_id),
            format!("fetch-{}", ke_id.relative()),
        );
        let r = http
            .send(&req)
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        let body: FetchCredentialsResponse =
            r.pc.clone()
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or_else(|| {
                    FetchError::Protocol(format!("status {} without a body", r.rsc.as_u16()))
                })?;
        if r.rsc != Rsc::Ok || !body.status {
            return Err(FetchError::Refused(
                r.rsc.as_u16(),
                body.error_string.unwrap_or_default(),
            ));
        }
        let key = body
            .credential
            .and_then(|c| B64.decode(c).ok())
            .map(zeroize::Zeroizing::new)
            .ok_or_else(|| FetchError::Protocol("no credential".into()))?;
        let key = Psk::new(&key).map_err(|e| FetchError::Protocol(e.to_string()))?;
        let lifetime = body
            .lifetime
            .ok_or_else(|| FetchError::Protocol("no lifetime".into()))?;
        let expires = UNIX_EPOCH + Duration::from_secs(lifetime.to_unix().max(0) as u64);
        if expires <= SystemTime::now() {
            return Err(FetchError::Refused(
                4103,
                "the credential has expired".into(),
            ));
        }
        Ok(Fetched {
            key,
            enrolee_id: body
                .enrolee_id
                .ok_or_else(|| FetchError::Protocol("no enroleeID".into()))?,
            expires,
        })
    }

    /// One retrieval, blocking the calling thread (on a thread of its own, with the deadline).
    pub fn fetch_blocking(&self, ke_id: &KeId) -> Result<Fetched, FetchError> {
        let me = self.clone();
        let id = ke_id.clone();
        crate::blocking::run(self.link.timeout, async move { me.fetch_async(&id).await })
            .map_err(|e| FetchError::Transport(e.to_string()))?
    }
}

impl RemoteKeySource for MefKeySource {
    fn fetch(&self, psk_identity: &str) -> Option<RemoteKey> {
        let ke_id = self.is_ours(psk_identity)?;
        match self.fetch_blocking(&ke_id) {
            Ok(f) => {
                let kpsa_id: KpsaId = psk_identity.parse().ok()?;
                let bound = if let Ok(ae) = f.enrolee_id.parse::<AeId>() {
                    Some(BoundIdentity::Ae(vec![ae]))
                } else {
                    f.enrolee_id.parse::<CseId>().ok().map(BoundIdentity::Cse)
                };
                tracing::info!(ke_id = %ke_id, enrolee = %f.enrolee_id, "key retrieved from the MEF");
                Some(RemoteKey {
                    key: f.key,
                    credential_id: CredentialId::for_kpsa(&kpsa_id),
                    bound,
                    expires: Some(f.expires),
                })
            }
            Err(e) => {
                tracing::warn!(ke_id = %ke_id, error = %e, "MEF key retrieval failed");
                None
            }
        }
    }
}
