//! The resource types this CSE hosts (TS-0001 §9.6; TS-0004 §7.4 and the short names of TS-0004
//! §8.2.3): `<accessControlPolicy>` (ty 1), `<AE>` (2), `<container>` (3), `<contentInstance>` (4),
//! `<CSEBase>` (5) and `<remoteCSE>` (16); their attributes; which attributes a CREATE or UPDATE
//! may carry; resource names; and the addressing forms of TS-0001 §7.2 / TS-0004 §6.2.3
//! (CSE-relative, SP-relative and absolute; structured by resource names or unstructured by
//! resource ID).
//!
//! Validation here is total and strict: a read-only attribute (`ri`, `ct`, `cni`, `aei`, …) in a
//! request, an unknown attribute, a wrong JSON type, or a name that tries a path trick all give
//! BAD_REQUEST (TS-0004 §7.3.2.x "validate the provided attributes").

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use m2msec_core::sec::Labels;
use m2msec_core::timestamp::Timestamp;

use crate::acp::SetOfAcrs;
use crate::primitive::Operation;
use crate::rsc::{CseError, Rsc};

/// Longest resource name accepted, in bytes.
pub const MAX_RESOURCE_NAME_LEN: usize = 128;
/// Most entries in a list attribute (`acpi`, `poa`, `lbl`, `srv`).
pub const MAX_LIST_LEN: usize = 32;
/// Longest string attribute accepted (other than `con`).
pub const MAX_STRING_ATTR_LEN: usize = 1024;

/// `m2m:resourceType` values hosted here (TS-0004 §6.3.4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    /// 1 accessControlPolicy (`m2m:acp`).
    AccessControlPolicy,
    /// 2 AE (`m2m:ae`).
    Ae,
    /// 3 container (`m2m:cnt`).
    Container,
    /// 4 contentInstance (`m2m:cin`).
    ContentInstance,
    /// 5 CSEBase (`m2m:cb`).
    CseBase,
    /// 16 remoteCSE (`m2m:csr`).
    RemoteCse,
}

impl ResourceType {
    /// The number (TS-0004 table 6.3.4.2.1-1).
    pub fn as_u64(self) -> u64 {
        match self {
            ResourceType::AccessControlPolicy => 1,
            ResourceType::Ae => 2,
            ResourceType::Container => 3,
            ResourceType::ContentInstance => 4,
            ResourceType::CseBase => 5,
            ResourceType::RemoteCse => 16,
        }
    }

    /// The type for a number, if hosted here.
    pub fn from_u64(v: u64) -> Option<ResourceType> {
        Some(match v {
            1 => ResourceType::AccessControlPolicy,
            2 => ResourceType::Ae,
            3 => ResourceType::Container,
            4 => ResourceType::ContentInstance,
            5 => ResourceType::CseBase,
            16 => ResourceType::RemoteCse,
            _ => return None,
        })
    }

    /// The JSON root element name (TS-0004 table 8.2.4-1 short names, prefixed `m2m:`).
    pub fn root_name(self) -> &'static str {
        match self {
            ResourceType::AccessControlPolicy => "m2m:acp",
            ResourceType::Ae => "m2m:ae",
            ResourceType::Container => "m2m:cnt",
            ResourceType::ContentInstance => "m2m:cin",
            ResourceType::CseBase => "m2m:cb",
            ResourceType::RemoteCse => "m2m:csr",
        }
    }

    /// Prefix of generated resource IDs.
    pub fn ri_prefix(self) -> &'static str {
        match self {
            ResourceType::AccessControlPolicy => "acp",
            ResourceType::Ae => "ae",
            ResourceType::Container => "cnt",
            ResourceType::ContentInstance => "cin",
            ResourceType::CseBase => "cb",
            ResourceType::RemoteCse => "csr",
        }
    }

    /// Whether `child` may be created under this type (TS-0001 §9.6 child resource tables,
    /// restricted to the types hosted here).
    pub fn allows_child(self, child: ResourceType) -> bool {
        use ResourceType::*;
        match self {
            CseBase => matches!(child, Ae | RemoteCse | Container | AccessControlPolicy),
            Ae | RemoteCse => matches!(child, Container | AccessControlPolicy),
            Container => matches!(child, Container | ContentInstance),
            ContentInstance | AccessControlPolicy => false,
        }
    }

    /// Whether the type has an `accessControlPolicyIDs` attribute (TS-0001 §9.6.1.3.2: not
    /// `<accessControlPolicy>` nor `<contentInstance>`, which uses its parent's, §9.6.7).
    pub fn has_acpi(self) -> bool {
        !matches!(
            self,
            ResourceType::AccessControlPolicy | ResourceType::ContentInstance
        )
    }
}

/// Type-specific attributes (TS-0001 §9.6.3, §9.6.4, §9.6.5, §9.6.6, §9.6.7, §9.6.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Attrs {
    /// `<CSEBase>`.
    CseBase {
        /// cseType (`cst`): 1 IN-CSE, 2 MN-CSE, 3 ASN-CSE.
        cst: u8,
        /// CSE-ID (`csi`), SP-relative.
        csi: String,
        /// supportedResourceType (`srt`).
        srt: Vec<u64>,
        /// pointOfAccess (`poa`).
        poa: Vec<String>,
        /// supportedReleaseVersions (`srv`).
        srv: Vec<String>,
    },
    /// `<AE>`.
    Ae {
        /// App-ID (`api`).
        api: String,
        /// appName (`apn`).
        apn: Option<String>,
        /// AE-ID (`aei`): the AE-ID-Stem for C-type and S-type AEs registered here.
        aei: String,
        /// requestReachability (`rr`).
        rr: bool,
        /// pointOfAccess (`poa`).
        poa: Option<Vec<String>>,
        /// supportedReleaseVersions (`srv`).
        srv: Option<Vec<String>>,
        /// ontologyRef (`or`).
        or: Option<String>,
        /// contentSerialization (`csz`).
        csz: Option<Vec<String>>,
    },
    /// `<remoteCSE>`.
    RemoteCse {
        /// cseType (`cst`).
        cst: Option<u8>,
        /// CSE-ID (`csi`) of the registree CSE, SP-relative.
        csi: String,
        /// CSEBase (`cb`).
        cb: String,
        /// requestReachability (`rr`).
        rr: bool,
        /// pointOfAccess (`poa`).
        poa: Option<Vec<String>>,
        /// supportedReleaseVersions (`srv`).
        srv: Option<Vec<String>>,
    },
    /// `<container>`.
    Container {
        /// maxNrOfInstances (`mni`).
        mni: Option<u64>,
        /// maxByteSize (`mbs`).
        mbs: Option<u64>,
        /// currentNrOfInstances (`cni`).
        cni: u64,
        /// currentByteSize (`cbs`).
        cbs: u64,
        /// stateTag (`st`).
        st: u64,
        /// ontologyRef (`or`).
        or: Option<String>,
    },
    /// `<contentInstance>`.
    ContentInstance {
        /// contentInfo (`cnf`).
        cnf: Option<String>,
        /// contentSize (`cs`).
        cs: u64,
        /// content (`con`).
        con: Value,
        /// stateTag (`st`).
        st: u64,
        /// ontologyRef (`or`).
        or: Option<String>,
    },
    /// `<accessControlPolicy>`.
    Acp {
        /// privileges (`pv`).
        pv: SetOfAcrs,
        /// selfPrivileges (`pvs`).
        pvs: SetOfAcrs,
    },
}

/// A stored resource: the universal/common attributes (TS-0001 §9.6.1.3) and its [`Attrs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// resourceType (`ty`).
    pub ty: ResourceType,
    /// resourceID (`ri`): the unstructured CSE-relative ID.
    pub ri: String,
    /// resourceName (`rn`).
    pub rn: String,
    /// parentID (`pi`): the parent's `ri`; `None` for `<CSEBase>`.
    pub pi: Option<String>,
    /// The structured CSE-relative ID: `<CSEBase rn>/<rn>/…` (TS-0001 §7.2).
    pub path: String,
    /// creationTime (`ct`).
    pub ct: Timestamp,
    /// lastModifiedTime (`lt`).
    pub lt: Timestamp,
    /// expirationTime (`et`).
    pub et: Option<Timestamp>,
    /// labels (`lbl`).
    pub lbl: Option<Labels>,
    /// accessControlPolicyIDs (`acpi`).
    pub acpi: Option<Vec<String>>,
    /// The originator that created the resource, absolute form (internal): the default access
    /// rule of TS-0001 §10.2.3.1 (acpi NULL → creator) uses it.
    pub creator: Option<String>,
    /// creator (`cr`) as exposed: present only if the CREATE asked for it with a NULL value, and
    /// then equal to the request's `From` (TS-0004 §7.3.3.3, §7.3.3.5).
    #[serde(default)]
    pub cr: Option<String>,
    /// Type-specific attributes.
    pub attrs: Attrs,
}

fn ts(t: &Timestamp) -> Value {
    Value::from(t.to_string())
}

fn opt_list(m: &mut Map<String, Value>, k: &str, v: &Option<Vec<String>>) {
    if let Some(v) = v {
        m.insert(k.into(), Value::from(v.clone()));
    }
}

impl Resource {
    /// The attributes as a JSON object with short names (TS-0004 §8.2.3), without the root.
    pub fn attributes(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("ty".into(), Value::from(self.ty.as_u64()));
        m.insert("ri".into(), Value::from(self.ri.clone()));
        m.insert("rn".into(), Value::from(self.rn.clone()));
        match &self.pi {
            Some(pi) => {
                m.insert("pi".into(), Value::from(pi.clone()));
            }
            // TS-0004 §7.4.3.1: the parentID of <CSEBase> is the empty string.
            None => {
                m.insert("pi".into(), Value::from(""));
            }
        }
        m.insert("ct".into(), ts(&self.ct));
        m.insert("lt".into(), ts(&self.lt));
        if let Some(et) = &self.et {
            m.insert("et".into(), ts(et));
        }
        if let Some(l) = &self.lbl {
            m.insert("lbl".into(), Value::from(l.as_slice().to_vec()));
        }
        opt_list(&mut m, "acpi", &self.acpi);
        match &self.attrs {
            Attrs::CseBase {
                cst,
                csi,
                srt,
                poa,
                srv,
            } => {
                m.insert("cst".into(), Value::from(*cst));
                m.insert("csi".into(), Value::from(csi.clone()));
                m.insert("srt".into(), Value::from(srt.clone()));
                m.insert("poa".into(), Value::from(poa.clone()));
                m.insert("srv".into(), Value::from(srv.clone()));
            }
            Attrs::Ae {
                api,
                apn,
                aei,
                rr,
                poa,
                srv,
                or,
                csz,
            } => {
                m.insert("api".into(), Value::from(api.clone()));
                if let Some(a) = apn {
                    m.insert("apn".into(), Value::from(a.clone()));
                }
                m.insert("aei".into(), Value::from(aei.clone()));
                m.insert("rr".into(), Value::from(*rr));
                opt_list(&mut m, "poa", poa);
                opt_list(&mut m, "srv", srv);
                if let Some(o) = or {
                    m.insert("or".into(), Value::from(o.clone()));
                }
                opt_list(&mut m, "csz", csz);
            }
            Attrs::RemoteCse {
                cst,
                csi,
                cb,
                rr,
                poa,
                srv,
            } => {
                if let Some(c) = cst {
                    m.insert("cst".into(), Value::from(*c));
                }
                m.insert("csi".into(), Value::from(csi.clone()));
                m.insert("cb".into(), Value::from(cb.clone()));
                m.insert("rr".into(), Value::from(*rr));
                opt_list(&mut m, "poa", poa);
                opt_list(&mut m, "srv", srv);
            }
            Attrs::Container {
                mni,
                mbs,
                cni,
                cbs,
                st,
                or,
            } => {
                if let Some(c) = &self.cr {
                    m.insert("cr".into(), Value::from(c.clone()));
                }
                m.insert("st".into(), Value::from(*st));
                if let Some(v) = mni {
                    m.insert("mni".into(), Value::from(*v));
                }
                if let Some(v) = mbs {
                    m.insert("mbs".into(), Value::from(*v));
                }
                m.insert("cni".into(), Value::from(*cni));
                m.insert("cbs".into(), Value::from(*cbs));
                if let Some(o) = or {
                    m.insert("or".into(), Value::from(o.clone()));
                }
            }
            Attrs::ContentInstance {
                cnf,
                cs,
                con,
                st,
                or,
            } => {
                if let Some(c) = &self.cr {
                    m.insert("cr".into(), Value::from(c.clone()));
                }
                m.insert("st".into(), Value::from(*st));
                if let Some(c) = cnf {
                    m.insert("cnf".into(), Value::from(c.clone()));
                }
                m.insert("cs".into(), Value::from(*cs));
                m.insert("con".into(), con.clone());
                if let Some(o) = or {
                    m.insert("or".into(), Value::from(o.clone()));
                }
            }
            Attrs::Acp { pv, pvs } => {
                m.insert("pv".into(), serde_json::to_value(pv).unwrap_or(Value::Null));
                m.insert(
                    "pvs".into(),
                    serde_json::to_value(pvs).unwrap_or(Value::Null),
                );
            }
        }
        m
    }

    /// The representation `{"m2m:xxx": {attributes}}` (TS-0004 §8.2.4).
    pub fn to_m2m(&self) -> Value {
        let mut outer = Map::new();
        outer.insert(self.ty.root_name().into(), Value::Object(self.attributes()));
        Value::Object(outer)
    }
}

// ---------------------------------------------------------------------------------------------
// Names and addresses
// ---------------------------------------------------------------------------------------------

/// Validates a resource name (`rn`, TS-0001 §9.6.1.3.2, TS-0004 §6.2.3): 1 to
/// [`MAX_RESOURCE_NAME_LEN`] bytes of RFC 3986 `unreserved` characters (`A-Z a-z 0-9 - . _ ~`),
/// and not `.`, `..` or `-` (which would alias the current, parent or CSEBase segment of a
/// structured address). No `/`, `%`, whitespace or control characters.
pub fn validate_resource_name(rn: &str) -> Result<(), CseError> {
    if rn.is_empty() {
        return Err(CseError::bad_request("resource name is empty"));
    }
    if rn.len() > MAX_RESOURCE_NAME_LEN {
        return Err(CseError::bad_request(format!(
            "resource name longer than {MAX_RESOURCE_NAME_LEN} bytes"
        )));
    }
    if matches!(rn, "." | ".." | "-") {
        return Err(CseError::bad_request(format!(
            "resource name {rn:?} is reserved"
        )));
    }
    if let Some(c) = rn
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')))
    {
        return Err(CseError::bad_request(format!(
            "resource name contains {c:?}"
        )));
    }
    Ok(())
}

/// The identity a CSE needs to interpret addresses (TS-0004 §6.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CseAddress {
    /// The M2M-SP-ID, without `//`.
    pub sp: String,
    /// The CSE-ID stem (without `/`).
    pub cse_stem: String,
    /// The `<CSEBase>` resource name.
    pub cb_rn: String,
}

/// Where a `To` parameter points (TS-0001 §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The `<CSEBase>` itself.
    CseBase,
    /// An unstructured CSE-relative resource ID (`ri`).
    Unstructured(String),
    /// A structured path: the names below the `<CSEBase>`.
    Structured(Vec<String>),
    /// `<ri>/la` or `<ri>/ol`: the latest (`true`) or oldest instance of an unstructured-addressed
    /// `<container>` (TS-0001 §9.6.27, §9.6.28).
    UnstructuredVirtual(String, bool),
}

/// Interprets `To` (TS-0001 §7.2, TS-0004 §6.2.3): absolute `//sp/cse/…`, SP-relative `/cse/…`
/// or CSE-relative `…`; then structured (`<cb rn>/a/b`, or `-/a/b` where `-` stands for the
/// CSEBase name) or unstructured (`<ri>`).
///
/// Another SP or another CSE → TARGET_NOT_REACHABLE (this engine does not forward). Empty
/// segments, `.`, `..`, invalid characters → BAD_REQUEST.
pub fn parse_to(to: &str, me: &CseAddress) -> Result<Target, CseError> {
    let unreachable = || CseError::new(Rsc::TargetNotReachable, "target is not hosted by this CSE");
    let cse_rel: &str = if let Some(rest) = to.strip_prefix("//") {
        let (sp, rest) = rest.split_once('/').unwrap_or((rest, ""));
        if sp != me.sp {
            return Err(unreachable());
        }
        let (cse, rest) = match rest.split_once('/') {
            Some((c, r)) => (c, Some(r)),
            None => (rest, None),
        };
        if cse != me.cse_stem {
            return Err(unreachable());
        }
        match rest {
            None => return Ok(Target::CseBase),
            // `/cse-id/` is not an address of <CSEBase>: an empty last segment.
            Some("") => return Err(CseError::bad_request("empty segment in target")),
            Some(r) => r,
        }
    } else if let Some(rest) = to.strip_prefix('/') {
        let (cse, rest) = match rest.split_once('/') {
            Some((c, r)) => (c, Some(r)),
            None => (rest, None),
        };
        if cse != me.cse_stem {
            return Err(unreachable());
        }
        match rest {
            None => return Ok(Target::CseBase),
            // `/cse-id/` is not an address of <CSEBase>: an empty last segment.
            Some("") => return Err(CseError::bad_request("empty segment in target")),
            Some(r) => r,
        }
    } else {
        to
    };
    if cse_rel.is_empty() {
        return Err(CseError::bad_request("empty target"));
    }
    let mut segs = cse_rel.split('/');
    let first = segs.next().unwrap_or_default();
    let rest: Vec<&str> = segs.collect();
    for s in std::iter::once(first).chain(rest.iter().copied()) {
        if s.is_empty() {
            return Err(CseError::bad_request("empty segment in target"));
        }
        if s == "." || s == ".." {
            return Err(CseError::bad_request(
                "'.' and '..' are not allowed in a target",
            ));
        }
    }
    if first == me.cb_rn || first == "-" {
        if rest.is_empty() {
            return Ok(Target::CseBase);
        }
        for s in &rest {
            validate_resource_name(s)?;
        }
        return Ok(Target::Structured(
            rest.iter().map(|s| s.to_string()).collect(),
        ));
    }
    validate_resource_name(first)?;
    if let [v] = rest.as_slice() {
        if *v == "la" || *v == "ol" {
            return Ok(Target::UnstructuredVirtual(first.to_string(), *v == "la"));
        }
    }
    if !rest.is_empty() {
        // Unstructured IDs have a single segment here; `ri/…` is not an address form.
        return Err(CseError::not_found("no such resource"));
    }
    Ok(Target::Unstructured(first.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Attribute validation for CREATE and UPDATE
// ---------------------------------------------------------------------------------------------

/// How an attribute may appear in a request (TS-0004 §7.4.x attribute tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Mandatory in CREATE, optional in UPDATE.
    Mo,
    /// Mandatory in CREATE, not in UPDATE.
    Mn,
    /// Optional in CREATE and UPDATE.
    Oo,
    /// Optional in CREATE, not in UPDATE.
    On,
    /// Never in a request (read-only, set by the Hosting CSE).
    Np,
}

const COMMON_RO: &[&str] = &["ty", "ri", "pi", "ct", "lt", "st"];

fn attr_table(ty: ResourceType) -> &'static [(&'static str, Use)] {
    use Use::*;
    match ty {
        ResourceType::Ae => &[
            ("rn", On),
            ("et", Oo),
            ("acpi", Oo),
            ("lbl", Oo),
            ("api", Mn),
            ("apn", Oo),
            ("aei", Np),
            ("rr", Mo),
            ("poa", Oo),
            ("srv", Oo),
            ("or", Oo),
            ("csz", Oo),
        ],
        ResourceType::Container => &[
            ("rn", On),
            ("et", Oo),
            ("acpi", Oo),
            ("lbl", Oo),
            ("cr", On),
            ("mni", Oo),
            ("mbs", Oo),
            ("cni", Np),
            ("cbs", Np),
            ("or", Oo),
        ],
        ResourceType::ContentInstance => &[
            ("rn", On),
            ("et", On),
            ("lbl", On),
            ("cr", On),
            ("cnf", On),
            ("con", Mn),
            ("cs", Np),
            ("or", On),
        ],
        ResourceType::AccessControlPolicy => {
            &[("rn", On), ("et", Oo), ("lbl", Oo), ("pv", Mo), ("pvs", Mo)]
        }
        ResourceType::RemoteCse => &[
            ("rn", On),
            ("et", Oo),
            ("acpi", Oo),
            ("lbl", Oo),
            ("cst", On),
            ("csi", Mn),
            ("cb", Mn),
            ("rr", Mo),
            ("poa", Oo),
            ("srv", Oo),
        ],
        // TS-0001 table 9.6.3-3: accessControlPolicyIDs and labels are RW; <CSEBase> is never
        // created by a request, so only the UPDATE column matters.
        ResourceType::CseBase => &[
            ("rn", Np),
            ("acpi", Oo),
            ("lbl", Oo),
            ("cst", Np),
            ("csi", Np),
            ("srt", Np),
            ("poa", Np),
            ("srv", Np),
        ],
    }
}

/// The validated attributes of a CREATE or UPDATE request's Content, keyed by short name.
/// In an UPDATE, a `null` value (kept as `Value::Null`) deletes an optional attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestAttrs(pub Map<String, Value>);

/// Unwraps `{"m2m:xxx": {...}}` for `ty` and checks every attribute against the CREATE or UPDATE
/// column of its table (TS-0004 §7.4.x): unknown, read-only or missing mandatory → BAD_REQUEST.
pub fn validate_request_attrs(
    ty: ResourceType,
    op: Operation,
    pc: Option<&Value>,
) -> Result<RequestAttrs, CseError> {
    let pc = pc.ok_or_else(|| CseError::bad_request("missing content"))?;
    let outer = pc
        .as_object()
        .ok_or_else(|| CseError::bad_request("content must be a JSON object"))?;
    let root = ty.root_name();
    if outer.len() != 1 {
        return Err(CseError::bad_request(format!(
            "content must have the single member {root:?}"
        )));
    }
    let inner = match outer.get(root) {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(CseError::bad_request(format!("{root} must be an object"))),
        None => {
            return Err(CseError::bad_request(format!(
                "content does not match the resource type: expected {root:?}"
            )))
        }
    };
    let table = attr_table(ty);
    for (k, v) in inner {
        let usage = table.iter().find(|(n, _)| n == k).map(|(_, u)| *u);
        let allowed = match (usage, op) {
            (Some(Use::Mo | Use::Mn | Use::Oo | Use::On), Operation::Create) => true,
            (Some(Use::Mo | Use::Oo), Operation::Update) => true,
            (Some(_), _) => false,
            (None, _) => {
                if COMMON_RO.contains(&k.as_str()) {
                    false
                } else {
                    return Err(CseError::bad_request(format!(
                        "unknown attribute {k:?} for {root}"
                    )));
                }
            }
        };
        if !allowed {
            return Err(CseError::bad_request(format!(
                "attribute {k:?} of {root} cannot be set in this request"
            )));
        }
        if k == "cr" && !v.is_null() {
            // TS-0004 §7.3.3.3: the originator may only ask for `cr` with NULL.
            return Err(CseError::bad_request("creator must be NULL in a CREATE"));
        }
        if v.is_null() && (op == Operation::Create || matches!(usage, Some(Use::Mo))) {
            // Only `cr` may be null in a CREATE (TS-0004 §7.3.3.3: request to set creator).
            if !(op == Operation::Create && k == "cr") {
                return Err(CseError::bad_request(format!(
                    "attribute {k:?} cannot be null"
                )));
            }
        }
    }
    if op == Operation::Create {
        for (n, u) in table {
            if matches!(u, Use::Mo | Use::Mn) && !inner.contains_key(*n) {
                return Err(CseError::bad_request(format!(
                    "mandatory attribute {n:?} missing for {root}"
                )));
            }
        }
    } else if inner.is_empty() {
        return Err(CseError::bad_request("update with no attributes"));
    }
    Ok(RequestAttrs(inner.clone()))
}

impl RequestAttrs {
    /// Whether the attribute is present (null included).
    pub fn has(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }

    /// An optional string attribute, checked for length and control characters.
    pub fn string(&self, k: &str) -> Result<Option<String>, CseError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                check_text(k, s)?;
                Ok(Some(s.clone()))
            }
            Some(_) => Err(CseError::bad_request(format!("{k} must be a string"))),
        }
    }

    /// An optional boolean attribute.
    pub fn boolean(&self, k: &str) -> Result<Option<bool>, CseError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(CseError::bad_request(format!("{k} must be a boolean"))),
        }
    }

    /// An optional non-negative integer attribute.
    pub fn uint(&self, k: &str) -> Result<Option<u64>, CseError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                CseError::bad_request(format!("{k} must be a non-negative integer"))
            }),
        }
    }

    /// An optional list of strings (an empty list is kept as empty).
    pub fn strings(&self, k: &str) -> Result<Option<Vec<String>>, CseError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => {
                if a.len() > MAX_LIST_LEN {
                    return Err(CseError::bad_request(format!("{k} has too many entries")));
                }
                let mut out = Vec::with_capacity(a.len());
                for e in a {
                    let s = e.as_str().ok_or_else(|| {
                        CseError::bad_request(format!("{k} entries must be strings"))
                    })?;
                    check_text(k, s)?;
                    if s.is_empty() {
                        return Err(CseError::bad_request(format!("{k} has an empty entry")));
                    }
                    out.push(s.to_string());
                }
                Ok(Some(out))
            }
            Some(_) => Err(CseError::bad_request(format!(
                "{k} must be an array of strings"
            ))),
        }
    }

    /// `acpi`: absent or null → None (in an UPDATE, null deletes it, and the default privileges
    /// apply again); a list of 1 to [`MAX_LIST_LEN`] IDs → Some. An empty list is BAD_REQUEST:
    /// our reading of TS-0001 §9.6.1.3.2 (multiplicity 0..1 (L): the attribute is either absent
    /// or a list of policy IDs) and TS-0004 §7.3.3.x (an attribute is deleted with null), since
    /// `[]` would otherwise mean either "no policy" (then nobody is granted anything) or
    /// "deleted" (then the creator is); neither is what an originator should get by accident.
    pub fn acpi(&self) -> Result<Option<Vec<String>>, CseError> {
        match self.strings("acpi")? {
            Some(v) if v.is_empty() => Err(CseError::bad_request(
                "acpi must list at least one policy; use null to delete it",
            )),
            other => Ok(other),
        }
    }

    /// `csz` (`m2m:serializations`, TS-0004 table 6.3.3-1): a list of at least one of the
    /// serialization types `application/xml`, `application/json`, `application/cbor` (the
    /// media types of TS-0004 §8.2; the short forms `xml`, `json`, `cbor` of the table's
    /// example are accepted too).
    pub fn serializations(&self) -> Result<Option<Vec<String>>, CseError> {
        let v = self.strings("csz")?;
        if let Some(list) = &v {
            if list.is_empty() {
                return Err(CseError::bad_request("csz must list at least one type"));
            }
            if let Some(bad) = list.iter().find(|t| {
                !matches!(
                    t.as_str(),
                    "application/xml"
                        | "application/json"
                        | "application/cbor"
                        | "xml"
                        | "json"
                        | "cbor"
                )
            }) {
                return Err(CseError::bad_request(format!(
                    "csz: {bad:?} is not a serialization type"
                )));
            }
        }
        Ok(v)
    }

    /// `cnf` as `m2m:contentInfo` (TS-0004 table 6.3.3-1): `type/subtype:encoding[:security]`,
    /// with `encoding` an `m2m:encodingType` (0..=2, table 6.3.4.2.28-1) and `security` an
    /// `m2m:contentSecurity` (0..=5, table 6.3.4.2.38-1). The encoding is mandatory: "a media
    /// type followed by a m2m:encodingType".
    pub fn content_info(&self) -> Result<Option<String>, CseError> {
        let v = self.string("cnf")?;
        if let Some(c) = &v {
            if !valid_content_info(c) {
                return Err(CseError::bad_request(format!(
                    "cnf {c:?} is not an m2m:contentInfo (type/subtype:encoding[:security])"
                )));
            }
        }
        Ok(v)
    }

    /// `lbl` as `m2m:labels`; an empty list means no labels.
    pub fn labels(&self) -> Result<Option<Labels>, CseError> {
        match self.strings("lbl")? {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => Labels::new(v)
                .map(Some)
                .map_err(|e| CseError::bad_request(format!("lbl: {e}"))),
        }
    }

    /// `et` as `m2m:timestamp`, which must be later than `now`.
    pub fn expiration(&self, now: &Timestamp) -> Result<Option<Timestamp>, CseError> {
        match self.string("et")? {
            None => Ok(None),
            Some(s) => {
                let t: Timestamp = s
                    .parse()
                    .map_err(|e| CseError::bad_request(format!("et: {e}")))?;
                if t.to_unix_micros() <= now.to_unix_micros() {
                    return Err(CseError::bad_request("et is in the past"));
                }
                Ok(Some(t))
            }
        }
    }

    /// The raw value.
    pub fn raw(&self, k: &str) -> Option<&Value> {
        self.0.get(k)
    }
}

/// Whether `s` has the form of `m2m:contentInfo` (see [`RequestAttrs::content_info`]).
fn valid_content_info(s: &str) -> bool {
    let mut parts = s.split(':');
    let media = parts.next().unwrap_or_default();
    let enc = parts.next();
    let sec = parts.next();
    if parts.next().is_some() {
        return false;
    }
    // RFC 6838 §4.2 restricted-name: alphanumerics and !#$&-^_.+ ; one '/'.
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 127
            && n.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                    )
            })
    };
    let media_ok = media
        .split_once('/')
        .is_some_and(|(t, st)| name_ok(t) && name_ok(st));
    let enc_ok = matches!(enc, Some("0" | "1" | "2"));
    let sec_ok = matches!(sec, None | Some("0" | "1" | "2" | "3" | "4" | "5"));
    media_ok && enc_ok && sec_ok
}

fn check_text(k: &str, s: &str) -> Result<(), CseError> {
    if s.len() > MAX_STRING_ATTR_LEN {
        return Err(CseError::bad_request(format!("{k} is too long")));
    }
    if s.chars().any(char::is_control) {
        return Err(CseError::bad_request(format!(
            "{k} contains a control character"
        )));
    }
    Ok(())
}

/// Validates an App-ID (TS-0004 §7.4.5.2.1: it must start with `r`, `R` or `N`; TS-0001 §7.1.3).
pub fn validate_app_id(api: &str) -> Result<(), CseError> {
    if !(api.starts_with('r') || api.starts_with('R') || api.starts_with('N')) {
        return Err(CseError::bad_request(
            "App-ID must start with 'r', 'R' or 'N'",
        ));
    }
    if api.len() < 2
        || api
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(CseError::bad_request("invalid App-ID"));
    }
    Ok(())
}

/// The byte size of a `con` value (TS-0001 §9.6.7 contentSize): the UTF-8 length of a string,
/// else of its JSON serialisation.
pub fn content_size(con: &Value) -> u64 {
    let n = match con {
        Value::String(s) => s.len(),
        other => other.to_string().len(),
    };
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn me() -> CseAddress {
        CseAddress {
            sp: "sp.example".into(),
            cse_stem: "cse-in".into(),
            cb_rn: "cb".into(),
        }
    }

    #[test]
    fn addressing_forms() {
        let m = me();
        assert_eq!(parse_to("cb", &m).unwrap(), Target::CseBase);
        assert_eq!(parse_to("/cse-in", &m).unwrap(), Target::CseBase);
        assert_eq!(
            parse_to("//sp.example/cse-in", &m).unwrap(),
            Target::CseBase
        );
        assert_eq!(
            parse_to("cb/ae1/cnt", &m).unwrap(),
            Target::Structured(vec!["ae1".into(), "cnt".into()])
        );
        assert_eq!(
            parse_to("/cse-in/-/ae1", &m).unwrap(),
            Target::Structured(vec!["ae1".into()])
        );
        assert_eq!(
            parse_to("//sp.example/cse-in/cnt123", &m).unwrap(),
            Target::Unstructured("cnt123".into())
        );
        assert_eq!(
            parse_to("/other/x", &m).unwrap_err().rsc,
            Rsc::TargetNotReachable
        );
        assert_eq!(
            parse_to("//other.example/cse-in/x", &m).unwrap_err().rsc,
            Rsc::TargetNotReachable
        );
        for bad in [
            "",
            "cb/../x",
            "cb//x",
            "cb/x/",
            "cb/./x",
            "cb/a b",
            "cb/%2e%2e",
            "..",
            "cb/a\u{7}",
        ] {
            assert_eq!(
                parse_to(bad, &m).unwrap_err().rsc,
                Rsc::BadRequest,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names() {
        assert!(validate_resource_name("temp_1.a-b~").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "-",
            "a/b",
            "a b",
            "a%2f",
            "é",
            &"x".repeat(129),
        ] {
            assert!(validate_resource_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn read_only_attributes_rejected() {
        let e = validate_request_attrs(
            ResourceType::Container,
            Operation::Create,
            Some(&json!({"m2m:cnt": {"cni": 5}})),
        )
        .unwrap_err();
        assert_eq!(e.rsc, Rsc::BadRequest);
        let e = validate_request_attrs(
            ResourceType::Ae,
            Operation::Update,
            Some(&json!({"m2m:ae": {"api": "Nnew"}})),
        )
        .unwrap_err();
        assert_eq!(e.rsc, Rsc::BadRequest);
        assert!(validate_request_attrs(
            ResourceType::Ae,
            Operation::Create,
            Some(&json!({"m2m:ae": {"api": "Nx", "rr": false}})),
        )
        .is_ok());
        assert!(validate_request_attrs(
            ResourceType::Ae,
            Operation::Create,
            Some(&json!({"m2m:ae": {"rr": false}})),
        )
        .is_err());
    }
}
