//! The CoAP binding of oneM2M primitives (TS-0008 V3.9.0) as pure functions: no sockets, no
//! async. The CoAP wire format itself is `coap-lite`'s; this module maps its [`Packet`]s to and
//! from primitives.
//!
//! Receiver side (the CSE):
//! - [`request_from_coap`]: a CoAP request to a [`RequestPrimitive`]: method (TS-0008 §6.2.1
//!   table 6.2.1-1, POST is CREATE with a oneM2M-TY option and NOTIFY without), Uri-Path to To
//!   (§6.2.2.3 table 6.2.2.3-1: `~` SP-relative, `_` absolute), Uri-Query to the query-carried
//!   parameters (§6.2.2.3), the oneM2M options of §6.2.2.4 (table 6.2.2.4.0-1) and the payload
//!   (§6.2.3). Every defect is a [`CoapRejection`]: the oneM2M error, answered like any other
//!   response primitive, and the CoAP response code to use.
//! - [`response_to_coap`]: a [`ResponsePrimitive`] to a CoAP response (code per §6.2.4 table
//!   6.2.4-1, oneM2M-RSC always present, Location-Path of a created resource per §6.2.3,
//!   Max-Age 0 per §6.4 so that CoAP caches never answer for the CSE).
//!
//! Originator side (`m2msec request`, tests): [`request_to_coap`] and [`response_from_coap`].
//!
//! Block-wise transfer (RFC 7959, TS-0008 §6.5): [`block2_slice`] cuts a response payload into
//! Block2 blocks. Block1 (large requests) is not supported: a request carrying Block1 is
//! answered 4.02 Bad Option, as RFC 7252 §5.4.1 requires for an unrecognised critical option.
//!
//! Only the JSON serialisation is implemented (`application/json` 50,
//! `application/vnd.onem2m-res+json` 10001); XML and CBOR payloads are UNSUPPORTED_MEDIA_TYPE.

use coap_lite::block_handler::BlockValue;
use coap_lite::option_value::{OptionValueU16, OptionValueU32};
use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use serde_json::{Map, Value};

use m2msec_proto::primitive::{MAX_FROM_LEN, MAX_RQI_LEN, MAX_TO_LEN};
use m2msec_proto::{CseError, Operation, RequestPrimitive, ResponsePrimitive, Rsc};

use crate::http::{QueryFields, Rejection};

/// Content-Format `application/json` (TS-0008 §6.2.2.2, RFC 7252 §12.3).
pub const CF_JSON: u16 = 50;
/// Content-Format `application/vnd.onem2m-res+json` (TS-0008 table 6.2.2.2-1).
pub const CF_ONEM2M_RES_JSON: u16 = 10001;
/// Content-Formats of the serialisations this binding does not implement (XML 41, CBOR 60 and
/// the oneM2M XML/CBOR types of table 6.2.2.2-1); any other unknown value is treated alike.
const CF_OTHER_KNOWN: [u16; 12] = [
    41, 60, 10014, 10002, 10003, 10006, 10007, 10008, 10009, 10010, 10011, 10012,
];

/// Block size used for Block2 when the client asks for none (RFC 7959 SZX 6).
pub const DEFAULT_BLOCK_SIZE: usize = 1024;

/// Most Uri-Path / Uri-Query options accepted in one request.
const MAX_URI_OPTIONS: usize = 64;

/// CoAP option numbers of TS-0008 table 6.2.2.4.0-1. All are critical, unsafe-to-forward
/// (odd numbers), so a receiver that does not know one must refuse the request (RFC 7252
/// §5.4.1).
pub mod opt {
    /// oneM2M-FR: From (§6.2.2.4.1).
    pub const FR: u16 = 279;
    /// oneM2M-RQI: Request Identifier (§6.2.2.4.2).
    pub const RQI: u16 = 283;
    /// oneM2M-OT: Originating Timestamp (§6.2.2.4.4).
    pub const OT: u16 = 259;
    /// oneM2M-RQET: Request Expiration Timestamp (§6.2.2.4.5).
    pub const RQET: u16 = 291;
    /// oneM2M-RSET: Result Expiration Timestamp (§6.2.2.4.6).
    pub const RSET: u16 = 295;
    /// oneM2M-OET: Operation Execution Time (§6.2.2.4.7).
    pub const OET: u16 = 299;
    /// oneM2M-RTURI: notificationURI of Response Type (§6.2.2.4.8).
    pub const RTURI: u16 = 263;
    /// oneM2M-EC: Event Category (§6.2.2.4.9).
    pub const EC: u16 = 303;
    /// oneM2M-RSC: Response Status Code (§6.2.2.4.10).
    pub const RSC: u16 = 307;
    /// oneM2M-GID: Group Request Identifier (§6.2.2.4.11).
    pub const GID: u16 = 311;
    /// oneM2M-TY: Resource Type (§6.2.2.4.12).
    pub const TY: u16 = 267;
    /// oneM2M-CTO: Content Offset (§6.2.2.4.13).
    pub const CTO: u16 = 319;
    /// oneM2M-CTS: Content Status (§6.2.2.4.14).
    pub const CTS: u16 = 323;
    /// oneM2M-ATI: Assigned Token Identifiers (§6.2.2.4.15).
    pub const ATI: u16 = 327;
    /// oneM2M-RVI: Release Version Indicator (§6.2.2.4.16).
    pub const RVI: u16 = 271;
    /// oneM2M-VSI: Vendor Information (§6.2.2.4.17).
    pub const VSI: u16 = 331;
    /// oneM2M-GTM: Group Request Target Members (§6.2.2.4.18).
    pub const GTM: u16 = 335;
    /// oneM2M-AUS: Authorization Signatures (§6.2.2.4.19).
    pub const AUS: u16 = 339;
    /// oneM2M-ASRI: Authorization Signature Request Information (§6.2.2.4.20).
    pub const ASRI: u16 = 275;
}

/// oneM2M options carrying request parameters this CSE recognises but does not implement, with
/// the short name reported as NOT_IMPLEMENTED (TS-0004 §7.3.2.1).
const UNSUPPORTED_OPTIONS: [(u16, &str); 8] = [
    (opt::RQET, "rqet"),
    (opt::RSET, "rset"),
    (opt::OET, "oet"),
    (opt::GID, "gid"),
    (opt::RTURI, "rt"),
    (opt::GTM, "gtm"),
    (opt::AUS, "aus"),
    (opt::ASRI, "asri"),
];

/// oneM2M options accepted and ignored in a request: Event Category (a transport hint) and the
/// response-only Content Offset / Content Status / Assigned Token Identifiers. Vendor
/// Information (oneM2M-VSI) is mapped and echoed in the response.
const IGNORED_OPTIONS: [u16; 4] = [opt::EC, opt::CTO, opt::CTS, opt::ATI];

/// A request the binding could not turn into a primitive: the oneM2M error (with the request
/// identifier when one was readable) and the CoAP response code to answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct CoapRejection {
    /// The oneM2M error and request identifier.
    pub rejection: Rejection,
    /// The CoAP response code: table 6.2.4-1's code for the RSC, except for defects the CoAP
    /// layer itself names (4.02 Bad Option, 4.13 Request Entity Too Large, 5.05 Proxying Not
    /// Supported).
    pub code: ResponseType,
}

impl CoapRejection {
    fn new(rsc: Rsc, rqi: &str, detail: impl Into<String>) -> Self {
        CoapRejection {
            rejection: Rejection {
                error: CseError::new(rsc, detail),
                rqi: rqi.to_string(),
            },
            code: coap_code(rsc, None),
        }
    }

    fn with_code(mut self, code: ResponseType) -> Self {
        self.code = code;
        self
    }

    /// The error response as a CoAP response (no header type, message ID or token yet): the
    /// error primitive with `fr` set to the answering CSE-ID, under `self.code`, its payload in
    /// Content-Format `cf` (see [`response_format`]).
    pub fn to_packet(&self, cse_id: Option<&str>, cf: u16) -> Packet {
        let resp = self.rejection.clone().into_response(cse_id);
        let mut p = response_to_coap(&resp, None, cf);
        p.header.code = MessageClass::Response(self.code);
        p
    }
}

/// TS-0008 table 6.2.4-1: the CoAP response code of a Response Status Code. 2000 OK is 2.05
/// Content, except in answer to a NOTIFY, where it is 2.04 Changed.
pub fn coap_code(rsc: Rsc, op: Option<Operation>) -> ResponseType {
    use ResponseType as C;
    match rsc {
        Rsc::Ok if op == Some(Operation::Notify) => C::Changed,
        Rsc::Ok => C::Content,
        Rsc::Created => C::Created,
        Rsc::Deleted => C::Deleted,
        Rsc::Updated => C::Changed,
        Rsc::BadRequest | Rsc::ContentsUnacceptable | Rsc::AlreadyExists => C::BadRequest,
        Rsc::ReleaseVersionNotSupported | Rsc::NotImplemented => C::NotImplemented,
        Rsc::NotFound | Rsc::TargetNotReachable => C::NotFound,
        Rsc::OperationNotAllowed => C::MethodNotAllowed,
        Rsc::RequestTimeout => C::GatewayTimeout,
        Rsc::UnsupportedMediaType => C::UnsupportedContentFormat,
        Rsc::OriginatorHasNoPrivilege
        | Rsc::Conflict
        | Rsc::OriginatorNotAuthenticated
        | Rsc::SecurityAssociationRequired
        | Rsc::InvalidChildResourceType
        | Rsc::EsprimImpersonationError
        | Rsc::OriginatorHasAlreadyRegistered
        | Rsc::AppRuleValidationFailed => C::Forbidden,
        Rsc::InternalServerError => C::InternalServerError,
        Rsc::NotAcceptable => C::NotAcceptable,
    }
}

/// Uri-Path options for a To parameter (TS-0008 §6.2.2.3, table 6.2.2.3-1): absolute
/// `//sp/x` is `_`, `sp`, `x`; SP-relative `/cse/x` is `~`, `cse`, `x`; CSE-relative `cb/x` is
/// `cb`, `x`.
pub fn uri_path_from_to(to: &str) -> Vec<String> {
    let (first, rest) = if let Some(r) = to.strip_prefix("//") {
        (Some("_"), r)
    } else if let Some(r) = to.strip_prefix('/') {
        (Some("~"), r)
    } else {
        (None, to)
    };
    first
        .into_iter()
        .chain(rest.split('/'))
        .map(str::to_string)
        .collect()
}

/// The To parameter from Uri-Path options (the reverse of [`uri_path_from_to`]). None if there
/// is no segment naming a resource, a segment is empty or holds '/', or the result is too long.
pub fn to_from_uri_path<S: AsRef<str>>(segments: &[S]) -> Option<String> {
    let (prefix, rest) = match segments.first().map(AsRef::as_ref) {
        Some("_") => ("//", segments.get(1..)?),
        Some("~") => ("/", segments.get(1..)?),
        Some(_) => ("", segments),
        None => return None,
    };
    if rest.is_empty() {
        return None;
    }
    let mut to = String::from(prefix);
    for (i, s) in rest.iter().enumerate() {
        let s = s.as_ref();
        if s.is_empty() || s.contains('/') || s.chars().any(char::is_control) {
            return None;
        }
        if i > 0 {
            to.push('/');
        }
        to.push_str(s);
        if to.len() > MAX_TO_LEN {
            return None;
        }
    }
    Some(to)
}

/// Every value of option `num`.
fn values(pkt: &Packet, num: u16) -> impl Iterator<Item = &Vec<u8>> {
    pkt.get_option(CoapOption::from(num)).into_iter().flatten()
}

/// An unsigned integer option value (RFC 7252 §3.2 `uint`, at most `max_len` bytes).
fn uint_value(v: &[u8], max_len: usize) -> Option<u64> {
    if v.len() > max_len || v.len() > 8 {
        return None;
    }
    Some(v.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// The big-endian minimal encoding of an unsigned integer option value.
fn uint_bytes(n: u64) -> Vec<u8> {
    let b = n.to_be_bytes();
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    b[first..].to_vec()
}

/// A single-valued string option: absent → None; present once, UTF-8 without control
/// characters, within `max` bytes → Some; anything else → BAD_REQUEST naming `what`.
fn string_option(
    pkt: &Packet,
    num: u16,
    max: usize,
    what: &str,
    rqi: &str,
) -> Result<Option<String>, CoapRejection> {
    let mut it = values(pkt, num);
    let Some(v) = it.next() else {
        return Ok(None);
    };
    let bad = |m: &str| CoapRejection::new(Rsc::BadRequest, rqi, format!("{what} {m}"));
    if it.next().is_some() {
        return Err(bad("option given more than once"));
    }
    if v.len() > max {
        return Err(bad(&format!("option longer than {max} bytes")));
    }
    let s = std::str::from_utf8(v).map_err(|_| bad("option is not UTF-8 text"))?;
    if s.chars().any(char::is_control) {
        return Err(bad("option contains a control character"));
    }
    Ok(Some(s.to_string()))
}

/// A single-valued uint option.
fn uint_option(
    pkt: &Packet,
    num: u16,
    max_len: usize,
    what: &str,
    rqi: &str,
) -> Result<Option<u64>, CoapRejection> {
    let mut it = values(pkt, num);
    let Some(v) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(CoapRejection::new(
            Rsc::BadRequest,
            rqi,
            format!("{what} option given more than once"),
        ));
    }
    uint_value(v, max_len).map(Some).ok_or_else(|| {
        CoapRejection::new(
            Rsc::BadRequest,
            rqi,
            format!("{what} option is not an unsigned integer of at most {max_len} bytes"),
        )
    })
}

/// Whether option `num` is one this binding understands in a request (RFC 7252 §5.4.1).
fn known_request_option(num: u16) -> bool {
    matches!(
        num,
        3 | 4 | 6 | 7 | 11 | 12 | 14 | 15 | 17 | 23 | 28 | 60 | 258
    ) || [
        opt::FR,
        opt::RQI,
        opt::OT,
        opt::RVI,
        opt::VSI,
        opt::TY,
        opt::RSC,
    ]
    .contains(&num)
        || IGNORED_OPTIONS.contains(&num)
        || UNSUPPORTED_OPTIONS.iter().any(|(n, _)| *n == num)
}

fn is_json_format(cf: u16) -> bool {
    cf == CF_JSON || cf == CF_ONEM2M_RES_JSON
}

/// The Content-Format to answer a request with (TS-0008 §6.2.2.2): the Accept option's, if it
/// names a JSON format; else the request's own Content-Format, if JSON; else
/// `application/vnd.onem2m-res+json`.
pub fn response_format(pkt: &Packet) -> u16 {
    let first = |num: u16| {
        values(pkt, num)
            .next()
            .and_then(|v| uint_value(v, 2))
            .and_then(|n| u16::try_from(n).ok())
    };
    [first(17), first(12)]
        .into_iter()
        .flatten()
        .find(|cf| is_json_format(*cf))
        .unwrap_or(CF_ONEM2M_RES_JSON)
}

/// The Request Identifier of a request, if readable (for error responses).
pub fn request_rqi(pkt: &Packet) -> String {
    values(pkt, opt::RQI)
        .next()
        .filter(|v| v.len() <= MAX_RQI_LEN)
        .and_then(|v| std::str::from_utf8(v).ok())
        .filter(|s| !s.chars().any(char::is_control))
        .unwrap_or_default()
        .to_string()
}

/// Maps a CoAP request to a request primitive (TS-0008 §6.2). The packet's header type and
/// message ID are the transport's business (see `coap_server`); the Block2 option is accepted
/// and left to the transport too. `max_body` bounds the payload.
pub fn request_from_coap(pkt: &Packet, max_body: usize) -> Result<RequestPrimitive, CoapRejection> {
    let rqi = request_rqi(pkt);
    let rqi_s = rqi.as_str();
    let bad = |detail: &str| CoapRejection::new(Rsc::BadRequest, rqi_s, detail);

    if pkt.payload.len() > max_body {
        return Err(bad(&format!("payload larger than {max_body} bytes"))
            .with_code(ResponseType::RequestEntityTooLarge));
    }
    // RFC 7252 §5.4.1: an unrecognised critical (odd) option refuses the request.
    for (num, _) in pkt.options() {
        let num = *num;
        if num == 27 {
            return Err(bad("Block1 (RFC 7959) request payloads are not supported")
                .with_code(ResponseType::BadOption));
        }
        if num == 35 || num == 39 {
            return Err(
                bad("this CSE is not a CoAP proxy").with_code(ResponseType::ProxyingNotSupported)
            );
        }
        if num % 2 == 1 && !known_request_option(num) {
            return Err(bad(&format!("unsupported critical option {num}"))
                .with_code(ResponseType::BadOption));
        }
    }

    let rqi_opt = string_option(pkt, opt::RQI, MAX_RQI_LEN, "oneM2M-RQI", rqi_s)?;
    match rqi_opt.as_deref() {
        None | Some("") => return Err(bad("missing oneM2M-RQI option (Request Identifier)")),
        Some(_) => {}
    }
    let fr =
        string_option(pkt, opt::FR, MAX_FROM_LEN, "oneM2M-FR", rqi_s)?.filter(|s| !s.is_empty());
    let rvi = string_option(pkt, opt::RVI, 16, "oneM2M-RVI", rqi_s)?;
    let ot = string_option(pkt, opt::OT, 64, "oneM2M-OT", rqi_s)?;
    // TS-0008 table 6.2.2.4-1: oneM2M-VSI, a string of 0-255 bytes.
    let vsi = string_option(pkt, opt::VSI, 255, "oneM2M-VSI", rqi_s)?;
    let ty = uint_option(pkt, opt::TY, 4, "oneM2M-TY", rqi_s)?;
    if values(pkt, opt::RSC).next().is_some() {
        return Err(bad("oneM2M-RSC is a response option"));
    }

    // Accept (TS-0008 §6.2.2.2): 4.06 / NOT_ACCEPTABLE unless it names JSON.
    if let Some(accept) = uint_option(pkt, 17, 2, "Accept", rqi_s)? {
        if !u16::try_from(accept).is_ok_and(is_json_format) {
            return Err(CoapRejection::new(
                Rsc::NotAcceptable,
                rqi_s,
                "Accept names no JSON Content-Format; this CSE answers in JSON only",
            ));
        }
    }
    let cf = uint_option(pkt, 12, 2, "Content-Format", rqi_s)?;
    let pc = if pkt.payload.is_empty() {
        None
    } else {
        match cf {
            None => {
                return Err(bad(
                    "a payload needs a Content-Format option (TS-0008 §5.1)",
                ))
            }
            Some(c) if !u16::try_from(c).is_ok_and(is_json_format) => {
                let known = u16::try_from(c).is_ok_and(|c| CF_OTHER_KNOWN.contains(&c));
                return Err(CoapRejection::new(
                    Rsc::UnsupportedMediaType,
                    rqi_s,
                    format!(
                        "{} Content-Format {c}: use application/json (50) or \
                         application/vnd.onem2m-res+json (10001)",
                        if known { "unsupported" } else { "unknown" }
                    ),
                ));
            }
            Some(_) => Some(
                m2msec_proto::primitive::json_strict(&pkt.payload)
                    .map_err(|e| bad(&format!("payload is not JSON: {e}")))?,
            ),
        }
    };

    let mut op = match pkt.header.code {
        MessageClass::Request(RequestType::Get) => Operation::Retrieve,
        MessageClass::Request(RequestType::Put) => Operation::Update,
        MessageClass::Request(RequestType::Delete) => Operation::Delete,
        // TS-0008 §6.2.1: POST without an Operation parameter is CREATE with a Resource Type,
        // NOTIFY without.
        MessageClass::Request(RequestType::Post) => {
            if ty.is_some() {
                Operation::Create
            } else {
                Operation::Notify
            }
        }
        other => {
            return Err(CoapRejection::new(
                Rsc::OperationNotAllowed,
                rqi_s,
                format!("method {other} is not mapped to a oneM2M operation (TS-0008 §6.2.1)"),
            ))
        }
    };

    let mut segments = Vec::new();
    for v in values(pkt, 11) {
        if segments.len() >= MAX_URI_OPTIONS {
            return Err(bad("too many Uri-Path options"));
        }
        segments.push(std::str::from_utf8(v).map_err(|_| bad("Uri-Path is not UTF-8 text"))?);
    }
    let to = to_from_uri_path(&segments).ok_or_else(|| bad("Uri-Path is not a resource ID"))?;

    let mut prim = Map::new();
    prim.insert("to".into(), Value::from(to));
    if let Some(fr) = fr {
        prim.insert("fr".into(), Value::from(fr));
    }
    prim.insert("rqi".into(), Value::from(rqi.clone()));
    if let Some(pc) = pc {
        prim.insert("pc".into(), pc);
    }
    if let Some(rvi) = rvi {
        prim.insert("rvi".into(), Value::from(rvi));
    }
    if let Some(ot) = ot {
        prim.insert("ot".into(), Value::from(ot));
    }
    if let Some(vsi) = vsi {
        prim.insert("vsi".into(), Value::from(vsi));
    }

    // Uri-Query (TS-0008 §6.2.2.3): short names as in TS-0004 §8.2.2, not percent-encoded
    // (RFC 7252 §6.5).
    let mut fields = QueryFields::default();
    for (i, raw) in values(pkt, 15).enumerate() {
        if i >= MAX_URI_OPTIONS {
            return Err(bad("too many Uri-Query options"));
        }
        let q = std::str::from_utf8(raw).map_err(|_| bad("Uri-Query is not UTF-8 text"))?;
        if q.chars().any(char::is_control) {
            return Err(bad("Uri-Query contains a control character"));
        }
        let (k, v) = q.split_once('=').unwrap_or((q, ""));
        if k.is_empty() {
            return Err(bad("empty Uri-Query field name"));
        }
        if k == "op" {
            // §6.2.2.3: the Operation parameter, carried in a POST (§6.2.1).
            fields.once(k).map_err(|e| bad(&e))?;
            let o = v
                .parse::<u64>()
                .ok()
                .and_then(Operation::from_u64)
                .ok_or_else(|| bad("op must be 1..5"))?;
            if matches!(pkt.header.code, MessageClass::Request(RequestType::Post)) {
                op = o;
            } else if o != op {
                return Err(bad("op in Uri-Query contradicts the CoAP method"));
            }
        } else {
            fields.take(k, v).map_err(|e| bad(&e))?;
        }
    }
    if ty.is_some() && op != Operation::Create {
        return Err(bad("oneM2M-TY is only allowed in a CREATE"));
    }
    prim.insert("op".into(), Value::from(op as u8));
    if let Some(ty) = ty {
        prim.insert("ty".into(), Value::from(ty));
    }
    let mut unsupported = fields.apply(&mut prim);
    for (num, short) in UNSUPPORTED_OPTIONS {
        if values(pkt, num).next().is_some() {
            unsupported.push(short);
        }
    }
    let mut req = RequestPrimitive::from_value(Value::Object(prim)).map_err(|e| CoapRejection {
        code: coap_code(e.rsc, None),
        rejection: Rejection {
            error: e,
            rqi: rqi.clone(),
        },
    })?;
    for u in unsupported {
        if !req.unsupported.contains(&u) {
            req.unsupported.push(u);
        }
    }
    Ok(req)
}

/// The `ri` of the resource representation in the content of a CREATE response.
fn created_ri(pc: Option<&Value>) -> Option<&str> {
    pc?.as_object()?
        .values()
        .find_map(|v| v.as_object()?.get("ri")?.as_str())
}

/// Maps a response primitive to a CoAP response (TS-0008 §6.2.1, §6.2.3, §6.2.4): code, options
/// and payload. `op` is the request's operation when known (it picks 2.04 over 2.05 for a
/// NOTIFY's OK, whose payload is then empty); `cf` the Content-Format of the payload (see
/// [`response_format`]). Header type, message ID and token are left to the transport.
pub fn response_to_coap(resp: &ResponsePrimitive, op: Option<Operation>, cf: u16) -> Packet {
    let mut p = Packet::new();
    p.header.set_version(1);
    p.header.code = MessageClass::Response(coap_code(resp.rsc, op));
    // §6.2.4: the RSC goes in oneM2M-RSC whenever several RSCs share the CoAP code; it is
    // always sent, so the originator never has to guess.
    p.add_option(
        CoapOption::Unknown(opt::RSC),
        uint_bytes(u64::from(resp.rsc.as_u16())),
    );
    if !resp.rqi.is_empty() {
        p.add_option(CoapOption::Unknown(opt::RQI), resp.rqi.as_bytes().to_vec());
    }
    if let Some(fr) = &resp.fr {
        p.add_option(CoapOption::Unknown(opt::FR), fr.as_bytes().to_vec());
    }
    if let Some(rvi) = &resp.rvi {
        p.add_option(CoapOption::Unknown(opt::RVI), rvi.as_bytes().to_vec());
    }
    if let Some(ot) = &resp.ot {
        p.add_option(CoapOption::Unknown(opt::OT), ot.to_string().into_bytes());
    }
    if let Some(vsi) = &resp.vsi {
        p.add_option(CoapOption::Unknown(opt::VSI), vsi.as_bytes().to_vec());
    }
    // §6.4: Max-Age 0 disables CoAP caching, for the complete oneM2M mapping.
    p.add_option(CoapOption::MaxAge, Vec::new());
    if resp.rsc == Rsc::Created {
        // §6.2.3: the URI of a created resource goes in Location-Path.
        if let Some(ri) = created_ri(resp.pc.as_ref()) {
            for seg in uri_path_from_to(ri) {
                p.add_option(CoapOption::LocationPath, seg.into_bytes());
            }
        }
    }
    let notify_ok = resp.rsc == Rsc::Ok && op == Some(Operation::Notify);
    if let (Some(pc), false) = (&resp.pc, notify_ok) {
        if let Ok(body) = serde_json::to_vec(pc) {
            p.add_option(CoapOption::ContentFormat, uint_bytes(u64::from(cf)));
            p.payload = body;
        }
    }
    p
}

/// Maps a request primitive to a CoAP request (the originator side of TS-0008 §6.2): code,
/// Uri-Path, Uri-Query (`rcn`), the oneM2M options and a JSON payload with Content-Format
/// `application/vnd.onem2m-res+json`. Header type, message ID and token are the caller's.
pub fn request_to_coap(req: &RequestPrimitive) -> Result<Packet, CseError> {
    let mut p = Packet::new();
    p.header.set_version(1);
    p.header.code = MessageClass::Request(match req.op {
        Operation::Create | Operation::Notify => RequestType::Post,
        Operation::Retrieve => RequestType::Get,
        Operation::Update => RequestType::Put,
        Operation::Delete => RequestType::Delete,
    });
    if req.rqi.is_empty() || req.rqi.len() > MAX_RQI_LEN {
        return Err(CseError::bad_request("rqi must be 1..256 bytes"));
    }
    let segments = uri_path_from_to(&req.to);
    if to_from_uri_path(&segments).as_deref() != Some(req.to.as_str()) {
        return Err(CseError::bad_request(
            "To cannot be written as Uri-Path options",
        ));
    }
    for s in segments {
        if s.len() > 255 {
            return Err(CseError::bad_request(
                "a To segment is longer than 255 bytes",
            ));
        }
        p.add_option(CoapOption::UriPath, s.into_bytes());
    }
    if let Some(rcn) = req.rcn {
        p.add_option(
            CoapOption::UriQuery,
            format!("rcn={}", rcn as u8).into_bytes(),
        );
    }
    if let Some(fr) = &req.fr {
        p.add_option(CoapOption::Unknown(opt::FR), fr.as_bytes().to_vec());
    }
    p.add_option(CoapOption::Unknown(opt::RQI), req.rqi.as_bytes().to_vec());
    if let Some(rvi) = &req.rvi {
        p.add_option(CoapOption::Unknown(opt::RVI), rvi.as_bytes().to_vec());
    }
    if let Some(ot) = &req.ot {
        p.add_option(CoapOption::Unknown(opt::OT), ot.to_string().into_bytes());
    }
    if let Some(ty) = req.ty {
        if req.op != Operation::Create {
            return Err(CseError::bad_request("ty is only allowed in a CREATE"));
        }
        p.add_option(CoapOption::Unknown(opt::TY), uint_bytes(ty));
    }
    p.add_option(
        CoapOption::Accept,
        uint_bytes(u64::from(CF_ONEM2M_RES_JSON)),
    );
    if let Some(pc) = &req.pc {
        p.add_option(
            CoapOption::ContentFormat,
            uint_bytes(u64::from(CF_ONEM2M_RES_JSON)),
        );
        p.payload = serde_json::to_vec(pc).map_err(|e| CseError::bad_request(e.to_string()))?;
    }
    Ok(p)
}

/// Maps a CoAP response back to a response primitive (originator side): the oneM2M-RSC option
/// is required; the payload, if any, must be JSON.
pub fn response_from_coap(pkt: &Packet) -> Result<ResponsePrimitive, CseError> {
    let code = pkt.header.code;
    let text = |num: u16| {
        values(pkt, num)
            .next()
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_string)
    };
    let rsc = values(pkt, opt::RSC)
        .next()
        .and_then(|v| uint_value(v, 2))
        .and_then(|n| u16::try_from(n).ok())
        .and_then(Rsc::from_u16)
        .ok_or_else(|| {
            CseError::bad_request(format!("CoAP {code} without a known oneM2M-RSC option"))
        })?;
    let mut r = ResponsePrimitive::new(rsc, text(opt::RQI).unwrap_or_default());
    r.fr = text(opt::FR);
    r.rvi = text(opt::RVI);
    r.vsi = text(opt::VSI);
    r.ot = text(opt::OT).and_then(|s| s.parse().ok());
    if !pkt.payload.is_empty() {
        r.pc =
            Some(serde_json::from_slice(&pkt.payload).map_err(|e| {
                CseError::bad_request(format!("response payload is not JSON: {e}"))
            })?);
    }
    Ok(r)
}

/// The Block2 option of a packet (RFC 7959 §2.2), if present and well formed.
pub fn block2(pkt: &Packet) -> Option<BlockValue> {
    pkt.get_first_option_as::<BlockValue>(CoapOption::Block2)
        .and_then(Result::ok)
        .filter(|b| b.size_exponent <= 6)
}

/// Block `num` of `payload` at `size` bytes per block (RFC 7959 §2.2, §2.4): the slice and the
/// Block2 option value to send with it, or None when the block lies past the end. `size` must
/// be a power of two in 16..=1024.
pub fn block2_slice(payload: &[u8], num: usize, size: usize) -> Option<(&[u8], BlockValue)> {
    let start = num.checked_mul(size)?;
    if start >= payload.len() && !(start == 0 && payload.is_empty()) {
        return None;
    }
    let end = start.saturating_add(size).min(payload.len());
    let more = end < payload.len();
    let bv = BlockValue::new(num, more, size).ok()?;
    Some((payload.get(start..end)?, bv))
}

/// Adds a Block2 option and a Size2 option (RFC 7959 §4) to a response.
pub fn set_block2(p: &mut Packet, bv: BlockValue, total: usize) {
    p.clear_option(CoapOption::Block2);
    p.add_option_as(CoapOption::Block2, bv);
    if let Ok(n) = u32::try_from(total) {
        p.clear_option(CoapOption::Size2);
        p.add_option_as(CoapOption::Size2, OptionValueU32(n));
    }
}

/// The Content-Format of a packet, as a number.
pub fn content_format(pkt: &Packet) -> Option<u16> {
    pkt.get_first_option_as::<OptionValueU16>(CoapOption::ContentFormat)
        .and_then(Result::ok)
        .map(|v| v.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coap_lite::MessageType;
    use m2msec_proto::ResultContent;
    use proptest::prelude::*;
    use serde_json::json;

    fn create_ae() -> Packet {
        let req = RequestPrimitive::new(Operation::Create, "cb", Some("C"), "r1")
            .with_ty(2)
            .with_pc(json!({"m2m:ae":{"rn":"light","api":"Nlight","rr":false,"srv":["3"]}}));
        let mut p = request_to_coap(&req).unwrap();
        p.add_option(CoapOption::Unknown(opt::RVI), b"3".to_vec());
        p
    }

    fn reparse(p: &Packet) -> Packet {
        Packet::from_bytes(&p.to_bytes_unlimited().unwrap()).unwrap()
    }

    #[test]
    fn option_numbers_of_table_6_2_2_4_0_1() {
        assert_eq!(
            [opt::FR, opt::RQI, opt::OT, opt::TY, opt::RSC, opt::RVI],
            [279, 283, 259, 267, 307, 271]
        );
        // All critical (odd): RFC 7252 §5.4.6.
        for n in [
            opt::FR,
            opt::RQI,
            opt::OT,
            opt::RQET,
            opt::RSET,
            opt::OET,
            opt::RTURI,
            opt::EC,
            opt::RSC,
            opt::GID,
            opt::TY,
            opt::CTO,
            opt::CTS,
            opt::ATI,
            opt::RVI,
            opt::VSI,
            opt::GTM,
            opt::AUS,
            opt::ASRI,
        ] {
            assert_eq!(n % 2, 1, "{n}");
        }
    }

    /// Issue 11 item 7: oneM2M-VSI (TS-0008 §6.2.2.4.17) reaches the primitive and the
    /// response's Vendor Information goes back in the same option.
    #[test]
    fn vendor_information_option_maps_both_ways() {
        let mut p = create_ae();
        p.add_option(CoapOption::Unknown(opt::VSI), b"acme/1".to_vec());
        let r = request_from_coap(&reparse(&p), 1024).unwrap();
        assert_eq!(r.vsi.as_deref(), Some("acme/1"));
        let mut resp = ResponsePrimitive::new(Rsc::Ok, "r1");
        resp.vsi = r.vsi;
        let back = reparse(&response_to_coap(&resp, Some(Operation::Retrieve), CF_JSON));
        assert_eq!(
            response_from_coap(&back).unwrap().vsi.as_deref(),
            Some("acme/1")
        );
        let mut long = create_ae();
        long.add_option(CoapOption::Unknown(opt::VSI), vec![b'a'; 256]);
        assert!(request_from_coap(&reparse(&long), 1024).is_err());
    }

    #[test]
    fn create_maps_to_primitive() {
        let p = reparse(&create_ae());
        let r = request_from_coap(&p, 1024).unwrap();
        assert_eq!(r.op, Operation::Create);
        assert_eq!(r.to, "cb");
        assert_eq!(r.fr.as_deref(), Some("C"));
        assert_eq!(r.rqi, "r1");
        assert_eq!(r.ty, Some(2));
        assert_eq!(r.rvi.as_deref(), Some("3"));
        assert_eq!(r.pc.unwrap()["m2m:ae"]["api"], json!("Nlight"));
    }

    #[test]
    fn uri_path_forms_of_table_6_2_2_3_1() {
        for (to, segs) in [
            (
                "CSEBase/ae12/cont27/contInst696",
                vec!["CSEBase", "ae12", "cont27", "contInst696"],
            ),
            (
                "/CSE178/CSEBase/ae12/cont27/contInst696",
                vec!["~", "CSE178", "CSEBase", "ae12", "cont27", "contInst696"],
            ),
            (
                "//mym2msp.org/CSE178/CSEBase/ae12/cont27/contInst696",
                vec![
                    "_",
                    "mym2msp.org",
                    "CSE178",
                    "CSEBase",
                    "ae12",
                    "cont27",
                    "contInst696",
                ],
            ),
            ("cin00856", vec!["cin00856"]),
            ("/CSE178/cin00856", vec!["~", "CSE178", "cin00856"]),
            (
                "//mym2msp.org/CSE178/cin00856",
                vec!["_", "mym2msp.org", "CSE178", "cin00856"],
            ),
        ] {
            assert_eq!(uri_path_from_to(to), segs, "{to}");
            assert_eq!(to_from_uri_path(&segs).as_deref(), Some(to));
        }
        for bad in [
            vec![],
            vec!["~"],
            vec!["_"],
            vec!["cb", ""],
            vec!["cb", "a/b"],
            vec!["cb", "a\u{0}"],
        ] {
            assert_eq!(to_from_uri_path(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn methods_options_and_query() {
        let req = RequestPrimitive::new(Operation::Retrieve, "cb/Cae", Some("Cae"), "r2")
            .with_rcn(ResultContent::AttributesAndChildResources);
        let p = request_to_coap(&req).unwrap();
        let r = request_from_coap(&reparse(&p), 10).unwrap();
        assert_eq!(r, req);
        let mut p2 = p.clone();
        p2.add_option(CoapOption::UriQuery, b"ty=3".to_vec());
        p2.add_option(CoapOption::UriQuery, b"rp=PT1S".to_vec());
        let r = request_from_coap(&reparse(&p2), 10).unwrap();
        assert_eq!(r.fc.unwrap()["ty"], json!(["3"]));
        assert_eq!(r.unsupported, vec!["rp"]);
        // Recognised but unimplemented option → NOT_IMPLEMENTED from the engine.
        let mut p3 = p.clone();
        p3.add_option(CoapOption::Unknown(opt::RQET), b"20300101T000000".to_vec());
        assert_eq!(
            request_from_coap(&p3, 10).unwrap().unsupported,
            vec!["rqet"]
        );
        // Delete, Put.
        let mut d = p.clone();
        d.header.code = MessageClass::Request(RequestType::Delete);
        d.clear_option(CoapOption::UriQuery);
        assert_eq!(request_from_coap(&d, 10).unwrap().op, Operation::Delete);
        // FETCH is not mapped: 4.05.
        let mut f = p.clone();
        f.header.code = MessageClass::Request(RequestType::Fetch);
        let e = request_from_coap(&f, 10).unwrap_err();
        assert_eq!(e.rejection.error.rsc, Rsc::OperationNotAllowed);
        assert_eq!(e.code, ResponseType::MethodNotAllowed);
        assert_eq!(e.rejection.rqi, "r2");
        // POST without TY is a NOTIFY; with op=3 in Uri-Query an UPDATE.
        let mut n = Packet::new();
        n.header.code = MessageClass::Request(RequestType::Post);
        n.add_option(CoapOption::UriPath, b"cb".to_vec());
        n.add_option(CoapOption::Unknown(opt::RQI), b"r3".to_vec());
        assert_eq!(request_from_coap(&n, 10).unwrap().op, Operation::Notify);
        n.add_option(CoapOption::UriQuery, b"op=3".to_vec());
        assert_eq!(request_from_coap(&n, 10).unwrap().op, Operation::Update);
    }

    #[test]
    fn request_errors() {
        let base = create_ae();
        let check = |p: Packet, rsc: Rsc, code: ResponseType| {
            let e = request_from_coap(&p, 4096).unwrap_err();
            assert_eq!((e.rejection.error.rsc, e.code), (rsc, code), "{p:?}");
            let out = e.to_packet(Some("/cse-in"), CF_JSON);
            let back = response_from_coap(&reparse(&out)).unwrap();
            assert_eq!(back.rsc, rsc);
        };
        // No RQI.
        let mut p = base.clone();
        p.clear_option(CoapOption::Unknown(opt::RQI));
        check(p, Rsc::BadRequest, ResponseType::BadRequest);
        // Payload without Content-Format.
        let mut p = base.clone();
        p.clear_option(CoapOption::ContentFormat);
        check(p, Rsc::BadRequest, ResponseType::BadRequest);
        // XML: 4015 / 4.15.
        let mut p = base.clone();
        p.clear_option(CoapOption::ContentFormat);
        p.add_option(CoapOption::ContentFormat, vec![41]);
        check(
            p,
            Rsc::UnsupportedMediaType,
            ResponseType::UnsupportedContentFormat,
        );
        // Malformed JSON.
        let mut p = base.clone();
        p.payload = b"{\"m2m:ae\":".to_vec();
        check(p, Rsc::BadRequest, ResponseType::BadRequest);
        // Accept CBOR: 5207 / 4.06.
        let mut p = base.clone();
        p.clear_option(CoapOption::Accept);
        p.add_option(CoapOption::Accept, vec![60]);
        check(p, Rsc::NotAcceptable, ResponseType::NotAcceptable);
        // FR twice.
        let mut p = base.clone();
        p.add_option(CoapOption::Unknown(opt::FR), b"Cx".to_vec());
        check(p, Rsc::BadRequest, ResponseType::BadRequest);
        // TY of 5 bytes.
        let mut p = base.clone();
        p.clear_option(CoapOption::Unknown(opt::TY));
        p.add_option(CoapOption::Unknown(opt::TY), vec![1, 0, 0, 0, 2]);
        check(p, Rsc::BadRequest, ResponseType::BadRequest);
        // TY on GET.
        let mut p = base.clone();
        p.header.code = MessageClass::Request(RequestType::Get);
        check(p, Rsc::BadRequest, ResponseType::BadRequest);
        // Unknown critical option: 4.02; Block1: 4.02; Proxy-Uri: 5.05.
        let mut p = base.clone();
        p.add_option(CoapOption::Unknown(2049), vec![]);
        check(p, Rsc::BadRequest, ResponseType::BadOption);
        let mut p = base.clone();
        p.add_option(CoapOption::Block1, vec![0x0e]);
        check(p, Rsc::BadRequest, ResponseType::BadOption);
        let mut p = base.clone();
        p.add_option(CoapOption::ProxyUri, b"coap://x/".to_vec());
        check(p, Rsc::BadRequest, ResponseType::ProxyingNotSupported);
        // Unknown elective option is ignored.
        let mut p = base.clone();
        p.add_option(CoapOption::Unknown(2048), vec![1]);
        assert!(request_from_coap(&p, 4096).is_ok());
        // Payload over the limit: 4.13.
        let e = request_from_coap(&base, 8).unwrap_err();
        assert_eq!(e.code, ResponseType::RequestEntityTooLarge);
        assert_eq!(e.rejection.rqi, "r1");
        // Bad OT.
        let mut p = base.clone();
        p.add_option(CoapOption::Unknown(opt::OT), b"yesterday".to_vec());
        check(p, Rsc::BadRequest, ResponseType::BadRequest);
        // No Uri-Path.
        let mut p = base.clone();
        p.clear_option(CoapOption::UriPath);
        check(p, Rsc::BadRequest, ResponseType::BadRequest);
        // Bad rcn, duplicate rcn.
        for q in [&["rcn=99"][..], &["rcn=1", "rcn=1"], &["=1"], &["rt=x"]] {
            let mut p = base.clone();
            for x in q {
                p.add_option(CoapOption::UriQuery, x.as_bytes().to_vec());
            }
            check(p, Rsc::BadRequest, ResponseType::BadRequest);
        }
    }

    #[test]
    fn code_table_6_2_4_1() {
        use ResponseType as C;
        for (rsc, op, code) in [
            (Rsc::Ok, Some(Operation::Retrieve), C::Content),
            (Rsc::Ok, Some(Operation::Notify), C::Changed),
            (Rsc::Created, None, C::Created),
            (Rsc::Deleted, None, C::Deleted),
            (Rsc::Updated, None, C::Changed),
            (Rsc::BadRequest, None, C::BadRequest),
            (Rsc::ReleaseVersionNotSupported, None, C::NotImplemented),
            (Rsc::NotFound, None, C::NotFound),
            (Rsc::OperationNotAllowed, None, C::MethodNotAllowed),
            (Rsc::RequestTimeout, None, C::GatewayTimeout),
            (Rsc::UnsupportedMediaType, None, C::UnsupportedContentFormat),
            (Rsc::ContentsUnacceptable, None, C::BadRequest),
            (Rsc::OriginatorHasNoPrivilege, None, C::Forbidden),
            (Rsc::Conflict, None, C::Forbidden),
            (Rsc::OriginatorNotAuthenticated, None, C::Forbidden),
            (Rsc::SecurityAssociationRequired, None, C::Forbidden),
            (Rsc::InvalidChildResourceType, None, C::Forbidden),
            (Rsc::EsprimImpersonationError, None, C::Forbidden),
            (Rsc::OriginatorHasAlreadyRegistered, None, C::Forbidden),
            (Rsc::AppRuleValidationFailed, None, C::Forbidden),
            (Rsc::InternalServerError, None, C::InternalServerError),
            (Rsc::NotImplemented, None, C::NotImplemented),
            (Rsc::TargetNotReachable, None, C::NotFound),
            (Rsc::AlreadyExists, None, C::BadRequest),
            (Rsc::NotAcceptable, None, C::NotAcceptable),
        ] {
            assert_eq!(coap_code(rsc, op), code, "{rsc}");
        }
        for r in Rsc::ALL {
            assert_eq!(r.is_success(), !coap_code(r, None).is_error(), "{r}");
        }
    }

    #[test]
    fn response_round_trip() {
        let mut resp = ResponsePrimitive::new(Rsc::Created, "r1");
        resp.pc = Some(json!({"m2m:ae": {"ri": "Cabc", "rn": "light"}}));
        resp.fr = Some("/cse-in".into());
        resp.rvi = Some("3".into());
        let p = reparse(&response_to_coap(&resp, Some(Operation::Create), CF_JSON));
        assert_eq!(p.header.code, MessageClass::Response(ResponseType::Created));
        assert_eq!(content_format(&p), Some(CF_JSON));
        let loc: Vec<_> = p
            .get_option(CoapOption::LocationPath)
            .unwrap()
            .iter()
            .cloned()
            .collect();
        assert_eq!(loc, vec![b"Cabc".to_vec()]);
        let back = response_from_coap(&p).unwrap();
        assert_eq!(back, resp);
        // NOTIFY OK: 2.04 with an empty payload.
        let mut ok = ResponsePrimitive::new(Rsc::Ok, "n");
        ok.pc = Some(json!({"x": 1}));
        let p = response_to_coap(&ok, Some(Operation::Notify), CF_JSON);
        assert_eq!(p.header.code, MessageClass::Response(ResponseType::Changed));
        assert!(p.payload.is_empty());
        // No RSC: refused.
        let mut p = Packet::new();
        p.header.code = MessageClass::Response(ResponseType::Content);
        assert!(response_from_coap(&p).is_err());
    }

    #[test]
    fn request_round_trip() {
        let req =
            RequestPrimitive::new(Operation::Create, "//sp.example/cse-in/cb", Some("C"), "q")
                .with_ty(2)
                .with_pc(json!({"m2m:ae": {"api": "Nx"}}))
                .with_rcn(ResultContent::Attributes);
        let mut p = request_to_coap(&req).unwrap();
        p.header.set_type(MessageType::Confirmable);
        let p = reparse(&p);
        let segs: Vec<_> = p
            .get_option(CoapOption::UriPath)
            .unwrap()
            .iter()
            .cloned()
            .collect();
        assert_eq!(segs[0], b"_".to_vec());
        assert_eq!(request_from_coap(&p, 4096).unwrap(), req);
        assert_eq!(response_format(&p), CF_ONEM2M_RES_JSON);
    }

    #[test]
    fn block2_slices() {
        let data: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let (b0, v0) = block2_slice(&data, 0, 1024).unwrap();
        assert_eq!(
            (b0.len(), v0.num, v0.more, v0.size()),
            (1024, 0, true, 1024)
        );
        let (b2, v2) = block2_slice(&data, 2, 1024).unwrap();
        assert_eq!((b2.len(), v2.more), (452, false));
        assert!(block2_slice(&data, 3, 1024).is_none());
        let mut all = Vec::new();
        let mut n = 0;
        while let Some((b, v)) = block2_slice(&data, n, 64) {
            all.extend_from_slice(b);
            n += 1;
            if !v.more {
                break;
            }
        }
        assert_eq!(all, data);
        assert!(block2_slice(&[], 0, 16).is_some());
        assert!(block2_slice(&data, usize::MAX, 1024).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Garbage in never panics; a rejection always maps to an error code.
        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(p) = Packet::from_bytes(&bytes) {
                match request_from_coap(&p, 100) {
                    Ok(r) => { let _ = r.to_value(); }
                    Err(e) => {
                        prop_assert!(e.code.is_error());
                        let _ = e.to_packet(None, CF_ONEM2M_RES_JSON).to_bytes_unlimited();
                    }
                }
                let _ = response_from_coap(&p);
                let _ = response_format(&p);
                let _ = block2(&p);
            }
        }

        /// Structured garbage close to real requests.
        #[test]
        fn near_valid_never_panics(
            code in 0u8..8,
            segs in prop::collection::vec("[~_a-zA-Z0-9./-]{0,12}", 0..5),
            queries in prop::collection::vec("[a-z]{0,4}=?[0-9a-z]{0,4}", 0..4),
            opts in prop::collection::vec((0u16..400, prop::collection::vec(any::<u8>(), 0..6)), 0..6),
            payload in "\\PC{0,60}",
        ) {
            let mut p = Packet::new();
            p.header.code = MessageClass::from(code);
            for s in &segs { p.add_option(CoapOption::UriPath, s.as_bytes().to_vec()); }
            for q in &queries { p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec()); }
            p.add_option(CoapOption::Unknown(opt::RQI), b"r".to_vec());
            for (n, v) in opts { p.add_option(CoapOption::from(n), v); }
            p.payload = payload.into_bytes();
            let _ = request_from_coap(&p, 1024);
            if let Ok(b) = p.to_bytes_unlimited() {
                if let Ok(q) = Packet::from_bytes(&b) { let _ = request_from_coap(&q, 1024); }
            }
        }

        /// Every To the CSE can produce survives Uri-Path and back.
        #[test]
        fn to_round_trip(to in "(//|/)?[a-zA-Z0-9][a-zA-Z0-9._-]{0,9}(/[a-zA-Z0-9._~-]{1,10}){0,4}") {
            let segs = uri_path_from_to(&to);
            prop_assert_eq!(to_from_uri_path(&segs), Some(to));
        }
    }
}
