//! The security-specific `sec:` data types of TS-0003 clause 12, with their JSON form.
//!
//! These types travel between a MEF and its MEF Client (the MEF Client Command of §8.3.9, whose
//! `cmdDescription` is an attribute of the TS-0032 `<mefClientCmd>` resource) and configure MEF
//! and MAF client and key registration (§8.3.7, §8.8.3, §12.4.1). They are parsed from data sent
//! by the other side, so every type validates on construction *and* on deserialisation, and no
//! input can make them panic.
//!
//! JSON conventions (TS-0004 JSON serialisation of oneM2M types):
//! - enumerations (§12.3) are JSON numbers (`"cmdClassID": 1`), never names;
//! - object keys are the clause-12 element names, spelled exactly as in the tables of §12.4
//!   (`certProvCmdArgs`, `MONodeCmdArgs`, `objectTypeSpecifcArgs`, `SUID`, `URI`, …);
//! - optional elements are omitted when absent (an explicit `null` is read as absent);
//! - unknown keys are rejected (`deny_unknown_fields`); the one tolerated variant is the
//!   corrected spelling `objectTypeSpecificArgs` of §8.3.9.9, read as `objectTypeSpecifcArgs`;
//! - `xs:list` types (`m2m:labels`, `m2m:listOfM2MID`) are JSON arrays of strings.
//!
//! Implementer choices (BRIEF §5): ports are `u16` in 1–65535 although §12.4.2 types them
//! `xs:unsignedByte` (A24); `cmdStatusCode` names come from table 12.3.2.4-1 with the stray
//! spaces removed, numbers only on the wire (A23); `targetID` of `sec:cmdDescription` is 0..1
//! as §8.3.9.4 says, not 1 as table 12.4.4-1 says (A23); the DEV_CFG arguments follow §12.4.8
//! (one `deviceConfigURI`), not the separate `devMgmtID` and `URI` of §8.3.9.8 (A25); the
//! `certSubjectID` check uses the natural mapping Node→Node-ID, CSE→CSE-ID, AE→AE-ID, not the
//! swapped one of §8.3.9.7 (A22).

use core::fmt;
use core::num::NonZeroU16;
use core::str::FromStr;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

pub use crate::duration::{DurationError, XsDuration};
/// `sec:credIDTypeID` (TS-0003 §12.3.2.1), defined with the identifiers.
pub use crate::ids::CredIdTypeId;
/// `sec:credentialID` (TS-0003 §12.2, §10.4), defined with the identifiers.
pub use crate::ids::CredentialId;
/// `sec:relKeyID` (TS-0003 §12.2): `[A-Za-z0-9._-]+`, defined with the identifiers.
pub use crate::ids::RelKeyId;
use crate::ids::{AeId, CseId};
use crate::suid::Suid;
use crate::timestamp::Timestamp;

/// Why a `sec:` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecTypeError {
    /// A number that the enumeration does not define.
    #[error("{type_name}: {value} is not a defined value")]
    UnknownValue {
        /// The XSD type name, e.g. `sec:cmdClassID`.
        type_name: &'static str,
        /// The offending number.
        value: i64,
    },
    /// An empty string or list where a value is required.
    #[error("{kind}: empty")]
    Empty {
        /// What was empty.
        kind: &'static str,
    },
    /// A character that the type does not allow.
    #[error("{kind}: invalid character {ch:?} at byte {pos}")]
    BadChar {
        /// The type.
        kind: &'static str,
        /// The character.
        ch: char,
        /// Its byte offset.
        pos: usize,
    },
    /// A value longer than this implementation accepts.
    #[error("{kind}: too long ({len} bytes, at most {max})")]
    TooLong {
        /// The type.
        kind: &'static str,
        /// The length found.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A port number outside 1–65535 (BRIEF A24).
    #[error("port {0} is outside 1..=65535")]
    Port(i64),
    /// A malformed `sec:deviceConfigURI`.
    #[error("sec:deviceConfigURI: {0}")]
    DeviceConfigUri(&'static str),
    /// `sec:cmdArgs` must hold exactly one of its four elements (TS-0003 §12.4.5).
    #[error("sec:cmdArgs: exactly one of noMoreCmdArgs, certProvCmdArgs, devCfgCmdArgs, MONodeCmdArgs must be present, found {0}")]
    CmdArgsChoice(usize),
    /// `cmdClassID` and the element present in `cmdArgs` disagree (TS-0003 §8.3.9.6–§8.3.9.9).
    #[error("sec:cmdDescription: cmdClassID {class} requires {expected}, cmdArgs holds {found}")]
    ClassMismatch {
        /// The cmdClassID value.
        class: u16,
        /// The element that class requires.
        expected: &'static str,
        /// The element found.
        found: &'static str,
    },
    /// `objectTypeSpecifcArgs` present when it must be absent, or absent when it must be
    /// present (TS-0003 §8.3.9.9.1).
    #[error("sec:MONodeCmdArgs: {0}")]
    MoNodeArgs(&'static str),
}

// ---------------------------------------------------------------------------------------------
// Enumerations (TS-0003 §12.3.2)
// ---------------------------------------------------------------------------------------------

macro_rules! sec_enum {
    (
        $(#[$meta:meta])*
        $name:ident : $xsd:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $spec:literal, )+
        }
    ) => {
        $(#[$meta])*
        ///
        /// Serialised as a JSON number; `Display` writes the name of the specification's table.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde_repr::Serialize_repr, serde_repr::Deserialize_repr,
        )]
        #[repr(u16)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )+
        }

        impl $name {
            /// The XSD type name.
            pub const XSD_TYPE: &'static str = $xsd;

            /// Every defined value, in numeric order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The numeric value.
            pub const fn as_u16(self) -> u16 {
                self as u16
            }

            /// The variant for a numeric value, if defined.
            pub const fn from_u16(v: u16) -> Option<Self> {
                match v {
                    $( $value => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// The name given in the specification's table.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $spec, )+
                }
            }
        }

        impl TryFrom<u16> for $name {
            type Error = SecTypeError;
            fn try_from(v: u16) -> Result<Self, SecTypeError> {
                $name::from_u16(v).ok_or(SecTypeError::UnknownValue {
                    type_name: $xsd,
                    value: i64::from(v),
                })
            }
        }

        impl TryFrom<i64> for $name {
            type Error = SecTypeError;
            fn try_from(v: i64) -> Result<Self, SecTypeError> {
                u16::try_from(v)
                    .ok()
                    .and_then($name::from_u16)
                    .ok_or(SecTypeError::UnknownValue { type_name: $xsd, value: v })
            }
        }

        impl From<$name> for u16 {
            fn from(v: $name) -> u16 {
                v.as_u16()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

sec_enum! {
    /// `sec:devMgmtID` (TS-0003 §12.3.2.2, table 12.3.2.2-1): the device management technology
    /// used for field device configuration.
    DevMgmtId: "sec:devMgmtID" {
        /// 1: OMA DM v1.3.
        OmaDm13 = 1 => "OMA DMv1.3",
        /// 2: OMA DM v2.0.
        OmaDm20 = 2 => "OMA DMv2.0",
        /// 3: OMA LwM2M.
        OmaLwm2m = 3 => "OMA LwM2M",
        /// 4: BBF TR-069.
        BbfTr069 = 4 => "BBF TR-069",
    }
}

sec_enum! {
    /// `sec:cmdClassID` (TS-0003 §12.3.2.3, table 12.3.2.3-1): the class of a MEF Client
    /// Command (§8.3.9.4).
    CmdClassId: "sec:cmdClassID" {
        /// 0: the MEF has no more commands (§8.3.9.6).
        NoMoreCommands = 0 => "NO_MORE_COMMANDS",
        /// 1: perform Certificate Provisioning (§8.3.9.7).
        CertProv = 1 => "CERT_PROV",
        /// 2: perform Device Configuration (§8.3.9.8).
        DevCfg = 2 => "DEV_CFG",
        /// 3: process an MO node (§8.3.9.9).
        MoNode = 3 => "MO_NODE",
    }
}

sec_enum! {
    /// `sec:cmdStatusCode` (TS-0003 §12.3.2.4, table 12.3.2.4-1): the status of a MEF Client
    /// Command (§8.3.9.5).
    ///
    /// Names are those of table 12.3.2.4-1 without the stray spaces of "MEF_CLIENT_CMD_
    /// REPEATED_CMD_ID" and "MEF_CLIENT_CMD_BAD_ ARGUMENTS". 305 is `…_MO_NODE_EXECUTION_ERROR`
    /// there but `…_MO_NODE_PROCESSING_FAILED` in §8.3.9.5.18 (BRIEF A23): only numbers go on
    /// the wire.
    CmdStatusCode: "sec:cmdStatusCode" {
        /// 10: issued by the MEF for the first time (§8.3.9.5.2).
        Issued = 10 => "MEF_CLIENT_CMD_ISSUED",
        /// 11: reissued by the MEF (§8.3.9.5.3).
        Reissued = 11 => "MEF_CLIENT_CMD_REISSUED",
        /// 20: performed successfully (§8.3.9.5.4).
        Ok = 20 => "MEF_CLIENT_CMD_OK",
        /// 40: the cmdID repeats the last one reported (§8.3.9.5.5).
        RepeatedCmdId = 40 => "MEF_CLIENT_CMD_REPEATED_CMD_ID",
        /// 41: the command class is not supported (§8.3.9.5.6).
        ClassNotSupported = 41 => "MEF_CLIENT_CMD_CLASS_NOT_SUPPORTED",
        /// 42: cmdArgs could not be parsed (§8.3.9.5.7).
        BadArguments = 42 => "MEF_CLIENT_CMD_BAD_ARGUMENTS",
        /// 43: an element of cmdArgs has an unacceptable value (§8.3.9.5.8).
        UnacceptableArguments = 43 => "MEF_CLIENT_CMD_UNACCEPTABLE_ARGUMENTS",
        /// 100: Certificate Provisioning server error (§8.3.9.5.9).
        CertProvServerError = 100 => "MEF_CLIENT_CMD_CERT_PROV_SERVER_ERROR",
        /// 101: Certificate Provisioning client error (§8.3.9.5.10).
        CertProvClientError = 101 => "MEF_CLIENT_CMD_CERT_PROV_CLIENT_ERROR",
        /// 201: Device Configuration server error (§8.3.9.5.11).
        DevCfgServerError = 201 => "MEF_CLIENT_CMD_DEV_CFG_SERVER_ERROR",
        /// 202: Device Configuration client error (§8.3.9.5.12).
        DevCfgClientError = 202 => "MEF_CLIENT_CMD_DEV_CFG_CLIENT_ERROR",
        /// 300: no MO node at objectPath (§8.3.9.5.13).
        MoNodeNotFound = 300 => "MEF_CLIENT_CMD_MO_NODE_NOT_FOUND",
        /// 301: the MO node's type differs from objectTypeID (§8.3.9.5.14).
        MoNodeTypeConflict = 301 => "MEF_CLIENT_CMD_MO_NODE_TYPE_CONFLICT",
        /// 302: objectTypeSpecifcArgs could not be parsed (§8.3.9.5.15).
        MoNodeBadArgs = 302 => "MEF_CLIENT_CMD_MO_NODE_BAD_ARGS",
        /// 303: objectTypeSpecifcArgs unacceptable (§8.3.9.5.16).
        MoNodeUnacceptableArgs = 303 => "MEF_CLIENT_CMD_MO_NODE_UNACCEPTABLE_ARGS",
        /// 304: the MO node configuration is inconsistent (§8.3.9.5.17).
        MoNodeInconsistentConfig = 304 => "MEF_CLIENT_CMD_MO_NODE_INCONSISTENT_CONFIG",
        /// 305: MO node processing failed (§8.3.9.5.18, "…_PROCESSING_FAILED" there).
        MoNodeExecutionError = 305 => "MEF_CLIENT_CMD_MO_NODE_EXECUTION_ERROR",
    }
}

impl CmdStatusCode {
    /// Whether the MEF assigns this code (ISSUED, REISSUED); every other code is assigned by
    /// the MEF Client (TS-0003 table 8.3.9.5.1-1).
    pub const fn assigned_by_mef(self) -> bool {
        matches!(self, CmdStatusCode::Issued | CmdStatusCode::Reissued)
    }
}

sec_enum! {
    /// `sec:certProvProtocolID` (TS-0003 §12.3.2.5, table 12.3.2.5-1): the Certificate
    /// Provisioning protocol.
    CertProvProtocolId: "sec:certProvProtocolID" {
        /// 1: EST (§8.3.6.2).
        Est = 1 => "EST",
        /// 2: SCEP (§8.3.6.3).
        Scep = 2 => "SCEP",
    }
}

sec_enum! {
    /// `sec:certSubjectType` (TS-0003 §12.3.2.6, table 12.3.2.6-1): the subject of a
    /// provisioned certificate.
    CertSubjectType: "sec:certSubjectType" {
        /// 1: a Node (TS-0001 §7.1.5).
        NodeId = 1 => "Node-ID",
        /// 2: a CSE (TS-0001 §7.2).
        CseId = 2 => "CSE-ID",
        /// 3: an AE (TS-0001 §7.2).
        AeId = 3 => "AE-ID",
    }
}

sec_enum! {
    /// `sec:objectTypeID` (TS-0003 §12.3.2.7, table 12.3.2.7-1): the `<mgmtObj>`
    /// specialisation of an MO node (TS-0022).
    ///
    /// Table 12.3.2.7-1 writes value 3 as `[MAFClientRefCfg]` and §8.3.9.9.1 as
    /// `[MAFClientCfgReg]`; both mean the `[MAFClientRegCfg]` specialisation (§8.3.9.9.8), which
    /// is the name used here.
    ObjectTypeId: "sec:objectTypeID" {
        /// 1: `[authenticationProfile]` (TS-0022 §7.1.4, §7.2.4).
        AuthenticationProfile = 1 => "[authenticationProfile]",
        /// 2: `[trustAnchorCred]` (TS-0022 §7.1.6, §7.2.6).
        TrustAnchorCred = 2 => "[trustAnchorCred]",
        /// 3: `[MAFClientRegCfg]` (TS-0022 §7.1.7, §7.2.7).
        MafClientRegCfg = 3 => "[MAFClientRegCfg]",
    }
}

// ---------------------------------------------------------------------------------------------
// String-valued building blocks: xs:anyURI, m2m:ID, m2m:labels, m2m:listOfM2MID
// ---------------------------------------------------------------------------------------------

macro_rules! string_serde {
    ($t:ty, $expecting:literal) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(Visitor)
            }
        }
    };
}

/// Longest `xs:anyURI` accepted.
pub const MAX_URI_LEN: usize = 2048;

/// Checks the lexical rules shared by `xs:anyURI` and `m2m:ID` values here: non-empty, at most
/// `max` bytes, no whitespace and no control characters.
fn check_uri_like(kind: &'static str, s: &str, max: usize) -> Result<(), SecTypeError> {
    if s.is_empty() {
        return Err(SecTypeError::Empty { kind });
    }
    if s.len() > max {
        return Err(SecTypeError::TooLong {
            kind,
            len: s.len(),
            max,
        });
    }
    if let Some((pos, ch)) = s
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        return Err(SecTypeError::BadChar { kind, ch, pos });
    }
    Ok(())
}

/// An `xs:anyURI` value (URIs, base URIs and the `fqdn`/`adminFQDN` elements of TS-0003
/// §12.4.2–§12.4.9): a non-empty string of at most [`MAX_URI_LEN`] bytes without whitespace or
/// control characters. It is compared exactly. Whether it points where it should (e.g. "the
/// FQDN of the base URI shall match the FQDN of the MEF", §8.3.9.7) is checked by the procedure
/// with [`AnyUri::host`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnyUri(String);

impl AnyUri {
    /// The URI text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The RFC 3986 scheme (`http` in `http://x`), if the value starts with one.
    pub fn scheme(&self) -> Option<&str> {
        let (scheme, _) = self.0.split_once(':')?;
        let mut chars = scheme.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        (first_ok && rest_ok).then_some(scheme)
    }

    /// The host of a hierarchical URI `scheme://[userinfo@]host[:port][/…]`, without the
    /// brackets of an IPv6 literal; `None` if the value has no authority or an empty host.
    pub fn host(&self) -> Option<&str> {
        self.scheme()?;
        let (_, rest) = self.0.split_once("://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = rest.get(..end)?;
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split_once(']')?.0,
            None => host_port.split(':').next()?,
        };
        (!host.is_empty()).then_some(host)
    }
}

impl FromStr for AnyUri {
    type Err = SecTypeError;
    fn from_str(s: &str) -> Result<Self, SecTypeError> {
        check_uri_like("xs:anyURI", s, MAX_URI_LEN)?;
        Ok(AnyUri(s.to_string()))
    }
}

impl fmt::Display for AnyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(AnyUri, "an xs:anyURI string");

/// An `m2m:ID` (TS-0004 §6.3.3), or the union of `m2m:nodeID` and `m2m:ID` that
/// `certSubjectID` has (TS-0003 §12.4.7): a non-empty string of at most
/// [`crate::ids::MAX_M2M_ID_LEN`] bytes without whitespace or control characters, compared
/// exactly. Parse it further into [`CseId`] or [`AeId`] where the form is known.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct M2mId(String);

impl M2mId {
    /// The identifier text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for M2mId {
    type Err = SecTypeError;
    fn from_str(s: &str) -> Result<Self, SecTypeError> {
        check_uri_like("m2m:ID", s, crate::ids::MAX_M2M_ID_LEN)?;
        Ok(M2mId(s.to_string()))
    }
}

impl fmt::Display for M2mId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(M2mId, "an m2m:ID string");

/// Longest single label accepted.
pub const MAX_LABEL_LEN: usize = 256;

/// `m2m:labels` (TS-0004 §6.3.3): a list of at least one `xs:token`, each a key (`printers`)
/// or a key-value pair (`color:red`). As an `xs:list` member a token cannot contain whitespace.
/// JSON: an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Labels(Vec<String>);

impl Labels {
    /// Validates the list: at least one label, each non-empty, at most [`MAX_LABEL_LEN`] bytes,
    /// without whitespace or control characters.
    pub fn new(labels: Vec<String>) -> Result<Self, SecTypeError> {
        if labels.is_empty() {
            return Err(SecTypeError::Empty { kind: "m2m:labels" });
        }
        for l in &labels {
            check_uri_like("m2m:labels", l, MAX_LABEL_LEN)?;
        }
        Ok(Labels(labels))
    }

    /// The labels, in order.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl TryFrom<Vec<String>> for Labels {
    type Error = SecTypeError;
    fn try_from(v: Vec<String>) -> Result<Self, SecTypeError> {
        Labels::new(v)
    }
}

impl From<Labels> for Vec<String> {
    fn from(l: Labels) -> Vec<String> {
        l.0
    }
}

/// `m2m:listOfM2MID` (TS-0004 §6.3.3): a list of at least one `m2m:ID`. JSON: an array of
/// strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<M2mId>", into = "Vec<M2mId>")]
pub struct ListOfM2mId(Vec<M2mId>);

impl ListOfM2mId {
    /// Validates the list (at least one member).
    pub fn new(ids: Vec<M2mId>) -> Result<Self, SecTypeError> {
        if ids.is_empty() {
            return Err(SecTypeError::Empty {
                kind: "m2m:listOfM2MID",
            });
        }
        Ok(ListOfM2mId(ids))
    }

    /// The identifiers, in order.
    pub fn as_slice(&self) -> &[M2mId] {
        &self.0
    }
}

impl TryFrom<Vec<M2mId>> for ListOfM2mId {
    type Error = SecTypeError;
    fn try_from(v: Vec<M2mId>) -> Result<Self, SecTypeError> {
        ListOfM2mId::new(v)
    }
}

impl From<ListOfM2mId> for Vec<M2mId> {
    fn from(l: ListOfM2mId) -> Vec<M2mId> {
        l.0
    }
}

/// A TCP/UDP port of `sec:clientRegCfg` (TS-0003 §12.4.2): 1–65535. The table types ports as
/// `xs:unsignedByte` (0–255), which cannot hold 443 or 5683; this follows BRIEF A24. JSON: a
/// number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u16")]
pub struct Port(NonZeroU16);

impl Port {
    /// The port, if it is not 0.
    pub const fn new(port: u16) -> Result<Self, SecTypeError> {
        match NonZeroU16::new(port) {
            Some(p) => Ok(Port(p)),
            None => Err(SecTypeError::Port(0)),
        }
    }

    /// The port number.
    pub const fn get(self) -> u16 {
        self.0.get()
    }
}

impl TryFrom<i64> for Port {
    type Error = SecTypeError;
    fn try_from(v: i64) -> Result<Self, SecTypeError> {
        u16::try_from(v)
            .ok()
            .and_then(NonZeroU16::new)
            .map(Port)
            .ok_or(SecTypeError::Port(v))
    }
}

impl From<Port> for u16 {
    fn from(p: Port) -> u16 {
        p.get()
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

// ---------------------------------------------------------------------------------------------
// sec:deviceConfigURI (TS-0003 §12.2)
// ---------------------------------------------------------------------------------------------

/// `sec:deviceConfigURI` (TS-0003 §12.2, table 12.2-1): a `sec:devMgmtID` and the URI of a
/// device management server separated by `:`, e.g. `1:http://server.dmprovider.com`. Parsed
/// into the pair (BRIEF A25) by splitting at the first `:`; the number must be canonical
/// decimal (no sign, no leading zero). JSON: the string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceConfigUri {
    dev_mgmt_id: DevMgmtId,
    uri: AnyUri,
}

impl DeviceConfigUri {
    /// Pairs a DM technology with a DM server URI.
    pub fn new(dev_mgmt_id: DevMgmtId, uri: AnyUri) -> Self {
        DeviceConfigUri { dev_mgmt_id, uri }
    }

    /// The device management technology.
    pub fn dev_mgmt_id(&self) -> DevMgmtId {
        self.dev_mgmt_id
    }

    /// The URI of the device management server.
    pub fn uri(&self) -> &AnyUri {
        &self.uri
    }
}

impl FromStr for DeviceConfigUri {
    type Err = SecTypeError;
    fn from_str(s: &str) -> Result<Self, SecTypeError> {
        let (id, uri) = s.split_once(':').ok_or(SecTypeError::DeviceConfigUri(
            "missing ':' after the devMgmtID",
        ))?;
        let canonical = !id.is_empty()
            && id.len() <= 5
            && id.bytes().all(|b| b.is_ascii_digit())
            && !(id.len() > 1 && id.starts_with('0'));
        if !canonical {
            return Err(SecTypeError::DeviceConfigUri(
                "devMgmtID must be a decimal number",
            ));
        }
        let n: u16 = id
            .parse()
            .map_err(|_| SecTypeError::DeviceConfigUri("devMgmtID must be a decimal number"))?;
        Ok(DeviceConfigUri {
            dev_mgmt_id: DevMgmtId::try_from(n)?,
            uri: uri.parse()?,
        })
    }
}

impl fmt::Display for DeviceConfigUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.dev_mgmt_id.as_u16(), self.uri)
    }
}
string_serde!(
    DeviceConfigUri,
    "a sec:deviceConfigURI string such as 1:http://server.dmprovider.com"
);

// ---------------------------------------------------------------------------------------------
// Registration configuration containers (TS-0003 §12.4.1–§12.4.3)
// ---------------------------------------------------------------------------------------------

/// `sec:clientRegCfg` (TS-0003 §12.4.2, table 12.4.2-1): the content of the `mefClientRegCfg`
/// and `mafClientRegCfg` containers (§12.4.1), configured by device management or by hand and
/// read by MEF/MAF Client Registration (§8.3.7.2, §8.8.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegCfg {
    /// `expirationTime` (0..1).
    #[serde(
        rename = "expirationTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expiration_time: Option<Timestamp>,
    /// `labels` (0..1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// `fqdn` (1): the FQDN of the MEF or MAF.
    pub fqdn: AnyUri,
    /// `adminFQDN` (1).
    #[serde(rename = "adminFQDN")]
    pub admin_fqdn: AnyUri,
    /// `httpPort` (0..1).
    #[serde(rename = "httpPort", default, skip_serializing_if = "Option::is_none")]
    pub http_port: Option<Port>,
    /// `coapPort` (0..1).
    #[serde(rename = "coapPort", default, skip_serializing_if = "Option::is_none")]
    pub coap_port: Option<Port>,
    /// `websocketPort` (0..1).
    #[serde(
        rename = "websocketPort",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub websocket_port: Option<Port>,
}

impl ClientRegCfg {
    /// A configuration with the two mandatory elements and nothing else.
    pub fn new(fqdn: AnyUri, admin_fqdn: AnyUri) -> Self {
        ClientRegCfg {
            expiration_time: None,
            labels: None,
            fqdn,
            admin_fqdn,
            http_port: None,
            coap_port: None,
            websocket_port: None,
        }
    }
}

/// `sec:keyRegCfg` (TS-0003 §12.4.3, table 12.4.3-1): the content of the `mefKeyRegCfg` and
/// `mafKeyRegCfg` containers (§12.4.1), read by MEF/MAF Key Registration (§8.3.7.3, §8.8.3.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRegCfg {
    /// `expirationTime` (0..1).
    #[serde(
        rename = "expirationTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expiration_time: Option<Timestamp>,
    /// `labels` (0..1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// `adminFQDN` (1).
    #[serde(rename = "adminFQDN")]
    pub admin_fqdn: AnyUri,
    /// `SUID` (1).
    #[serde(rename = "SUID")]
    pub suid: Suid,
    /// `targetIDs` (0..1): `m2m:listOfM2MID`.
    #[serde(rename = "targetIDs", default, skip_serializing_if = "Option::is_none")]
    pub target_ids: Option<ListOfM2mId>,
}

impl KeyRegCfg {
    /// A configuration with the two mandatory elements and nothing else.
    pub fn new(admin_fqdn: AnyUri, suid: Suid) -> Self {
        KeyRegCfg {
            expiration_time: None,
            labels: None,
            admin_fqdn,
            suid,
            target_ids: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MEF Client Command (TS-0003 §12.4.4–§12.4.10, §8.3.9)
// ---------------------------------------------------------------------------------------------

/// `sec:noMoreCmdArgs` (TS-0003 §12.4.6): arguments of NO_MORE_COMMANDS (§8.3.9.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoMoreCmdArgs {
    /// `retryDuration` (1): when to retry MEF Client Command Retrieve; never negative.
    #[serde(rename = "retryDuration")]
    pub retry_duration: XsDuration,
}

/// `sec:certProvCmdArgs` (TS-0003 §12.4.7): arguments of CERT_PROV (§8.3.9.7, which calls the
/// element `certProvArgs` and its first member `certProvProtocol`; clause 12's names are used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertProvCmdArgs {
    /// `certProvProtocolID` (1): EST or SCEP.
    #[serde(rename = "certProvProtocolID")]
    pub cert_prov_protocol_id: CertProvProtocolId,
    /// `URI` (1): the base URI of the Certificate Provisioning protocol.
    #[serde(rename = "URI")]
    pub uri: AnyUri,
    /// `certSubjectType` (1), assigned by the MEF (BRIEF A22; §8.3.9.7 says "MEF Client").
    #[serde(rename = "certSubjectType")]
    pub cert_subject_type: CertSubjectType,
    /// `certSubjectID` (1): the Node-ID, CSE-ID or AE-ID of the certificate's subject.
    #[serde(rename = "certSubjectID")]
    pub cert_subject_id: M2mId,
}

impl CertProvCmdArgs {
    /// The `certSubjectID` verification of TS-0003 §8.3.9.7 step 4 with the natural mapping
    /// (BRIEF A22): a CSE subject needs a CSE-ID, an AE subject an AE-ID ([`CseId`], [`AeId`],
    /// any of their forms). For a Node subject any `m2m:nodeID` is accepted except values in
    /// the SP-relative or absolute form of CSE-/AE-IDs (leading `/`), which are not Node-IDs.
    pub fn subject_id_matches_type(&self) -> bool {
        let id = self.cert_subject_id.as_str();
        match self.cert_subject_type {
            CertSubjectType::NodeId => !id.starts_with('/'),
            CertSubjectType::CseId => id.parse::<CseId>().is_ok(),
            CertSubjectType::AeId => id.parse::<AeId>().is_ok(),
        }
    }
}

/// `sec:devCfgCmdArgs` (TS-0003 §12.4.8): arguments of DEV_CFG (§8.3.9.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevCfgCmdArgs {
    /// `deviceConfigURI` (1): DM technology and DM server URI, e.g.
    /// `1:http://server.dmprovider.com`.
    #[serde(rename = "deviceConfigURI")]
    pub device_config_uri: DeviceConfigUri,
}

/// `sec:authProfileMONodeArgs` (TS-0003 §12.4.10): the object-type-specific arguments for an
/// `[authenticationProfile]` MO node (§8.3.9.9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthProfileMoNodeArgs {
    /// `SUID` (1): the SUID expected in the addressed MO node.
    #[serde(rename = "SUID")]
    pub suid: Suid,
}

/// `sec:MONodeCmdArgs` (TS-0003 §12.4.9): arguments of MO_NODE (§8.3.9.9).
///
/// `objectTypeSpecifcArgs` (spelled so in table 12.4.9-1; the corrected spelling is accepted on
/// input) is present exactly when `objectTypeID` is `[authenticationProfile]` (§8.3.9.9.1). Its
/// JSON value is the `sec:authProfileMONodeArgs` object itself, as table 12.4.9-1 types it, not
/// wrapped in an `authProfileMONodeArgs` member as the prose of §8.3.9.9.2 suggests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawMoNodeCmdArgs")]
pub struct MoNodeCmdArgs {
    #[serde(rename = "objectPath")]
    object_path: AnyUri,
    #[serde(rename = "objectTypeID")]
    object_type_id: ObjectTypeId,
    #[serde(
        rename = "objectTypeSpecifcArgs",
        skip_serializing_if = "Option::is_none"
    )]
    object_type_specific_args: Option<AuthProfileMoNodeArgs>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMoNodeCmdArgs {
    #[serde(rename = "objectPath")]
    object_path: AnyUri,
    #[serde(rename = "objectTypeID")]
    object_type_id: ObjectTypeId,
    #[serde(
        rename = "objectTypeSpecifcArgs",
        alias = "objectTypeSpecificArgs",
        default
    )]
    object_type_specific_args: Option<AuthProfileMoNodeArgs>,
}

impl TryFrom<RawMoNodeCmdArgs> for MoNodeCmdArgs {
    type Error = SecTypeError;
    fn try_from(r: RawMoNodeCmdArgs) -> Result<Self, SecTypeError> {
        MoNodeCmdArgs::new(r.object_path, r.object_type_id, r.object_type_specific_args)
    }
}

impl MoNodeCmdArgs {
    /// Validates that `args` is present exactly for `[authenticationProfile]` (§8.3.9.9.1).
    pub fn new(
        object_path: AnyUri,
        object_type_id: ObjectTypeId,
        args: Option<AuthProfileMoNodeArgs>,
    ) -> Result<Self, SecTypeError> {
        match (object_type_id, &args) {
            (ObjectTypeId::AuthenticationProfile, None) => Err(SecTypeError::MoNodeArgs(
                "objectTypeSpecifcArgs is required for [authenticationProfile]",
            )),
            (ObjectTypeId::TrustAnchorCred | ObjectTypeId::MafClientRegCfg, Some(_)) => {
                Err(SecTypeError::MoNodeArgs(
                    "objectTypeSpecifcArgs is only allowed for [authenticationProfile]",
                ))
            }
            _ => Ok(MoNodeCmdArgs {
                object_path,
                object_type_id,
                object_type_specific_args: args,
            }),
        }
    }

    /// An `[authenticationProfile]` command for the MO node at `object_path`, expecting `suid`.
    pub fn authentication_profile(object_path: AnyUri, suid: Suid) -> Self {
        MoNodeCmdArgs {
            object_path,
            object_type_id: ObjectTypeId::AuthenticationProfile,
            object_type_specific_args: Some(AuthProfileMoNodeArgs { suid }),
        }
    }

    /// `objectPath`: the path of the MO node to process.
    pub fn object_path(&self) -> &AnyUri {
        &self.object_path
    }

    /// `objectTypeID`: the MO node's `<mgmtObj>` specialisation.
    pub fn object_type_id(&self) -> ObjectTypeId {
        self.object_type_id
    }

    /// `objectTypeSpecifcArgs`: present exactly for `[authenticationProfile]`.
    pub fn object_type_specific_args(&self) -> Option<&AuthProfileMoNodeArgs> {
        self.object_type_specific_args.as_ref()
    }
}

/// `sec:cmdArgs` (TS-0003 §12.4.5): an `xs:choice` of the arguments of one command class.
///
/// Table 12.4.5-1 allows "no more than one" element, but every class requires its element
/// (§8.3.9.6–§8.3.9.9), so exactly one is required. JSON: an object with exactly one of the
/// keys `noMoreCmdArgs`, `certProvCmdArgs`, `devCfgCmdArgs`, `MONodeCmdArgs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawCmdArgs")]
pub enum CmdArgs {
    /// `noMoreCmdArgs`, for NO_MORE_COMMANDS.
    #[serde(rename = "noMoreCmdArgs")]
    NoMore(NoMoreCmdArgs),
    /// `certProvCmdArgs`, for CERT_PROV.
    #[serde(rename = "certProvCmdArgs")]
    CertProv(CertProvCmdArgs),
    /// `devCfgCmdArgs`, for DEV_CFG.
    #[serde(rename = "devCfgCmdArgs")]
    DevCfg(DevCfgCmdArgs),
    /// `MONodeCmdArgs`, for MO_NODE.
    #[serde(rename = "MONodeCmdArgs")]
    MoNode(MoNodeCmdArgs),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCmdArgs {
    #[serde(rename = "noMoreCmdArgs", default)]
    no_more: Option<NoMoreCmdArgs>,
    #[serde(rename = "certProvCmdArgs", default)]
    cert_prov: Option<CertProvCmdArgs>,
    #[serde(rename = "devCfgCmdArgs", default)]
    dev_cfg: Option<DevCfgCmdArgs>,
    #[serde(rename = "MONodeCmdArgs", default)]
    mo_node: Option<MoNodeCmdArgs>,
}

impl TryFrom<RawCmdArgs> for CmdArgs {
    type Error = SecTypeError;
    fn try_from(r: RawCmdArgs) -> Result<Self, SecTypeError> {
        let n = usize::from(r.no_more.is_some())
            + usize::from(r.cert_prov.is_some())
            + usize::from(r.dev_cfg.is_some())
            + usize::from(r.mo_node.is_some());
        if n != 1 {
            return Err(SecTypeError::CmdArgsChoice(n));
        }
        r.no_more
            .map(CmdArgs::NoMore)
            .or(r.cert_prov.map(CmdArgs::CertProv))
            .or(r.dev_cfg.map(CmdArgs::DevCfg))
            .or(r.mo_node.map(CmdArgs::MoNode))
            .ok_or(SecTypeError::CmdArgsChoice(0))
    }
}

impl CmdArgs {
    /// The command class these arguments belong to.
    pub const fn class_id(&self) -> CmdClassId {
        match self {
            CmdArgs::NoMore(_) => CmdClassId::NoMoreCommands,
            CmdArgs::CertProv(_) => CmdClassId::CertProv,
            CmdArgs::DevCfg(_) => CmdClassId::DevCfg,
            CmdArgs::MoNode(_) => CmdClassId::MoNode,
        }
    }

    /// The JSON/XML element name of the chosen member.
    pub const fn element_name(&self) -> &'static str {
        Self::element_for(self.class_id())
    }

    /// The `sec:cmdArgs` member a command class requires.
    pub const fn element_for(class: CmdClassId) -> &'static str {
        match class {
            CmdClassId::NoMoreCommands => "noMoreCmdArgs",
            CmdClassId::CertProv => "certProvCmdArgs",
            CmdClassId::DevCfg => "devCfgCmdArgs",
            CmdClassId::MoNode => "MONodeCmdArgs",
        }
    }
}

/// `sec:cmdDescription` (TS-0003 §12.4.4): the MEF Client Command, an attribute of the TS-0032
/// `<mefClientCmd>` resource (§8.3.9.4).
///
/// `cmdClassID` is derived from the [`CmdArgs`] variant, so the two cannot disagree; on input a
/// disagreement is an error. `targetID` is optional (§8.3.9.4 and BRIEF A23, although table
/// 12.4.4-1 says 1): it names the CSE or AE a command applies to when the MEF Client acts for
/// several.
///
/// Use `serde` for strict parsing. A MEF Client that must report *why* a command failed to
/// parse uses [`CmdDescription::parse_for_client`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawCmdDescription")]
pub struct CmdDescription {
    args: CmdArgs,
    target_id: Option<M2mId>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCmdDescription {
    #[serde(rename = "cmdClassID")]
    class_id: CmdClassId,
    #[serde(rename = "cmdArgs")]
    args: CmdArgs,
    #[serde(rename = "targetID", default)]
    target_id: Option<M2mId>,
}

impl TryFrom<RawCmdDescription> for CmdDescription {
    type Error = SecTypeError;
    fn try_from(r: RawCmdDescription) -> Result<Self, SecTypeError> {
        check_class(r.class_id, &r.args)?;
        Ok(CmdDescription {
            args: r.args,
            target_id: r.target_id,
        })
    }
}

fn check_class(class: CmdClassId, args: &CmdArgs) -> Result<(), SecTypeError> {
    if args.class_id() == class {
        Ok(())
    } else {
        Err(SecTypeError::ClassMismatch {
            class: class.as_u16(),
            expected: CmdArgs::element_for(class),
            found: args.element_name(),
        })
    }
}

impl Serialize for CmdDescription {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = if self.target_id.is_some() { 3 } else { 2 };
        let mut st = serializer.serialize_struct("cmdDescription", len)?;
        st.serialize_field("cmdClassID", &self.class_id())?;
        st.serialize_field("cmdArgs", &self.args)?;
        if let Some(t) = &self.target_id {
            st.serialize_field("targetID", t)?;
        }
        st.end()
    }
}

/// Why a MEF Client could not accept a `cmdDescription`, in the order of TS-0003 §8.3.9.2
/// step 5 and §8.3.9.6 step 3, with the `cmdStatusCode` to report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdRejection {
    /// `cmdDescription` itself (an object with `cmdClassID`, `cmdArgs` and an optional valid
    /// `targetID`) could not be parsed: §8.3.9.2 step 5a, no status code; the client exits or
    /// retries.
    #[error("cmdDescription could not be parsed: {0}")]
    Malformed(String),
    /// `cmdClassID` is not a class this implementation knows: report CLASS_NOT_SUPPORTED
    /// (§8.3.9.2 step 5c).
    #[error("cmdClassID {0} is not supported")]
    UnknownClass(i64),
    /// `cmdArgs` could not be parsed for the class: report BAD_ARGUMENTS (§8.3.9.6 step 3).
    #[error("cmdArgs of a {class} command could not be parsed: {reason}")]
    BadArguments {
        /// The command class.
        class: CmdClassId,
        /// What was wrong.
        reason: String,
    },
    /// An MO_NODE command whose `objectPath` and `objectTypeID` parsed but whose
    /// `objectTypeSpecifcArgs` did not (missing, superfluous or malformed). The client first
    /// checks the path (MO_NODE_NOT_FOUND) and the type (MO_NODE_TYPE_CONFLICT), §8.3.9.9.1
    /// step 4, then reports MO_NODE_BAD_ARGS (§8.3.9.9.2 step 1).
    #[error("objectTypeSpecifcArgs of the MO node {object_path} could not be parsed: {reason}")]
    MoNodeBadArgs {
        /// `objectPath`.
        object_path: AnyUri,
        /// `objectTypeID`.
        object_type_id: ObjectTypeId,
        /// What was wrong.
        reason: String,
    },
}

impl CmdRejection {
    /// The `cmdStatusCode` the MEF Client reports for this rejection; `None` for
    /// [`CmdRejection::Malformed`], where no command was identified.
    pub fn status_code(&self) -> Option<CmdStatusCode> {
        match self {
            CmdRejection::Malformed(_) => None,
            CmdRejection::UnknownClass(_) => Some(CmdStatusCode::ClassNotSupported),
            CmdRejection::BadArguments { .. } => Some(CmdStatusCode::BadArguments),
            CmdRejection::MoNodeBadArgs { .. } => Some(CmdStatusCode::MoNodeBadArgs),
        }
    }
}

/// The leading part of `MONodeCmdArgs`, to tell MO_NODE_BAD_ARGS from BAD_ARGUMENTS.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoNodeHead {
    #[serde(rename = "objectPath")]
    object_path: AnyUri,
    #[serde(rename = "objectTypeID")]
    object_type_id: ObjectTypeId,
    #[serde(
        rename = "objectTypeSpecifcArgs",
        alias = "objectTypeSpecificArgs",
        default
    )]
    _args: Option<serde_json::Value>,
}

impl CmdDescription {
    /// A command description; the class follows from `args`.
    pub fn new(args: CmdArgs, target_id: Option<M2mId>) -> Self {
        CmdDescription { args, target_id }
    }

    /// `cmdClassID`.
    pub const fn class_id(&self) -> CmdClassId {
        self.args.class_id()
    }

    /// `cmdArgs`.
    pub fn args(&self) -> &CmdArgs {
        &self.args
    }

    /// `targetID`, if the command names the entity it applies to.
    pub fn target_id(&self) -> Option<&M2mId> {
        self.target_id.as_ref()
    }

    /// Parses a received `cmdDescription` as a MEF Client must (TS-0003 §8.3.9.2 step 5,
    /// §8.3.9.6 step 3, §8.3.9.9.2 step 1), so that a failure maps to the right
    /// `cmdStatusCode` via [`CmdRejection::status_code`]. Accepts exactly what the strict
    /// `Deserialize` accepts.
    pub fn parse_for_client(value: &serde_json::Value) -> Result<Self, CmdRejection> {
        let malformed = |m: &str| CmdRejection::Malformed(m.to_string());
        let obj = value
            .as_object()
            .ok_or_else(|| malformed("not a JSON object"))?;
        if let Some(k) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "cmdClassID" | "cmdArgs" | "targetID"))
        {
            return Err(CmdRejection::Malformed(format!("unknown element {k:?}")));
        }
        let class_n = obj
            .get("cmdClassID")
            .ok_or_else(|| malformed("missing cmdClassID"))?
            .as_i64()
            .ok_or_else(|| malformed("cmdClassID is not an integer"))?;
        let args_v = obj
            .get("cmdArgs")
            .ok_or_else(|| malformed("missing cmdArgs"))?;
        let target_id = match obj.get("targetID") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(
                M2mId::deserialize(v)
                    .map_err(|e| CmdRejection::Malformed(format!("targetID: {e}")))?,
            ),
        };
        let class =
            CmdClassId::try_from(class_n).map_err(|_| CmdRejection::UnknownClass(class_n))?;
        let bad = |reason: String| CmdRejection::BadArguments { class, reason };
        match CmdArgs::deserialize(args_v) {
            Ok(args) => {
                check_class(class, &args).map_err(|e| bad(e.to_string()))?;
                Ok(CmdDescription { args, target_id })
            }
            Err(e) => {
                let reason = e.to_string();
                if class == CmdClassId::MoNode {
                    let only_mo = args_v
                        .as_object()
                        .filter(|o| o.len() == 1)
                        .and_then(|o| o.get("MONodeCmdArgs"));
                    if let Some(head) = only_mo.and_then(|v| MoNodeHead::deserialize(v).ok()) {
                        return Err(CmdRejection::MoNodeBadArgs {
                            object_path: head.object_path,
                            object_type_id: head.object_type_id,
                            reason,
                        });
                    }
                }
                Err(bad(reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_uri_host() {
        let h = |s: &str| s.parse::<AnyUri>().unwrap().host().map(str::to_string);
        assert_eq!(
            h("http://server.dmprovider.com").as_deref(),
            Some("server.dmprovider.com")
        );
        assert_eq!(
            h("https://u:p@mef.example.com:8443/.well-known/est").as_deref(),
            Some("mef.example.com")
        );
        assert_eq!(
            h("coap://[2001:db8::1]:5684/x").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            h("http://mef.example.com?x#y").as_deref(),
            Some("mef.example.com")
        );
        assert_eq!(h("mef.example.com"), None);
        assert_eq!(h("urn:x:y"), None);
        assert_eq!(h("http://"), None);
        assert_eq!(h("1http://x"), None);
        assert_eq!(h("http://[::1"), None);
    }

    #[test]
    fn enum_try_from_edges() {
        assert!(CmdClassId::try_from(-1i64).is_err());
        assert!(CmdClassId::try_from(65536i64 + 1).is_err());
        assert_eq!(CmdClassId::try_from(3u16), Ok(CmdClassId::MoNode));
        assert_eq!(
            CmdStatusCode::MoNodeExecutionError.to_string(),
            "MEF_CLIENT_CMD_MO_NODE_EXECUTION_ERROR"
        );
        assert!(CmdStatusCode::Reissued.assigned_by_mef());
        assert!(!CmdStatusCode::Ok.assigned_by_mef());
    }
}
