//! The MEF's primitives on the wire (JSON content of oneM2M request and response primitives).
//!
//! TS-0003 gives the information elements of each procedure (tables 8.3.5.2.x, §8.3.9, §12.4)
//! but leaves resources and their JSON form to TS-0032, which is not part of our references
//! (BRIEF §3(a) step 7: mapping **[I]**). The choices, one place for all of them:
//!
//! | Procedure (TS-0003) | Primitive | Target (`to`) | Content root |
//! |---|---|---|---|
//! | MEF Client Registration (§8.3.5.2.3) | CREATE, `ty` = [`TY_MEF_CLIENT_REG`] | [`MEF_BASE`] | `mefClientReg` |
//! | Registration Update / De-registration (§8.3.5.2.5–6) | UPDATE / DELETE | `mef/<MEFClientRegID>` | `mefClientReg` |
//! | Command Retrieve / Update (§8.3.4.6, §8.3.9) | RETRIEVE / UPDATE | `mef/<MEFClientRegID>/cmd` | `mefClientCmd` |
//! | IBC credential enrolment (seed 001, BRIEF A32) | CREATE (`ty` = [`TY_IBC_ENROL`]) then UPDATE | `mef/<MEFClientRegID>/ibc` | `ibcEnrol` / `ibcCred` |
//! | MEF Key Registration (§8.3.5.2.7) | CREATE, `ty` = [`TY_MEF_KEY_REG`] | [`MEF_BASE`] | `mefKeyReg` |
//! | Key Retrieval / Update / De-registration (§8.3.5.2.8–10) | RETRIEVE / UPDATE / DELETE | `mef/keys/<RelativeKeyID>` | `mefKeyReg` |
//! | Legacy retrieval (§8.3.2.1 step 6) | RETRIEVE | `fetchCredentials/<KeID>/<SUID>` | [`FetchCredentialsResponse`] (A30) |
//! | Change feed of a target (project-defined, issue 9 item 8) | RETRIEVE | [`CHANGES`]`/<cursor>` or [`CHANGES`]`/head` | `mefChanges` ([`ChangeFeed`]) |
//! | Enrolee-ID reservation (project-defined, issue 9 item 1) | RETRIEVE | [`ENROLEES`]`/<AE-ID-Stem>` | `mefEnrolee` ([`EnroleeReservation`]) |
//!
//! The last two are **[I]** resources of this project that TS-0003 does not have: only a
//! configured target client (a CSE authenticated at the MEF by its own credential) may retrieve
//! them, and each answers for that client alone. The change feed lists, after a cursor, the
//! enrolments committed, de-registered and revoked of the devices that name the client among
//! their Enrolment Targets, so the CSE drops a revoked KeID's cached key and closes its
//! sessions within its polling interval; `head` answers the current cursor with no rows (where
//! a reader starts). The reservation says whether a non-revoked device provisioned for that
//! client has the stem as its Enrolee-ID (bare, SP-relative `/<cse>/<stem>` or `/<stem>`, or
//! absolute), so the CSE refuses a registration of that AE-ID by another credential
//! (TS-0003 §7.2.1, §8.3).
//!
//! The resource type numbers are **project-defined** until TS-0032's are checked; they are
//! only used in `ty` of CREATE. Element names are TS-0003's information element names in
//! lowerCamelCase (`expirationTime`, `labels`, `adminFQDN`, `SUID`, `targetIDs`), and clause 12
//! types where TS-0003 defines one (`sec:cmdDescription`, `m2m:timestamp`, `m2m:suid`).
//!
//! Secrets are typed at the moment they are parsed: the SSK is an [`Ssk`], key values and
//! fetched credentials are [`SecretBytes`]; both zeroize on drop and print redacted, so no type
//! here can leak a key through `{:?}` (tested below).

use serde::{Deserialize, Serialize};

use m2msec_core::eccsi::Ssk;
use m2msec_core::ids::{AeIdStem, EnroleeId, Fqdn, KeId, KeyId, RelKeyId, TargetId};
use m2msec_core::sec::CmdDescription;
use m2msec_core::secret::SecretBytes;
use m2msec_core::timestamp::Timestamp;

/// Resource type of `<mefClientReg>` (project-defined, see the module docs).
pub const TY_MEF_CLIENT_REG: u64 = 10_001;
/// Resource type of `<mefKeyReg>` (project-defined).
pub const TY_MEF_KEY_REG: u64 = 10_002;
/// Resource type of `<mefClientCmd>` (project-defined).
pub const TY_MEF_CLIENT_CMD: u64 = 10_003;
/// Resource type of the IBC enrolment request (project-defined; a POST without `ty` would be a
/// NOTIFY in TS-0009).
pub const TY_IBC_ENROL: u64 = 10_004;
/// The MEF's base resource: CSE-relative `mef`, HTTP path `/mef`.
pub const MEF_BASE: &str = "mef";
/// The legacy retrieval path prefix (TS-0003 §8.3.2.1 step 6).
pub const FETCH_CREDENTIALS: &str = "fetchCredentials";
/// The change feed of a target client (project-defined, see the module docs).
pub const CHANGES: &str = "mef/changes";
/// The Enrolee-ID reservation query of a target client (project-defined).
pub const ENROLEES: &str = "mef/enrolees";
/// Most feed rows the MEF looks at for one page.
pub const CHANGES_PAGE: usize = 500;

/// MEF Client Registration request (TS-0003 table 8.3.5.2.3-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientRegRequest {
    /// Proposed expiry of the registration; the MEF may shorten it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<Timestamp>,
    /// Labels (0..1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// The administrating stakeholder's FQDN.
    #[serde(rename = "adminFQDN")]
    pub admin_fqdn: Fqdn,
    /// The Enrolee's own ID (its AE-ID or CSE-ID, seed 001's ID1 when IBC enrolment follows).
    #[serde(rename = "enroleeID", default, skip_serializing_if = "Option::is_none")]
    pub enrolee_id: Option<EnroleeId>,
}

/// A child resource reference (TS-0004 `m2m:childResourceRef`: `nm`, `typ`, `val`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildRef {
    /// Resource name.
    pub nm: String,
    /// Resource type.
    pub typ: u64,
    /// Resource identifier (the `to` for it).
    pub val: String,
}

/// How target keys derive from Ke; defined beside the key schedule.
pub use m2msec_core::kdf::KeyDerivation;

/// `<mefClientReg>` representation (TS-0003 table 8.3.5.2.3-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientReg {
    /// MEFClientRegID (the resource identifier).
    #[serde(rename = "MEFClientRegID")]
    pub reg_id: String,
    /// Accepted expiry.
    pub expiration_time: Timestamp,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// MEF Client ID: the Enrolee-ID the MEF assigned (its AE-ID or CSE-ID).
    #[serde(rename = "MEFClientID")]
    pub client_id: EnroleeId,
    /// adminFQDN.
    #[serde(rename = "adminFQDN")]
    pub admin_fqdn: Fqdn,
    /// KeID of the enrolment key this session established (TS-0003 §10.3.4).
    #[serde(rename = "keID")]
    pub ke_id: KeId,
    /// Enrolment Expiry: the end of Ke's lifetime (TS-0003 §10.7).
    pub enrolment_expiry: Timestamp,
    /// IBC credential enrolment indication (seed 001 step 2): the MEF will run it.
    pub ibc_enrolment: bool,
    /// How the keys of the Enrolment Targets derive from Ke (project-defined, BRIEF A9/A7), so
    /// the Enrolee derives what the MEF serves.
    #[serde(default)]
    pub key_derivation: KeyDerivation,
    /// childResource: the `<mefClientCmd>` when the MEF has a command (TS-0003 §8.3.4.6).
    #[serde(rename = "ch", default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildRef>,
}

/// `<mefClientCmd>` representation (TS-0003 §8.3.9.4, table 8.3.9.4-2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCmd {
    /// cmdID.
    #[serde(rename = "cmdID")]
    pub cmd_id: String,
    /// cmdDescription (`sec:cmdDescription`), present on retrieve responses.
    #[serde(
        rename = "cmdDescription",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<serde_json::Value>,
    /// cmdStatusCode (`sec:cmdStatusCode`, a number).
    #[serde(rename = "cmdStatusCode")]
    pub status: u16,
}

impl ClientCmd {
    /// The parsed command description, as a MEF Client parses it (§8.3.9.5).
    pub fn parsed(&self) -> Option<CmdDescription> {
        self.description
            .as_ref()
            .and_then(|d| CmdDescription::parse_for_client(d).ok())
    }
}

/// IBC enrolment request (seed 001 step 3; BRIEF A32): the Enrolee's ID1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IbcEnrolRequest {
    /// ID1: the Enrolee's CSE-ID or AE-ID.
    pub id1: EnroleeId,
}

/// IBC credential (seed 001 step 6): (ID2, Sk = (SSK, PVT), MPK = KPAK), hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IbcCredential {
    /// ID2 = `<MEF-FQDN>|<expiry m2m:timestamp>|<ID1>` (A32).
    pub id2: String,
    /// SSK, 32 bytes hex; typed (zeroizing, redacted) as it is parsed.
    pub ssk: Ssk,
    /// PVT, uncompressed point hex.
    pub pvt: String,
    /// KPAK, uncompressed point hex.
    pub kpak: String,
    /// The expiry embedded in ID2.
    pub expiry: Timestamp,
}

/// IBC enrolment result report (seed 001 step 6: "the Enrolee stores them and sends success").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IbcReport {
    /// True when the credential validated (RFC 6507 §5.1.2) and is stored.
    pub success: bool,
}

/// The MEF's last response of an exchange (TS-0003 §8.3.2.1 step 16).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndOfExchange {
    /// Always true.
    pub end_of_enrolment_exchange: bool,
    /// KeID committed.
    #[serde(rename = "keID")]
    pub ke_id: KeId,
    /// Enrolment Expiry.
    pub enrolment_expiry: Timestamp,
}

/// MEF Key Registration request (TS-0003 table 8.3.5.2.7-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyRegRequest {
    /// Proposed expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<Timestamp>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// adminFQDN.
    #[serde(rename = "adminFQDN")]
    pub admin_fqdn: Fqdn,
    /// SUID (`m2m:suid`, a number).
    #[serde(rename = "SUID")]
    pub suid: u8,
    /// targetIDs: who may retrieve the key.
    #[serde(rename = "targetIDs", default, skip_serializing_if = "Option::is_none")]
    pub target_ids: Option<Vec<TargetId>>,
    /// Key Value (base64), when self-generated; absent: Kc from the session's
    /// `EXPORTER-oneM2M-Connection` export (BRIEF A10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_value: Option<SecretBytes>,
}

/// `<mefKeyReg>` representation (TS-0003 tables 8.3.5.2.7-2, 8.3.5.2.8-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyReg {
    /// RelativeKeyID.
    #[serde(rename = "relativeKeyID")]
    pub relative_key_id: RelKeyId,
    /// Key Identifier = RelativeKeyID@MEF-FQDN.
    #[serde(rename = "keyID")]
    pub key_id: KeyId,
    /// Accepted expiry.
    pub expiration_time: Timestamp,
    /// Source MEF Client ID.
    #[serde(rename = "sourceMEFClientID")]
    pub source_client_id: EnroleeId,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// adminFQDN.
    #[serde(rename = "adminFQDN")]
    pub admin_fqdn: Fqdn,
    /// SUID.
    #[serde(rename = "SUID")]
    pub suid: u8,
    /// targetIDs.
    #[serde(rename = "targetIDs")]
    pub target_ids: Vec<TargetId>,
    /// Key Value (base64): only in Key Retrieval responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_value: Option<SecretBytes>,
}

/// Legacy `/fetchCredentials` response (TS-0003 tables 8.3.2.1-5 and -6; field names are
/// project-defined, BRIEF A30).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FetchCredentialsResponse {
    /// Status.
    pub status: bool,
    /// Credential (base64), when status is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<SecretBytes>,
    /// EnroleeID, when status is true.
    #[serde(rename = "enroleeID", default, skip_serializing_if = "Option::is_none")]
    pub enrolee_id: Option<EnroleeId>,
    /// Lifetime: the credential's expiry (never after Ke's, TS-0003 §10.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Timestamp>,
    /// ErrorString, when status is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_string: Option<String>,
}

/// One change of the feed (project-defined, see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChangeEvent {
    /// Sequence number.
    pub seq: i64,
    /// `enrolled`, `deregistered` or `revoked`.
    pub event: crate::store::ChangeKind,
    /// The device's Enrolee-ID.
    #[serde(rename = "enroleeID")]
    pub enrolee_id: EnroleeId,
    /// The KeID that became valid (`enrolled`).
    #[serde(rename = "keID", default, skip_serializing_if = "Option::is_none")]
    pub ke_id: Option<KeId>,
    /// The KeID that is no longer valid (a replaced, de-registered or revoked enrolment).
    #[serde(rename = "endedKeID", default, skip_serializing_if = "Option::is_none")]
    pub ended_ke_id: Option<KeId>,
}

/// A page of a target's change feed (`mefChanges`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChangeFeed {
    /// The cursor to ask with next.
    pub next: i64,
    /// More changes follow at once.
    pub more: bool,
    /// The cursor was too old (or from another store): forget everything learned from this MEF
    /// and go on from `next`.
    pub reset: bool,
    /// The changes, oldest first.
    #[serde(default)]
    pub changes: Vec<ChangeEvent>,
}

/// Whether an AE-ID-Stem is the Enrolee-ID of a device provisioned for the asking target
/// (`mefEnrolee`, project-defined).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnroleeReservation {
    /// The stem asked for.
    #[serde(rename = "enroleeID")]
    pub enrolee_id: AeIdStem,
    /// True if reserved.
    pub reserved: bool,
}

/// Wraps `value` under its content root, e.g. `{"mefClientReg": {...}}`.
pub fn wrap<T: Serialize>(root: &str, value: &T) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert(
        root.to_string(),
        serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
    );
    serde_json::Value::Object(m)
}

/// Why a primitive's content is not the resource expected. A malformed identifier in it is a
/// [`WireError::Content`] whose source names the identifier kind (`core::ids::IdError`'s text):
/// the MEF answers BAD_REQUEST (4000) with this text, a client refuses the answer.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// No content.
    #[error("content {root} is required")]
    Missing {
        /// The content root expected.
        root: String,
    },
    /// Not one JSON object with one member.
    #[error("content must be one object {{\"{root}\": ...}}")]
    Shape {
        /// The content root expected.
        root: String,
    },
    /// Another root.
    #[error("content root must be {root}")]
    Root {
        /// The content root expected.
        root: String,
    },
    /// The resource does not parse (a missing or unknown field, a malformed identifier,
    /// timestamp or secret).
    #[error("{root}: {source}")]
    Content {
        /// The content root.
        root: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
}

/// Unwraps the content root `root` of `pc` into `T`.
pub fn unwrap<T: for<'de> Deserialize<'de>>(
    root: &str,
    pc: Option<&serde_json::Value>,
) -> Result<T, WireError> {
    let root_s = || root.to_string();
    let pc = pc.ok_or_else(|| WireError::Missing { root: root_s() })?;
    let obj = pc
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| WireError::Shape { root: root_s() })?;
    let inner = obj
        .get(root)
        .ok_or_else(|| WireError::Root { root: root_s() })?;
    serde_json::from_value(inner.clone()).map_err(|source| WireError::Content {
        root: root_s(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// Every way a key's bytes could show up in text: hex (either case) of any 4-byte window,
    /// and standard base64 of the key and of every 3-byte-aligned 6-byte window.
    fn leaks(text: &str, key: &[u8]) -> Vec<String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut needles = vec![b64.encode(key)];
        for w in key.windows(4) {
            needles.push(hex::encode(w));
            needles.push(hex::encode_upper(w));
        }
        for i in (0..key.len().saturating_sub(6)).step_by(3) {
            needles.push(b64.encode(&key[i..i + 6]).trim_end_matches('=').to_string());
        }
        needles.into_iter().filter(|n| text.contains(n)).collect()
    }

    /// Issue 10 item 6: every wire type that carries a secret, parsed from the wire as a peer
    /// sends it, prints with `{:?}` and `{:#?}` without any byte of the key.
    #[test]
    fn no_wire_type_prints_its_secret() {
        let b64 = base64::engine::general_purpose::STANDARD;
        // A valid SSK (a scalar in [1, q-1]) and a key value with distinct bytes.
        let ssk: Vec<u8> = (1..=32).collect();
        let kv: Vec<u8> = (0xa0..0xc0).collect();
        let ts = "20301231T235959";
        let ibc: IbcCredential = serde_json::from_value(serde_json::json!({
            "id2": format!("mef.example|{ts}|Cdev"),
            "ssk": hex::encode(&ssk),
            "pvt": "04",
            "kpak": "04",
            "expiry": ts,
        }))
        .unwrap();
        let ibc_upper: IbcCredential = serde_json::from_value(serde_json::json!({
            "id2": "x", "ssk": hex::encode_upper(&ssk), "pvt": "04", "kpak": "04", "expiry": ts,
        }))
        .unwrap();
        assert_eq!(ibc.ssk, ibc_upper.ssk);
        assert_eq!(&ibc.ssk.to_bytes()[..], &ssk[..]);
        let req: KeyRegRequest = serde_json::from_value(serde_json::json!({
            "adminFQDN": "a.example", "SUID": 22, "keyValue": b64.encode(&kv),
        }))
        .unwrap();
        assert_eq!(req.key_value.as_ref().unwrap().expose_secret(), &kv[..]);
        let reg: KeyReg = serde_json::from_value(serde_json::json!({
            "relativeKeyID": "r", "keyID": "r@m", "expirationTime": ts,
            "sourceMEFClientID": "Cdev", "adminFQDN": "a", "SUID": 22, "targetIDs": ["//x/y"],
            "keyValue": b64.encode(&kv),
        }))
        .unwrap();
        let fetched: FetchCredentialsResponse = serde_json::from_value(serde_json::json!({
            "status": true, "credential": b64.encode(&kv), "enroleeID": "Cdev", "lifetime": ts,
        }))
        .unwrap();
        assert_eq!(
            fetched.credential.as_ref().unwrap().expose_secret(),
            &kv[..]
        );
        let texts = [
            (format!("{ibc:?}{ibc:#?}{ibc_upper:?}"), &ssk),
            (format!("{req:?}{req:#?}"), &kv),
            (format!("{reg:?}{reg:#?}"), &kv),
            (format!("{fetched:?}{fetched:#?}"), &kv),
        ];
        for (text, key) in texts {
            assert_eq!(leaks(&text, key), Vec::<String>::new(), "{text}");
            assert!(text.contains("redacted"), "{text}");
        }
        // The wire form is unchanged: the same JSON goes back out.
        let out = serde_json::to_value(&ibc).unwrap();
        assert_eq!(out["ssk"], hex::encode(&ssk));
        let out = serde_json::to_value(&fetched).unwrap();
        assert_eq!(out["credential"], b64.encode(&kv));
        // Malformed secrets are refused at parse time.
        for bad in ["zz", "00", &"00".repeat(32), &"ff".repeat(32)] {
            let v =
                serde_json::json!({"id2": "x", "ssk": bad, "pvt": "", "kpak": "", "expiry": ts});
            assert!(serde_json::from_value::<IbcCredential>(v).is_err(), "{bad}");
        }
        let v = serde_json::json!({"status": true, "credential": "***"});
        assert!(serde_json::from_value::<FetchCredentialsResponse>(v).is_err());
    }

    /// Issue 10 item 6: identifier fields are `core::ids` types, and the JSON a peer sends comes
    /// back out byte for byte (each type prints the text it parsed).
    #[test]
    fn identifiers_keep_their_wire_text() {
        let ts = "20301231T235959";
        let ke = format!("{}@mef.sp.example", "ab".repeat(16));
        let texts = [
            serde_json::json!({"mefClientReg": {
                "MEFClientRegID": "mcr-0011223344556677", "expirationTime": ts,
                "MEFClientID": "/cse-in/Cdev1", "adminFQDN": "admin.sp.example", "keID": ke,
                "enrolmentExpiry": ts, "ibcEnrolment": true, "keyDerivation": "10.3.7-ascii",
            }}),
            serde_json::json!({"mefKeyReg": {
                "relativeKeyID": "my-key_name", "keyID": "my-key_name@mef.sp.example",
                "expirationTime": ts, "sourceMEFClientID": "//sp.example/S563423",
                "adminFQDN": "admin.sp.example", "SUID": 42,
                "targetIDs": ["//sp.example/cse-in", "//sp.example/cse-in/Cae1", "maf.sp.example"],
            }}),
            serde_json::json!({"mefChanges": {"next": 3, "more": false, "reset": false, "changes": [
                {"seq": 2, "event": "enrolled", "enroleeID": "cse-mn", "keID": ke},
                {"seq": 3, "event": "revoked", "enroleeID": "Cdev1", "endedKeID": ke},
            ]}}),
            serde_json::json!({"mefEnrolee": {"enroleeID": "Cdev1", "reserved": true}}),
        ];
        for v in texts {
            let out = match v
                .as_object()
                .and_then(|o| o.keys().next())
                .map(String::as_str)
            {
                Some("mefClientReg") => wrap(
                    "mefClientReg",
                    &unwrap::<ClientReg>("mefClientReg", Some(&v)).unwrap(),
                ),
                Some("mefKeyReg") => wrap(
                    "mefKeyReg",
                    &unwrap::<KeyReg>("mefKeyReg", Some(&v)).unwrap(),
                ),
                Some("mefChanges") => wrap(
                    "mefChanges",
                    &unwrap::<ChangeFeed>("mefChanges", Some(&v)).unwrap(),
                ),
                _ => wrap(
                    "mefEnrolee",
                    &unwrap::<EnroleeReservation>("mefEnrolee", Some(&v)).unwrap(),
                ),
            };
            assert_eq!(
                serde_json::to_string(&out).unwrap(),
                serde_json::to_string(&v).unwrap()
            );
        }
    }

    /// Issue 10 item 6: a malformed identifier in any request or answer is refused where it is
    /// parsed, with an error whose source is the identifier's (the MEF answers it with 4000).
    #[test]
    fn malformed_identifiers_are_refused_at_parse_time() {
        let cases = [
            ("mefClientReg", serde_json::json!({"adminFQDN": "a b"})),
            (
                "mefClientReg",
                serde_json::json!({"adminFQDN": "a.example", "enroleeID": "C/x"}),
            ),
            (
                "mefKeyReg",
                serde_json::json!({"adminFQDN": "a.example", "SUID": 22, "targetIDs": ["//x"]}),
            ),
            ("ibcEnrol", serde_json::json!({"id1": "not an id"})),
            (
                "mefEnrolee",
                serde_json::json!({"enroleeID": "xdev", "reserved": true}),
            ),
        ];
        for (root, body) in cases {
            let v = serde_json::json!({ root: body });
            let e = match root {
                "mefClientReg" => unwrap::<ClientRegRequest>(root, Some(&v)).err(),
                "mefKeyReg" => unwrap::<KeyRegRequest>(root, Some(&v)).err(),
                "ibcEnrol" => unwrap::<IbcEnrolRequest>(root, Some(&v)).err(),
                _ => unwrap::<EnroleeReservation>(root, Some(&v)).err(),
            };
            match e {
                Some(WireError::Content { source, .. }) => {
                    assert!(source.is_data(), "{root}: {source}")
                }
                other => panic!("{root} {body}: {other:?}"),
            }
        }
        let bad_feed = serde_json::json!({"mefChanges": {"next": 1, "more": false, "reset": false,
            "changes": [{"seq": 1, "event": "revoked", "enroleeID": "Cdev1", "endedKeID": "zz@m"}]}});
        assert!(unwrap::<ChangeFeed>("mefChanges", Some(&bad_feed)).is_err());
        let bad_fetch = serde_json::json!({"status": true, "enroleeID": "//sp.example"});
        assert!(serde_json::from_value::<FetchCredentialsResponse>(bad_fetch).is_err());
    }
}
