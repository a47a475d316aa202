//! Response Status Codes (TS-0004 §6.6, tables 6.6.3.2-1 to 6.6.3.7-1) and the engine's error.
//!
//! Only the codes this CSE can produce are listed; every value was checked against the tables of
//! TS-0004 V3.32.0 (§6.6.3.3 success, §6.6.3.5 originator error, §6.6.3.6 receiver error,
//! §6.6.3.7 network system error). The engine is the layer that answers with response primitives,
//! so its single error type, [`CseError`], carries the RSC it maps to.

use core::fmt;

/// A oneM2M Response Status Code (TS-0004 §6.3.4.2.9 `m2m:responseStatusCode`, §6.6).
/// Serialised as its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum Rsc {
    /// 2000 OK (TS-0004 table 6.6.3.3-1).
    Ok = 2000,
    /// 2001 CREATED.
    Created = 2001,
    /// 2002 DELETED.
    Deleted = 2002,
    /// 2004 UPDATED.
    Updated = 2004,
    /// 4000 BAD_REQUEST (table 6.6.3.5-1).
    BadRequest = 4000,
    /// 4001 RELEASE_VERSION_NOT_SUPPORTED.
    ReleaseVersionNotSupported = 4001,
    /// 4004 NOT_FOUND.
    NotFound = 4004,
    /// 4005 OPERATION_NOT_ALLOWED.
    OperationNotAllowed = 4005,
    /// 4008 REQUEST_TIMEOUT.
    RequestTimeout = 4008,
    /// 4015 UNSUPPORTED_MEDIA_TYPE.
    UnsupportedMediaType = 4015,
    /// 4102 CONTENTS_UNACCEPTABLE.
    ContentsUnacceptable = 4102,
    /// 4103 ORIGINATOR_HAS_NO_PRIVILEGE.
    OriginatorHasNoPrivilege = 4103,
    /// 4105 CONFLICT.
    Conflict = 4105,
    /// 4106 ORIGINATOR_NOT_AUTHENTICATED (TS-0003 §7.2.1, TS-0004 §7.3.2.1).
    OriginatorNotAuthenticated = 4106,
    /// 4107 SECURITY_ASSOCIATION_REQUIRED (TS-0004 §7.3.2.1).
    SecurityAssociationRequired = 4107,
    /// 4108 INVALID_CHILD_RESOURCE_TYPE.
    InvalidChildResourceType = 4108,
    /// 4116 ESPRIM_IMPERSONATION_ERROR (TS-0003 §7.2.2).
    EsprimImpersonationError = 4116,
    /// 4117 ORIGINATOR_HAS_ALREADY_REGISTERED (TS-0004 §7.4.4.2.1, §7.4.5.2.1).
    OriginatorHasAlreadyRegistered = 4117,
    /// 4126 APP_RULE_VALIDATION_FAILED.
    AppRuleValidationFailed = 4126,
    /// 5000 INTERNAL_SERVER_ERROR (table 6.6.3.6-1).
    InternalServerError = 5000,
    /// 5001 NOT_IMPLEMENTED.
    NotImplemented = 5001,
    /// 5103 TARGET_NOT_REACHABLE.
    TargetNotReachable = 5103,
    /// 5106 ALREADY_EXISTS.
    AlreadyExists = 5106,
    /// 5207 NOT_ACCEPTABLE.
    NotAcceptable = 5207,
}

impl Rsc {
    /// Every variant, in numeric order.
    pub const ALL: [Rsc; 24] = [
        Rsc::Ok,
        Rsc::Created,
        Rsc::Deleted,
        Rsc::Updated,
        Rsc::BadRequest,
        Rsc::ReleaseVersionNotSupported,
        Rsc::NotFound,
        Rsc::OperationNotAllowed,
        Rsc::RequestTimeout,
        Rsc::UnsupportedMediaType,
        Rsc::ContentsUnacceptable,
        Rsc::OriginatorHasNoPrivilege,
        Rsc::Conflict,
        Rsc::OriginatorNotAuthenticated,
        Rsc::SecurityAssociationRequired,
        Rsc::InvalidChildResourceType,
        Rsc::EsprimImpersonationError,
        Rsc::OriginatorHasAlreadyRegistered,
        Rsc::AppRuleValidationFailed,
        Rsc::InternalServerError,
        Rsc::NotImplemented,
        Rsc::TargetNotReachable,
        Rsc::AlreadyExists,
        Rsc::NotAcceptable,
    ];

    /// The numeric code.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The variant for a number, if this crate knows it.
    pub fn from_u16(v: u16) -> Option<Rsc> {
        Rsc::ALL.into_iter().find(|r| r.as_u16() == v)
    }

    /// Whether the code is in the 2xxx success classes (TS-0004 §6.6.3.3).
    pub fn is_success(self) -> bool {
        (2000..3000).contains(&self.as_u16())
    }

    /// The name used in TS-0004 §6.6.
    pub fn name(self) -> &'static str {
        match self {
            Rsc::Ok => "OK",
            Rsc::Created => "CREATED",
            Rsc::Deleted => "DELETED",
            Rsc::Updated => "UPDATED",
            Rsc::BadRequest => "BAD_REQUEST",
            Rsc::ReleaseVersionNotSupported => "RELEASE_VERSION_NOT_SUPPORTED",
            Rsc::NotFound => "NOT_FOUND",
            Rsc::OperationNotAllowed => "OPERATION_NOT_ALLOWED",
            Rsc::RequestTimeout => "REQUEST_TIMEOUT",
            Rsc::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Rsc::ContentsUnacceptable => "CONTENTS_UNACCEPTABLE",
            Rsc::OriginatorHasNoPrivilege => "ORIGINATOR_HAS_NO_PRIVILEGE",
            Rsc::Conflict => "CONFLICT",
            Rsc::OriginatorNotAuthenticated => "ORIGINATOR_NOT_AUTHENTICATED",
            Rsc::SecurityAssociationRequired => "SECURITY_ASSOCIATION_REQUIRED",
            Rsc::InvalidChildResourceType => "INVALID_CHILD_RESOURCE_TYPE",
            Rsc::EsprimImpersonationError => "ESPRIM_IMPERSONATION_ERROR",
            Rsc::OriginatorHasAlreadyRegistered => "ORIGINATOR_HAS_ALREADY_REGISTERED",
            Rsc::AppRuleValidationFailed => "APP_RULE_VALIDATION_FAILED",
            Rsc::InternalServerError => "INTERNAL_SERVER_ERROR",
            Rsc::NotImplemented => "NOT_IMPLEMENTED",
            Rsc::TargetNotReachable => "TARGET_NOT_REACHABLE",
            Rsc::AlreadyExists => "ALREADY_EXISTS",
            Rsc::NotAcceptable => "NOT_ACCEPTABLE",
        }
    }
}

impl fmt::Display for Rsc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.as_u16(), self.name())
    }
}

impl serde::Serialize for Rsc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.as_u16())
    }
}

impl<'de> serde::Deserialize<'de> for Rsc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u16::deserialize(d)?;
        Rsc::from_u16(v).ok_or_else(|| serde::de::Error::custom(format!("unknown RSC {v}")))
    }
}

/// A request that failed: the RSC it maps to (TS-0004 §6.6) and a human-readable reason, which
/// the engine returns as the response's content (a string, as TS-0004 §7.2.2.2 error responses
/// allow "additional information").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rsc}: {detail}")]
pub struct CseError {
    /// The status code of the error response.
    pub rsc: Rsc,
    /// Why. Never contains key material.
    pub detail: String,
}

impl CseError {
    /// An error with the given code and reason.
    pub fn new(rsc: Rsc, detail: impl Into<String>) -> Self {
        CseError {
            rsc,
            detail: detail.into(),
        }
    }
    /// 4000 BAD_REQUEST.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(Rsc::BadRequest, detail)
    }
    /// 4004 NOT_FOUND.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(Rsc::NotFound, detail)
    }
    /// 5000 INTERNAL_SERVER_ERROR.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(Rsc::InternalServerError, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_ts_0004_tables() {
        assert_eq!(Rsc::OriginatorNotAuthenticated.as_u16(), 4106);
        assert_eq!(Rsc::SecurityAssociationRequired.as_u16(), 4107);
        assert_eq!(Rsc::EsprimImpersonationError.as_u16(), 4116);
        assert_eq!(Rsc::OriginatorHasAlreadyRegistered.as_u16(), 4117);
        assert_eq!(Rsc::NotAcceptable.as_u16(), 5207);
        for r in Rsc::ALL {
            assert_eq!(Rsc::from_u16(r.as_u16()), Some(r));
        }
        assert!(Rsc::Created.is_success());
        assert!(!Rsc::NotFound.is_success());
    }
}
