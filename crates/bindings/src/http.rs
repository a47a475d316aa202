//! The HTTP binding of oneM2M primitives (TS-0009 V3.9.1) as pure functions: no sockets, no
//! async, so every mapping is unit- and property-tested on its own.
//!
//! Receiver side (the CSE):
//! - [`request_from_http`]: an HTTP/1.1 request (method, origin-form target, headers, body) to a
//!   [`RequestPrimitive`] (TS-0009 §6.2 request line, §6.4 header fields, §6.5 message body).
//!   Every defect is a [`Rejection`]: the oneM2M error (4000 BAD_REQUEST for anything malformed,
//!   4015 UNSUPPORTED_MEDIA_TYPE for a body that is not JSON, 5207 NOT_ACCEPTABLE when `Accept`
//!   excludes JSON) with the request identifier when one was readable, answered like any other
//!   response primitive.
//! - [`response_to_http`]: a [`ResponsePrimitive`] to status, headers and body (TS-0009 §6.3.2
//!   table 6.3.2-1, §6.4.4 Content-Location, §6.4.17 X-M2M-RSC).
//!
//! Originator side (`m2msec request`): [`request_to_http`] and [`response_from_http`].
//!
//! Only the JSON serialisation is implemented (`application/json`,
//! `application/vnd.onem2m-res+json`); XML and CBOR bodies are UNSUPPORTED_MEDIA_TYPE.

use bytes::Bytes;
use hyper::http::header::{HeaderName, ACCEPT, CONTENT_LOCATION, CONTENT_TYPE};
use hyper::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::{Map, Value};

use m2msec_proto::primitive::{MAX_FROM_LEN, MAX_RQI_LEN, MAX_TO_LEN};
use m2msec_proto::{CseError, Operation, RequestPrimitive, ResponsePrimitive, ResultContent, Rsc};

/// Default largest request body accepted, in bytes.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// Longest request target (path and query) accepted, in bytes.
pub const MAX_TARGET_LEN: usize = 4096;

/// `X-M2M-Origin` (TS-0009 §6.4.7): From.
pub const X_M2M_ORIGIN: &str = "x-m2m-origin";
/// `X-M2M-RI` (§6.4.8): Request Identifier.
pub const X_M2M_RI: &str = "x-m2m-ri";
/// `X-M2M-RVI` (§6.4.22): Release Version Indicator.
pub const X_M2M_RVI: &str = "x-m2m-rvi";
/// `X-M2M-RSC` (§6.4.17): Response Status Code.
pub const X_M2M_RSC: &str = "x-m2m-rsc";
/// `X-M2M-OT` (§6.4.12): Originating Timestamp.
pub const X_M2M_OT: &str = "x-m2m-ot";
/// `X-M2M-VSI` (TS-0009 §6.4.23): Vendor Information, in requests and responses.
pub const X_M2M_VSI: &str = "x-m2m-vsi";

/// Header fields of request parameters this CSE recognises but does not implement, with the
/// short name reported as NOT_IMPLEMENTED (TS-0004 §7.3.2.1): Result Expiration Timestamp,
/// Request Expiration Timestamp, Operation Execution Time, Group Request Identifier, Response
/// Type notificationURI, Tokens.
const UNSUPPORTED_HEADERS: [(&str, &str); 5] = [
    ("x-m2m-rst", "rset"),
    ("x-m2m-ret", "rqet"),
    ("x-m2m-oet", "oet"),
    ("x-m2m-gid", "gid"),
    ("x-m2m-rtu", "rt"),
];

/// Query fields (TS-0009 table 6.2.2.2-1) that are request parameters rather than filter
/// criteria and that this CSE does not implement.
pub(crate) const UNSUPPORTED_QUERY: [&str; 9] = [
    "rp", "da", "rids", "tids", "ltids", "tqi", "asi", "auri", "atrl",
];

/// The query fields both bindings share (TS-0009 §6.2.2.2, TS-0008 §6.2.2.3; short names of
/// TS-0004 §8.2.2): `rcn`, `rt` and `drt` (each at most once), the recognised but unsupported
/// ones, and everything else as filter criteria conditions.
#[derive(Debug, Default)]
pub(crate) struct QueryFields {
    rcn: Option<u8>,
    fc: Map<String, Value>,
    /// Recognised parameters this CSE does not implement (NOT_IMPLEMENTED).
    pub(crate) unsupported: Vec<&'static str>,
    seen: Vec<String>,
}

impl QueryFields {
    /// Fails if `k` was already given (for fields that may appear once); records it.
    pub(crate) fn once(&mut self, k: &str) -> Result<(), String> {
        if self.seen.iter().any(|s| s == k) {
            return Err(format!("{k} given more than once"));
        }
        self.seen.push(k.to_string());
        Ok(())
    }

    /// Fields taken so far.
    pub(crate) fn count(&self) -> usize {
        self.seen.len()
    }

    /// One field, already decoded.
    pub(crate) fn take(&mut self, k: &str, v: &str) -> Result<(), String> {
        match k {
            "rcn" => {
                self.once(k)?;
                let n = v
                    .parse::<u64>()
                    .ok()
                    .and_then(ResultContent::from_u64)
                    .ok_or("rcn must be 0..10")?;
                self.rcn = Some(n as u8);
            }
            "rt" => {
                self.once(k)?;
                match v.parse::<u64>() {
                    Ok(3) => {}
                    // m2m:responseType 1..=5 (TS-0004 §6.3.4.2.6): only blocking is served.
                    Ok(1 | 2 | 4 | 5) => self.unsupported.push("rt"),
                    _ => return Err("rt must be 1..5".into()),
                }
            }
            "drt" => {
                self.once(k)?;
                match v.parse::<u64>() {
                    Ok(1) => {}
                    Ok(2) => self.unsupported.push("drt"),
                    _ => return Err("drt must be 1 or 2".into()),
                }
            }
            other => {
                self.seen.push(other.to_string());
                if let Some(u) = UNSUPPORTED_QUERY.iter().find(|u| **u == other) {
                    self.unsupported.push(u);
                } else {
                    // Filter criteria conditions and attribute filters (TS-0009 table 6.2.2.2-1).
                    let e = self
                        .fc
                        .entry(other.to_string())
                        .or_insert_with(|| Value::Array(vec![]));
                    if let Value::Array(a) = e {
                        a.push(Value::from(v));
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes `rcn` and `fc` into the primitive's JSON; returns the unsupported parameters.
    pub(crate) fn apply(self, prim: &mut Map<String, Value>) -> Vec<&'static str> {
        if let Some(n) = self.rcn {
            prim.insert("rcn".into(), Value::from(n));
        }
        if !self.fc.is_empty() {
            prim.insert("fc".into(), Value::Object(self.fc));
        }
        self.unsupported
    }
}

/// A request the binding could not turn into a primitive: the error and the request identifier
/// (empty when `X-M2M-RI` was missing or unreadable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The oneM2M error.
    pub error: CseError,
    /// `X-M2M-RI`, if it was readable.
    pub rqi: String,
}

impl Rejection {
    fn new(rsc: Rsc, rqi: &str, detail: impl Into<String>) -> Self {
        Rejection {
            error: CseError::new(rsc, detail),
            rqi: rqi.to_string(),
        }
    }

    /// The error response primitive (TS-0004 §7.2.2.2), `fr` set to the answering CSE-ID.
    pub fn into_response(self, cse_id: Option<&str>) -> ResponsePrimitive {
        let mut r = ResponsePrimitive::error(&self.error, self.rqi);
        r.fr = cse_id.map(str::to_string);
        r
    }
}

/// TS-0009 table 6.3.2-1: the HTTP status code of a Response Status Code.
pub fn http_status(rsc: Rsc) -> StatusCode {
    match rsc {
        Rsc::Ok | Rsc::Deleted | Rsc::Updated => StatusCode::OK,
        Rsc::Created => StatusCode::CREATED,
        Rsc::BadRequest | Rsc::ContentsUnacceptable => StatusCode::BAD_REQUEST,
        Rsc::OriginatorHasNoPrivilege
        | Rsc::OriginatorNotAuthenticated
        | Rsc::SecurityAssociationRequired
        | Rsc::InvalidChildResourceType
        | Rsc::EsprimImpersonationError
        | Rsc::OriginatorHasAlreadyRegistered
        | Rsc::AppRuleValidationFailed => StatusCode::FORBIDDEN,
        Rsc::NotFound | Rsc::TargetNotReachable => StatusCode::NOT_FOUND,
        Rsc::OperationNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Rsc::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
        Rsc::Conflict | Rsc::AlreadyExists => StatusCode::CONFLICT,
        Rsc::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Rsc::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
        Rsc::ReleaseVersionNotSupported | Rsc::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        Rsc::RequestTimeout => StatusCode::GATEWAY_TIMEOUT,
    }
}

/// One header field as text: absent → None; present once with visible ASCII → Some; present
/// twice, or not text → BAD_REQUEST.
fn header_text<'a>(
    headers: &'a HeaderMap,
    name: &str,
    rqi: &str,
) -> Result<Option<&'a str>, Rejection> {
    let mut it = headers.get_all(name).iter();
    let v = match it.next() {
        None => return Ok(None),
        Some(v) => v,
    };
    if it.next().is_some() {
        return Err(Rejection::new(
            Rsc::BadRequest,
            rqi,
            format!("{name} header given more than once"),
        ));
    }
    v.to_str()
        .map(|s| Some(s.trim()))
        .map_err(|_| Rejection::new(Rsc::BadRequest, rqi, format!("{name} is not ASCII text")))
}

/// A parsed `Content-Type`: whether its media type is one of the JSON ones, and `ty`.
struct ContentType {
    json: bool,
    media: String,
    ty: Option<u64>,
}

/// Parses `type/subtype; ty=N; other=x` (TS-0009 §6.4.3). Parameters other than `ty` are
/// ignored; a `ty` that is not a decimal number, or is given twice, is BAD_REQUEST.
fn parse_content_type(v: &str, rqi: &str) -> Result<ContentType, Rejection> {
    let mut parts = v.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if media.is_empty() || !media.contains('/') {
        return Err(Rejection::new(
            Rsc::BadRequest,
            rqi,
            "Content-Type is not a media type",
        ));
    }
    let mut ty = None;
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let (k, val) = p.split_once('=').unwrap_or((p, ""));
        if k.trim().eq_ignore_ascii_case("ty") {
            if ty.is_some() {
                return Err(Rejection::new(
                    Rsc::BadRequest,
                    rqi,
                    "ty given more than once in Content-Type",
                ));
            }
            let val = val.trim().trim_matches('"');
            if val.is_empty() || val.len() > 9 || !val.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Rejection::new(
                    Rsc::BadRequest,
                    rqi,
                    "ty in Content-Type must be a resource type number",
                ));
            }
            ty = val.parse::<u64>().ok();
        }
    }
    let json = matches!(
        media.as_str(),
        "application/json" | "application/vnd.onem2m-res+json"
    );
    Ok(ContentType { json, media, ty })
}

/// Whether an `Accept` value admits a JSON response (absent admits anything).
fn accepts_json(v: &str) -> bool {
    v.split(',').any(|range| {
        let media = range
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        matches!(
            media.as_str(),
            "*/*" | "application/*" | "application/json" | "application/vnd.onem2m-res+json"
        )
    })
}

/// Percent-decodes a URI component into UTF-8 text without control characters.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = *b.get(i)?;
        if c == b'%' {
            let hi = (*b.get(i + 1)? as char).to_digit(16)?;
            let lo = (*b.get(i + 2)? as char).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    if s.chars().any(char::is_control) {
        return None;
    }
    Some(s)
}

/// The To parameter from the origin-form path (TS-0009 §6.2.2.1, table 6.2.2.1-1): `/~/X` is
/// SP-relative `/X`, `/_/X` absolute `//X`, `/X` CSE-relative `X`. A trailing '/' is kept, so the
/// engine refuses it (an empty segment is no resource name, TS-0004 §6.2.3) rather than the path
/// silently naming its parent.
pub fn to_from_path(path: &str) -> Option<String> {
    let decoded = percent_decode(path)?;
    let rest = decoded.strip_prefix('/')?;
    let to = if let Some(r) = rest.strip_prefix("~/") {
        format!("/{r}")
    } else if let Some(r) = rest.strip_prefix("_/") {
        format!("//{r}")
    } else {
        rest.to_string()
    };
    let bare = to.trim_start_matches('/');
    if bare.is_empty() || to.len() > MAX_TO_LEN {
        return None;
    }
    Some(to)
}

/// The origin-form path for a To parameter (the reverse of [`to_from_path`]), percent-encoding
/// every byte outside the unreserved set, '/', ':' and '@'.
pub fn path_from_to(to: &str) -> String {
    let prefixed = if let Some(r) = to.strip_prefix("//") {
        format!("/_/{r}")
    } else if to.starts_with('/') {
        format!("/~{to}")
    } else {
        format!("/{to}")
    };
    let mut out = String::with_capacity(prefixed.len());
    for b in prefixed.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b':' | b'@')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Maps an HTTP request to a request primitive (TS-0009 §6). `target` is the origin-form request
/// target (path and optional query); `body` the complete message body, already bounded by the
/// transport; `max_body` is checked again here.
pub fn request_from_http(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    body: &[u8],
    max_body: usize,
) -> Result<RequestPrimitive, Rejection> {
    // X-M2M-RI first, so every later error can carry it.
    let rqi = match headers.get(X_M2M_RI).map(HeaderValue::to_str) {
        Some(Ok(s)) if s.len() <= MAX_RQI_LEN => s.trim().to_string(),
        _ => String::new(),
    };
    let rqi_s = rqi.as_str();
    let bad = |detail: &str| Rejection::new(Rsc::BadRequest, rqi_s, detail);

    if body.len() > max_body {
        return Err(bad(&format!("message body larger than {max_body} bytes")));
    }
    if target.len() > MAX_TARGET_LEN {
        return Err(bad("request target too long"));
    }
    match header_text(headers, X_M2M_RI, rqi_s)? {
        None | Some("") => return Err(bad("missing X-M2M-RI (Request Identifier)")),
        Some(s) if s.len() > MAX_RQI_LEN => return Err(bad("X-M2M-RI too long")),
        Some(_) => {}
    }
    let fr = match header_text(headers, X_M2M_ORIGIN, rqi_s)? {
        None | Some("") => None,
        Some(s) if s.len() > MAX_FROM_LEN => return Err(bad("X-M2M-Origin too long")),
        Some(s) => Some(s.to_string()),
    };
    let rvi = header_text(headers, X_M2M_RVI, rqi_s)?.map(str::to_string);
    let ot = header_text(headers, X_M2M_OT, rqi_s)?.map(str::to_string);
    let vsi = header_text(headers, X_M2M_VSI, rqi_s)?.map(str::to_string);

    if let Some(accept) = header_text(headers, ACCEPT.as_str(), rqi_s)? {
        if !accept.is_empty() && !accepts_json(accept) {
            return Err(Rejection::new(
                Rsc::NotAcceptable,
                rqi_s,
                "Accept admits no JSON media type; this CSE answers in JSON only",
            ));
        }
    }

    let ct = match header_text(headers, CONTENT_TYPE.as_str(), rqi_s)? {
        None | Some("") => None,
        Some(v) => Some(parse_content_type(v, rqi_s)?),
    };
    let pc = if body.is_empty() {
        None
    } else {
        match &ct {
            None => return Err(bad("a message body needs a Content-Type (TS-0009 §6.4.3)")),
            Some(c) if !c.json => {
                return Err(Rejection::new(
                    Rsc::UnsupportedMediaType,
                    rqi_s,
                    format!("unsupported media type {:?}: use application/json", c.media),
                ))
            }
            Some(_) => Some(
                m2msec_proto::primitive::json_strict(body)
                    .map_err(|e| bad(&format!("message body is not JSON: {e}")))?,
            ),
        }
    };
    let ty = ct.as_ref().and_then(|c| c.ty);

    let op = if *method == Method::POST {
        if ty.is_some() {
            Operation::Create
        } else {
            Operation::Notify
        }
    } else if *method == Method::GET {
        Operation::Retrieve
    } else if *method == Method::PUT {
        Operation::Update
    } else if *method == Method::DELETE {
        Operation::Delete
    } else {
        return Err(Rejection::new(
            Rsc::OperationNotAllowed,
            rqi_s,
            format!("method {method} is not mapped to a oneM2M operation (TS-0009 §6.2.1)"),
        ));
    };
    if ty.is_some() && op != Operation::Create {
        return Err(bad("ty in Content-Type is only allowed in a POST (CREATE)"));
    }

    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    let to = to_from_path(path).ok_or_else(|| bad("request target is not a resource ID"))?;

    let mut prim = Map::new();
    prim.insert("op".into(), Value::from(op as u8));
    prim.insert("to".into(), Value::from(to));
    if let Some(fr) = fr {
        prim.insert("fr".into(), Value::from(fr));
    }
    prim.insert("rqi".into(), Value::from(rqi.clone()));
    if let Some(ty) = ty {
        prim.insert("ty".into(), Value::from(ty));
    }
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

    let mut fields = QueryFields::default();
    if let Some(q) = query.map(|q| q.split_once('#').map_or(q, |(q, _)| q)) {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k).ok_or_else(|| bad("query field name is not valid text"))?;
            let v = percent_decode(v).ok_or_else(|| bad("query field value is not valid text"))?;
            if k.is_empty() {
                return Err(bad("empty query field name"));
            }
            if fields.count() >= 64 {
                return Err(bad("too many query fields"));
            }
            fields.take(&k, &v).map_err(|e| bad(&e))?;
        }
    }
    let mut unsupported = fields.apply(&mut prim);
    for (h, short) in UNSUPPORTED_HEADERS {
        if headers.contains_key(h) {
            unsupported.push(short);
        }
    }

    let mut req = RequestPrimitive::from_value(Value::Object(prim)).map_err(|e| Rejection {
        error: e,
        rqi: rqi.clone(),
    })?;
    for u in unsupported {
        if !req.unsupported.contains(&u) {
            req.unsupported.push(u);
        }
    }
    Ok(req)
}

fn insert_header(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// The URI of a created resource for `Content-Location` (TS-0009 §6.4.4): the `ri` of the
/// resource representation in the content of a CREATE response.
fn created_ri(pc: Option<&Value>) -> Option<&str> {
    pc?.as_object()?
        .values()
        .find_map(|v| v.as_object()?.get("ri")?.as_str())
}

/// Maps a response primitive to an HTTP response (TS-0009 §6.3, §6.4, §6.5). The body is the
/// JSON Content, if any.
pub fn response_to_http(resp: &ResponsePrimitive) -> Response<Bytes> {
    let body = match &resp.pc {
        Some(pc) => serde_json::to_vec(pc).map(Bytes::from).unwrap_or_default(),
        None => Bytes::new(),
    };
    let mut r = Response::new(body);
    *r.status_mut() = http_status(resp.rsc);
    let h = r.headers_mut();
    insert_header(h, X_M2M_RSC, &resp.rsc.as_u16().to_string());
    insert_header(h, X_M2M_RI, &resp.rqi);
    if let Some(fr) = &resp.fr {
        insert_header(h, X_M2M_ORIGIN, fr);
    }
    if let Some(rvi) = &resp.rvi {
        insert_header(h, X_M2M_RVI, rvi);
    }
    if let Some(ot) = &resp.ot {
        insert_header(h, X_M2M_OT, &ot.to_string());
    }
    if let Some(vsi) = &resp.vsi {
        insert_header(h, X_M2M_VSI, vsi);
    }
    if resp.pc.is_some() {
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if resp.rsc == Rsc::Created {
        if let Some(ri) = created_ri(resp.pc.as_ref()) {
            if let Ok(v) = HeaderValue::from_str(&path_from_to(ri)) {
                h.insert(CONTENT_LOCATION, v);
            }
        }
    }
    r
}

/// Maps a request primitive to an HTTP request for `host` (the originator side of TS-0009 §6).
pub fn request_to_http(req: &RequestPrimitive, host: &str) -> Result<Request<Bytes>, CseError> {
    let method = match req.op {
        Operation::Create | Operation::Notify => Method::POST,
        Operation::Retrieve => Method::GET,
        Operation::Update => Method::PUT,
        Operation::Delete => Method::DELETE,
    };
    let mut target = path_from_to(&req.to);
    if let Some(rcn) = req.rcn {
        target.push_str(&format!("?rcn={}", rcn as u8));
    }
    let body = match &req.pc {
        Some(pc) => serde_json::to_vec(pc)
            .map(Bytes::from)
            .map_err(|e| CseError::bad_request(e.to_string()))?,
        None => Bytes::new(),
    };
    let mut r = Request::new(body);
    *r.method_mut() = method;
    *r.uri_mut() = target
        .parse()
        .map_err(|_| CseError::bad_request("To cannot be written as a request target"))?;
    let h = r.headers_mut();
    let val = |what: &str, s: &str| {
        HeaderValue::from_str(s)
            .map_err(|_| CseError::bad_request(format!("{what} is not a valid header value")))
    };
    h.insert(hyper::http::header::HOST, val("host", host)?);
    h.insert(HeaderName::from_static(X_M2M_RI), val("rqi", &req.rqi)?);
    if let Some(fr) = &req.fr {
        h.insert(HeaderName::from_static(X_M2M_ORIGIN), val("From", fr)?);
    }
    if let Some(rvi) = &req.rvi {
        h.insert(HeaderName::from_static(X_M2M_RVI), val("rvi", rvi)?);
    }
    h.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let ct = match req.ty {
        Some(ty) => format!("application/json;ty={ty}"),
        None => "application/json".to_string(),
    };
    if req.pc.is_some() || req.ty.is_some() {
        h.insert(CONTENT_TYPE, val("Content-Type", &ct)?);
    }
    Ok(r)
}

/// Maps an HTTP response back to a response primitive (originator side): `X-M2M-RSC` is
/// required; the body, if any, must be JSON.
pub fn response_from_http(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<ResponsePrimitive, CseError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let rsc = text(X_M2M_RSC)
        .and_then(|s| s.trim().parse::<u16>().ok())
        .and_then(Rsc::from_u16)
        .ok_or_else(|| {
            CseError::bad_request(format!("HTTP {status} without a known X-M2M-RSC header"))
        })?;
    let mut r = ResponsePrimitive::new(rsc, text(X_M2M_RI).unwrap_or_default());
    r.fr = text(X_M2M_ORIGIN).map(str::to_string);
    r.rvi = text(X_M2M_RVI).map(str::to_string);
    r.vsi = text(X_M2M_VSI).map(str::to_string);
    r.ot = text(X_M2M_OT).and_then(|s| s.parse().ok());
    if !body.is_empty() {
        r.pc = Some(
            serde_json::from_slice(body)
                .map_err(|e| CseError::bad_request(format!("response body is not JSON: {e}")))?,
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn create_ae() -> (HeaderMap, Vec<u8>) {
        (
            headers(&[
                ("x-m2m-origin", "C"),
                ("x-m2m-ri", "r1"),
                ("x-m2m-rvi", "3"),
                ("content-type", "application/json;ty=2"),
            ]),
            br#"{"m2m:ae":{"rn":"light","api":"Nlight","rr":false,"srv":["3"]}}"#.to_vec(),
        )
    }

    #[test]
    fn create_maps_to_primitive() {
        let (h, body) = create_ae();
        let r = request_from_http(&Method::POST, "/cb", &h, &body, DEFAULT_MAX_BODY).unwrap();
        assert_eq!(r.op, Operation::Create);
        assert_eq!(r.to, "cb");
        assert_eq!(r.fr.as_deref(), Some("C"));
        assert_eq!(r.rqi, "r1");
        assert_eq!(r.ty, Some(2));
        assert_eq!(r.rvi.as_deref(), Some("3"));
        assert_eq!(r.pc.unwrap()["m2m:ae"]["api"], json!("Nlight"));
    }

    #[test]
    fn path_forms_of_table_6_2_2_1_1() {
        for (path, to) in [
            (
                "/CSEBase/ae12/cont27/contInst696",
                "CSEBase/ae12/cont27/contInst696",
            ),
            // The reverse of the concatenation keeps a trailing '/' (the engine refuses it).
            ("/cse-in/", "cse-in/"),
            ("/~/id-in/cse-in/", "/id-in/cse-in/"),
            ("/cin00856", "cin00856"),
            ("/~/CSE178/CSEBase/ae12", "/CSE178/CSEBase/ae12"),
            ("/~/CSE178/cin00856", "/CSE178/cin00856"),
            (
                "/_/mym2msp.org/CSE178/cin00856",
                "//mym2msp.org/CSE178/cin00856",
            ),
            ("/cb/a%20b", "cb/a b"),
        ] {
            assert_eq!(to_from_path(path).as_deref(), Some(to), "{path}");
            if !path.ends_with('/') {
                assert_eq!(to_from_path(&path_from_to(to)).as_deref(), Some(to));
            }
        }
        for bad in ["", "/", "/~/", "/_/", "cb", "/cb%zz", "/cb%00x", "/%ff"] {
            assert_eq!(to_from_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn methods_and_query() {
        let h = headers(&[("x-m2m-origin", "Cae"), ("x-m2m-ri", "r2")]);
        let r = request_from_http(&Method::GET, "/cb/Cae?rcn=4", &h, b"", 10).unwrap();
        assert_eq!(r.op, Operation::Retrieve);
        assert_eq!(r.rcn, Some(ResultContent::AttributesAndChildResources));
        let r = request_from_http(&Method::DELETE, "/cb/Cae", &h, b"", 10).unwrap();
        assert_eq!(r.op, Operation::Delete);
        let r = request_from_http(&Method::GET, "/cb?fu=1&ty=3&lbl=a+b", &h, b"", 10).unwrap();
        assert_eq!(r.fc.unwrap()["ty"], json!(["3"]));
        let r = request_from_http(&Method::GET, "/cb?rt=1&rp=PT1S", &h, b"", 10).unwrap();
        assert_eq!(r.unsupported, vec!["rt", "rp"]);
        let e = request_from_http(&Method::PATCH, "/cb", &h, b"", 10).unwrap_err();
        assert_eq!(e.error.rsc, Rsc::OperationNotAllowed);
        assert_eq!(e.rqi, "r2");
        for t in ["/cb?rcn=99", "/cb?rcn=1&rcn=1", "/cb?=1", "/cb?rt=x"] {
            let e = request_from_http(&Method::GET, t, &h, b"", 10).unwrap_err();
            assert_eq!(e.error.rsc, Rsc::BadRequest, "{t}");
        }
        // POST without ty is a NOTIFY (TS-0009 §6.2.1).
        let hj = headers(&[("x-m2m-ri", "r3"), ("content-type", "application/json")]);
        let r = request_from_http(&Method::POST, "/cb", &hj, b"{}", 10).unwrap();
        assert_eq!(r.op, Operation::Notify);
    }

    #[test]
    fn header_and_body_errors() {
        let (h, body) = create_ae();
        let cases: Vec<(HeaderMap, &[u8], Rsc)> = vec![
            // No X-M2M-RI.
            (
                headers(&[("content-type", "application/json;ty=2")]),
                b"{}",
                Rsc::BadRequest,
            ),
            // Body without Content-Type.
            (headers(&[("x-m2m-ri", "1")]), b"{}", Rsc::BadRequest),
            // XML, CBOR, text: 4015.
            (
                headers(&[("x-m2m-ri", "1"), ("content-type", "application/xml;ty=2")]),
                b"<x/>",
                Rsc::UnsupportedMediaType,
            ),
            (
                headers(&[("x-m2m-ri", "1"), ("content-type", "text/plain")]),
                b"x",
                Rsc::UnsupportedMediaType,
            ),
            // Malformed JSON.
            (
                headers(&[("x-m2m-ri", "1"), ("content-type", "application/json;ty=2")]),
                b"{\"m2m:ae\":",
                Rsc::BadRequest,
            ),
            // ty not a number, twice.
            (
                headers(&[
                    ("x-m2m-ri", "1"),
                    ("content-type", "application/json;ty=ae"),
                ]),
                b"{}",
                Rsc::BadRequest,
            ),
            (
                headers(&[
                    ("x-m2m-ri", "1"),
                    ("content-type", "application/json;ty=2;ty=3"),
                ]),
                b"{}",
                Rsc::BadRequest,
            ),
            // Duplicate X-M2M-Origin.
            (
                headers(&[
                    ("x-m2m-ri", "1"),
                    ("x-m2m-origin", "Ca"),
                    ("x-m2m-origin", "Cb"),
                    ("content-type", "application/json;ty=2"),
                ]),
                b"{}",
                Rsc::BadRequest,
            ),
            // Accept excluding JSON.
            (
                headers(&[
                    ("x-m2m-ri", "1"),
                    ("accept", "application/xml"),
                    ("content-type", "application/json;ty=2"),
                ]),
                b"{}",
                Rsc::NotAcceptable,
            ),
            // Bad originating timestamp.
            (
                headers(&[
                    ("x-m2m-ri", "1"),
                    ("x-m2m-ot", "yesterday"),
                    ("content-type", "application/json;ty=2"),
                ]),
                b"{}",
                Rsc::BadRequest,
            ),
        ];
        for (h, b, rsc) in cases {
            let e = request_from_http(&Method::POST, "/cb", &h, b, DEFAULT_MAX_BODY).unwrap_err();
            assert_eq!(e.error.rsc, rsc, "{h:?}");
            let resp = response_to_http(&e.into_response(Some("/cse-in")));
            assert_eq!(resp.status(), http_status(rsc));
        }
        // Body over the limit.
        let e = request_from_http(&Method::POST, "/cb", &h, &body, 8).unwrap_err();
        assert_eq!((e.error.rsc, e.rqi.as_str()), (Rsc::BadRequest, "r1"));
        // ty on GET.
        let e = request_from_http(&Method::GET, "/cb", &h, b"", 10).unwrap_err();
        assert_eq!(e.error.rsc, Rsc::BadRequest);
        // Unknown ty is left to the engine (it is a number).
        let h = headers(&[
            ("x-m2m-ri", "1"),
            ("content-type", "application/json;ty=999"),
        ]);
        let r = request_from_http(&Method::POST, "/cb", &h, b"{}", 10).unwrap();
        assert_eq!(r.ty, Some(999));
    }

    #[test]
    fn status_table_6_3_2_1() {
        assert_eq!(http_status(Rsc::Deleted), StatusCode::OK);
        assert_eq!(http_status(Rsc::Created), StatusCode::CREATED);
        assert_eq!(
            http_status(Rsc::ContentsUnacceptable),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            http_status(Rsc::OriginatorNotAuthenticated),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            http_status(Rsc::SecurityAssociationRequired),
            StatusCode::FORBIDDEN
        );
        assert_eq!(http_status(Rsc::TargetNotReachable), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Rsc::AlreadyExists), StatusCode::CONFLICT);
        assert_eq!(
            http_status(Rsc::ReleaseVersionNotSupported),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            http_status(Rsc::RequestTimeout),
            StatusCode::GATEWAY_TIMEOUT
        );
        for r in Rsc::ALL {
            let s = http_status(r).as_u16();
            assert_eq!(r.is_success(), (200..300).contains(&s), "{r}");
        }
    }

    #[test]
    fn response_round_trip() {
        let mut resp = ResponsePrimitive::new(Rsc::Created, "r1");
        resp.pc = Some(json!({"m2m:ae": {"ri": "Cabc", "rn": "light"}}));
        resp.fr = Some("/cse-in".into());
        resp.rvi = Some("3".into());
        let h = response_to_http(&resp);
        assert_eq!(h.status(), StatusCode::CREATED);
        assert_eq!(h.headers()[X_M2M_RSC], "2001");
        assert_eq!(h.headers()[CONTENT_LOCATION], "/Cabc");
        assert_eq!(h.headers()[CONTENT_TYPE], "application/json");
        let back = response_from_http(h.status(), h.headers(), h.body()).unwrap();
        assert_eq!(back.rsc, Rsc::Created);
        assert_eq!(back.rqi, "r1");
        assert_eq!(back.pc, resp.pc);
        assert_eq!(back.fr.as_deref(), Some("/cse-in"));
        assert!(response_from_http(StatusCode::OK, &HeaderMap::new(), b"").is_err());
    }

    #[test]
    fn request_round_trip() {
        let req =
            RequestPrimitive::new(Operation::Create, "//sp.example/cse-in/cb", Some("C"), "q")
                .with_ty(2)
                .with_pc(json!({"m2m:ae": {"api": "Nx"}}))
                .with_rcn(ResultContent::Attributes);
        let h = request_to_http(&req, "cse.example").unwrap();
        assert_eq!(h.uri().path(), "/_/sp.example/cse-in/cb");
        let target = h.uri().path_and_query().unwrap().as_str().to_string();
        let back = request_from_http(h.method(), &target, h.headers(), h.body(), DEFAULT_MAX_BODY)
            .unwrap();
        assert_eq!(back, req);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Garbage in never panics; a rejection always maps to an error status.
        #[test]
        fn garbage_never_panics(
            method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "X"]),
            target in "\\PC{0,64}",
            names in prop::collection::vec(
                prop::sample::select(vec![
                    "x-m2m-ri", "x-m2m-origin", "x-m2m-rvi", "x-m2m-ot", "content-type",
                    "accept", "x-m2m-ret", "host",
                ]),
                0..6,
            ),
            values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 6),
            body in prop::collection::vec(any::<u8>(), 0..128),
        ) {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let mut h = HeaderMap::new();
            for (n, v) in names.iter().zip(values.iter()) {
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    h.append(HeaderName::from_static(n), v);
                }
            }
            match request_from_http(&method, &target, &h, &body, 100) {
                Ok(r) => { let _ = r.to_value(); }
                Err(e) => {
                    let resp = response_to_http(&e.into_response(None));
                    prop_assert!(resp.status().as_u16() >= 400);
                }
            }
            let _ = to_from_path(&target);
        }

        /// Structured garbage closer to real requests.
        #[test]
        fn near_valid_never_panics(
            path in "/(~/|_/)?[a-zA-Z0-9%/._~-]{0,40}(\\?[a-z=&0-9%+]{0,30})?",
            ct in "application/(json|xml|vnd\\.onem2m-res\\+json)(; ?ty=[0-9a-z]{0,4})?",
            body in "\\PC{0,60}",
        ) {
            let mut h = HeaderMap::new();
            h.insert(HeaderName::from_static(X_M2M_RI), HeaderValue::from_static("r"));
            if let Ok(v) = HeaderValue::from_str(&ct) {
                h.insert(CONTENT_TYPE, v);
            }
            for m in [Method::POST, Method::GET, Method::PUT] {
                let _ = request_from_http(&m, &path, &h, body.as_bytes(), 1024);
            }
        }
    }
}
