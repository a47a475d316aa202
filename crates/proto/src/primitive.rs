//! Request and response primitives (TS-0004 §6.4.1, §6.4.2) in their JSON serialisation with the
//! short names of TS-0004 table 8.2.2-1 (`op`, `to`, `fr`, `rqi`, `ty`, `pc`, `rcn`, `rsc`, …).
//!
//! Parsing is strict and total: [`RequestPrimitive::from_json`] never panics and maps every defect
//! to a [`CseError`] with RSC 4000 BAD_REQUEST (TS-0004 §7.3.2.1), except for parameters this CSE
//! recognises but does not support (Request/Result Expiration Timestamp, Operation Execution Time),
//! which TS-0004 §7.3.2.1 answers with 5001 NOT_IMPLEMENTED; the engine checks those.
//!
//! A primitive may arrive wrapped in its root element (`{"m2m:rqp": {...}}`, table 8.2.2-2) or
//! bare. Unknown parameters are ignored, as a receiver of a newer release would.

use serde_json::{Map, Value};

use m2msec_core::timestamp::Timestamp;

use crate::rsc::{CseError, Rsc};

/// Longest `to` accepted, in bytes.
pub const MAX_TO_LEN: usize = 2048;
/// Longest `rqi` accepted, in bytes.
pub const MAX_RQI_LEN: usize = 256;
/// Longest `fr` accepted (an m2m:ID), in bytes.
pub const MAX_FROM_LEN: usize = m2msec_core::ids::MAX_M2M_ID_LEN;
/// Longest `vsi` (Vendor Information) accepted, in bytes (TS-0008 §6.2.2.4.17 bounds its CoAP
/// option to 255).
pub const MAX_VSI_LEN: usize = 255;
/// Deepest JSON nesting accepted in a primitive (a guard for the recursive consumers).
pub const MAX_JSON_DEPTH: usize = 32;

/// `m2m:operation` (TS-0004 §6.3.4.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Operation {
    /// 1.
    Create = 1,
    /// 2.
    Retrieve = 2,
    /// 3.
    Update = 3,
    /// 4.
    Delete = 4,
    /// 5.
    Notify = 5,
}

impl Operation {
    /// The variant for a number.
    pub fn from_u64(v: u64) -> Option<Operation> {
        Some(match v {
            1 => Operation::Create,
            2 => Operation::Retrieve,
            3 => Operation::Update,
            4 => Operation::Delete,
            5 => Operation::Notify,
            _ => return None,
        })
    }
    /// The `m2m:accessControlOperations` bit for this operation (TS-0004 §6.3.4.2.29).
    pub fn acop_bit(self) -> u32 {
        match self {
            Operation::Create => 1,
            Operation::Retrieve => 2,
            Operation::Update => 4,
            Operation::Delete => 8,
            Operation::Notify => 16,
        }
    }
}

/// `m2m:resultContent` (TS-0004 §6.3.4.2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ResultContent {
    /// 0 nothing.
    Nothing = 0,
    /// 1 attributes.
    Attributes = 1,
    /// 2 hierarchical address.
    HierarchicalAddress = 2,
    /// 3 hierarchical address and attributes.
    HierarchicalAddressAndAttributes = 3,
    /// 4 attributes and child resources.
    AttributesAndChildResources = 4,
    /// 5 attributes and child resource references.
    AttributesAndChildResourceReferences = 5,
    /// 6 child resource references.
    ChildResourceReferences = 6,
    /// 7 original resource.
    OriginalResource = 7,
    /// 8 child resources.
    ChildResources = 8,
    /// 9 modified attributes.
    ModifiedAttributes = 9,
    /// 10 semantic content.
    SemanticContent = 10,
}

impl ResultContent {
    /// The variant for a number.
    pub fn from_u64(v: u64) -> Option<ResultContent> {
        use ResultContent::*;
        Some(match v {
            0 => Nothing,
            1 => Attributes,
            2 => HierarchicalAddress,
            3 => HierarchicalAddressAndAttributes,
            4 => AttributesAndChildResources,
            5 => AttributesAndChildResourceReferences,
            6 => ChildResourceReferences,
            7 => OriginalResource,
            8 => ChildResources,
            9 => ModifiedAttributes,
            10 => SemanticContent,
            _ => return None,
        })
    }

    /// The default for an operation (TS-0001 table 8.1.2-1: attributes for C/R/U, nothing for D).
    pub fn default_for(op: Operation) -> ResultContent {
        match op {
            Operation::Delete | Operation::Notify => ResultContent::Nothing,
            _ => ResultContent::Attributes,
        }
    }

    /// Whether this value is valid for `op` (TS-0001 table 8.1.2-1, as TS-0004 §7.3.2.1 requires
    /// BAD_REQUEST otherwise).
    pub fn valid_for(self, op: Operation) -> bool {
        use ResultContent::*;
        match op {
            Operation::Create => matches!(
                self,
                Nothing | Attributes | HierarchicalAddress | HierarchicalAddressAndAttributes
            ),
            Operation::Retrieve => matches!(
                self,
                Attributes
                    | AttributesAndChildResources
                    | AttributesAndChildResourceReferences
                    | ChildResourceReferences
                    | OriginalResource
                    | ChildResources
                    | SemanticContent
            ),
            Operation::Update => matches!(self, Nothing | Attributes | ModifiedAttributes),
            Operation::Delete => matches!(
                self,
                Nothing
                    | Attributes
                    | AttributesAndChildResources
                    | AttributesAndChildResourceReferences
                    | ChildResourceReferences
                    | ChildResources
            ),
            Operation::Notify => matches!(self, Nothing),
        }
    }
}

/// A request primitive (TS-0004 §6.4.1) as the engine consumes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPrimitive {
    /// Operation (`op`).
    pub op: Operation,
    /// To (`to`): the target's resource identifier in any of the forms of TS-0001 §7.2.
    pub to: String,
    /// From (`fr`): the originator's ID; optional only in a CREATE `<AE>` (TS-0004 §7.3.2.1).
    pub fr: Option<String>,
    /// Request Identifier (`rqi`).
    pub rqi: String,
    /// Resource Type (`ty`), still raw: the engine decides whether it is valid (TS-0004 §7.3.2.1).
    pub ty: Option<u64>,
    /// Content (`pc`).
    pub pc: Option<Value>,
    /// Result Content (`rcn`).
    pub rcn: Option<ResultContent>,
    /// Release Version Indicator (`rvi`).
    pub rvi: Option<String>,
    /// Originating Timestamp (`ot`).
    pub ot: Option<Timestamp>,
    /// Filter Criteria (`fc`), present or not; this CSE does not implement discovery.
    pub fc: Option<Value>,
    /// Vendor Information (`vsi`, TS-0004 table 6.4.1-1): opaque, echoed in the response.
    pub vsi: Option<String>,
    /// Short names of parameters present that this CSE recognises but does not support
    /// (`rqet`, `rset`, `oet`, `rp`, `da`, `gid`, `drt`=2 …): TS-0004 §7.3.2.1 NOT_IMPLEMENTED.
    pub unsupported: Vec<&'static str>,
}

impl RequestPrimitive {
    /// A request with the mandatory parameters only.
    pub fn new(
        op: Operation,
        to: impl Into<String>,
        fr: Option<&str>,
        rqi: impl Into<String>,
    ) -> Self {
        RequestPrimitive {
            op,
            to: to.into(),
            fr: fr.map(str::to_string),
            rqi: rqi.into(),
            ty: None,
            pc: None,
            rcn: None,
            rvi: None,
            ot: None,
            fc: None,
            vsi: None,
            unsupported: Vec::new(),
        }
    }

    /// Sets the resource type (CREATE).
    pub fn with_ty(mut self, ty: u64) -> Self {
        self.ty = Some(ty);
        self
    }

    /// Sets the content.
    pub fn with_pc(mut self, pc: Value) -> Self {
        self.pc = Some(pc);
        self
    }

    /// Sets the result content.
    pub fn with_rcn(mut self, rcn: ResultContent) -> Self {
        self.rcn = Some(rcn);
        self
    }

    /// Parses the JSON serialisation of a request primitive (TS-0004 §8.2, short names).
    pub fn from_json(bytes: &[u8]) -> Result<RequestPrimitive, CseError> {
        let v: Value = json_strict(bytes)
            .map_err(|e| CseError::bad_request(format!("request primitive is not JSON: {e}")))?;
        Self::from_value(v)
    }

    /// Parses an already decoded JSON value.
    pub fn from_value(v: Value) -> Result<RequestPrimitive, CseError> {
        if json_depth(&v) > MAX_JSON_DEPTH {
            return Err(CseError::bad_request("request primitive nested too deeply"));
        }
        let mut obj = match v {
            Value::Object(m) => m,
            _ => {
                return Err(CseError::bad_request(
                    "request primitive must be a JSON object",
                ))
            }
        };
        if obj.len() == 1 {
            if let Some(Value::Object(inner)) = obj.remove("m2m:rqp") {
                obj = inner;
            }
        }
        let op = match obj.get("op") {
            None => return Err(CseError::bad_request("missing op")),
            Some(v) => v
                .as_u64()
                .and_then(Operation::from_u64)
                .ok_or_else(|| CseError::bad_request("op must be 1..5"))?,
        };
        let to =
            req_str(&obj, "to", MAX_TO_LEN)?.ok_or_else(|| CseError::bad_request("missing to"))?;
        let fr = req_str(&obj, "fr", MAX_FROM_LEN)?;
        let rqi = req_str(&obj, "rqi", MAX_RQI_LEN)?
            .ok_or_else(|| CseError::bad_request("missing rqi"))?;
        let ty = match obj.get("ty") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| CseError::bad_request("ty must be a non-negative integer"))?,
            ),
        };
        let rcn = match obj.get("rcn") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(ResultContent::from_u64)
                    .ok_or_else(|| CseError::bad_request("rcn must be 0..10"))?,
            ),
        };
        let rvi = req_str(&obj, "rvi", 16)?;
        let vsi = req_str(&obj, "vsi", MAX_VSI_LEN)?;
        let ot = match req_str(&obj, "ot", 64)? {
            None => None,
            Some(s) => Some(
                s.parse::<Timestamp>()
                    .map_err(|e| CseError::bad_request(format!("ot: {e}")))?,
            ),
        };
        let pc = obj.remove("pc").filter(|v| !v.is_null());
        let fc = obj.remove("fc").filter(|v| !v.is_null());
        let mut unsupported = Vec::new();
        for k in [
            "rqet", "rset", "oet", "rp", "da", "gid", "tkns", "tids", "ltids",
        ] {
            if obj.get(k).is_some_and(|v| !v.is_null()) {
                unsupported.push(k);
            }
        }
        if let Some(v) = obj.get("drt") {
            if v.as_u64() != Some(1) && !v.is_null() {
                unsupported.push("drt");
            }
        }
        if let Some(v) = obj.get("rt") {
            // Response Type: only blockingRequest (3) is implemented; the other values of
            // m2m:responseType (TS-0004 §6.3.4.2.6: 1..=5, 5 flexBlocking since Release 3) are
            // NOT_IMPLEMENTED, anything else is BAD_REQUEST.
            let rtv = match v {
                Value::Null => Some(3),
                Value::Object(m) => match m.get("rtv") {
                    None | Some(Value::Null) => Some(3),
                    Some(x) => x.as_u64(),
                },
                other => other.as_u64(),
            };
            match rtv {
                Some(3) => {}
                Some(1..=5) => unsupported.push("rt"),
                _ => return Err(CseError::bad_request("rt must be 1..5")),
            }
        }
        Ok(RequestPrimitive {
            op,
            to,
            fr,
            rqi,
            ty,
            pc,
            rcn,
            rvi,
            ot,
            fc,
            vsi,
            unsupported,
        })
    }

    /// The JSON serialisation with short names (TS-0004 table 8.2.2-1).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("op".into(), Value::from(self.op as u8));
        m.insert("to".into(), Value::from(self.to.clone()));
        if let Some(fr) = &self.fr {
            m.insert("fr".into(), Value::from(fr.clone()));
        }
        m.insert("rqi".into(), Value::from(self.rqi.clone()));
        if let Some(ty) = self.ty {
            m.insert("ty".into(), Value::from(ty));
        }
        if let Some(pc) = &self.pc {
            m.insert("pc".into(), pc.clone());
        }
        if let Some(rcn) = self.rcn {
            m.insert("rcn".into(), Value::from(rcn as u8));
        }
        if let Some(rvi) = &self.rvi {
            m.insert("rvi".into(), Value::from(rvi.clone()));
        }
        if let Some(ot) = &self.ot {
            m.insert("ot".into(), Value::from(ot.to_string()));
        }
        if let Some(fc) = &self.fc {
            m.insert("fc".into(), fc.clone());
        }
        if let Some(vsi) = &self.vsi {
            m.insert("vsi".into(), Value::from(vsi.clone()));
        }
        Value::Object(m)
    }
}

/// An optional string parameter: absent or null → None; a string within `max` bytes without
/// control characters → Some; anything else → BAD_REQUEST.
fn req_str(obj: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, CseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            if s.len() > max {
                return Err(CseError::bad_request(format!(
                    "{key} longer than {max} bytes"
                )));
            }
            if s.chars().any(char::is_control) {
                return Err(CseError::bad_request(format!(
                    "{key} contains a control character"
                )));
            }
            Ok(Some(s.clone()))
        }
        Some(_) => Err(CseError::bad_request(format!("{key} must be a string"))),
    }
}

/// Parses JSON as [`serde_json::from_slice`] does, but refuses an object that repeats a member
/// name. RFC 8259 §4 leaves duplicate names undefined and parsers differ (first wins, last wins,
/// error), so a primitive whose meaning depends on the parser is BAD_REQUEST here rather than
/// read one way by a proxy and another by this CSE.
pub fn json_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// The [`json_strict`] visitor: builds a [`Value`], refusing repeated member names.
#[derive(Clone, Copy)]
struct Strict;

impl<'de> serde::de::DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate member name {k:?}"
                )));
            }
            let v = map.next_value_seed(Strict)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// Nesting depth of a JSON value, computed iteratively (no recursion on untrusted input).
pub fn json_depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    max
}

/// A response primitive (TS-0004 §6.4.2).
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsePrimitive {
    /// Response Status Code (`rsc`).
    pub rsc: Rsc,
    /// Request Identifier (`rqi`), copied from the request (empty if the request had none).
    pub rqi: String,
    /// Content (`pc`).
    pub pc: Option<Value>,
    /// To (`to`): the request's originator.
    pub to: Option<String>,
    /// From (`fr`): the responding CSE's ID.
    pub fr: Option<String>,
    /// Originating Timestamp (`ot`).
    pub ot: Option<Timestamp>,
    /// Release Version Indicator (`rvi`), copied from the request.
    pub rvi: Option<String>,
    /// Vendor Information (`vsi`), echoed from the request (TS-0004 table 6.4.2-1).
    pub vsi: Option<String>,
}

impl ResponsePrimitive {
    /// A response with only a status and request identifier.
    pub fn new(rsc: Rsc, rqi: impl Into<String>) -> Self {
        ResponsePrimitive {
            rsc,
            rqi: rqi.into(),
            pc: None,
            to: None,
            fr: None,
            ot: None,
            rvi: None,
            vsi: None,
        }
    }

    /// An error response carrying `m2m:dbg` (TS-0004 §7.5.2 debugInfo, short name `dbg`).
    pub fn error(err: &CseError, rqi: impl Into<String>) -> Self {
        let mut r = ResponsePrimitive::new(err.rsc, rqi);
        let mut m = Map::new();
        m.insert("m2m:dbg".into(), Value::from(err.detail.clone()));
        r.pc = Some(Value::Object(m));
        r
    }

    /// The JSON serialisation with short names (TS-0004 table 8.2.2-1).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("rsc".into(), Value::from(self.rsc.as_u16()));
        m.insert("rqi".into(), Value::from(self.rqi.clone()));
        if let Some(pc) = &self.pc {
            m.insert("pc".into(), pc.clone());
        }
        if let Some(to) = &self.to {
            m.insert("to".into(), Value::from(to.clone()));
        }
        if let Some(fr) = &self.fr {
            m.insert("fr".into(), Value::from(fr.clone()));
        }
        if let Some(ot) = &self.ot {
            m.insert("ot".into(), Value::from(ot.to_string()));
        }
        if let Some(rvi) = &self.rvi {
            m.insert("rvi".into(), Value::from(rvi.clone()));
        }
        if let Some(vsi) = &self.vsi {
            m.insert("vsi".into(), Value::from(vsi.clone()));
        }
        Value::Object(m)
    }

    /// Parses a response primitive (for clients and tests).
    pub fn from_value(v: &Value) -> Result<ResponsePrimitive, CseError> {
        let obj = v
            .as_object()
            .map(|o| match o.get("m2m:rsp") {
                Some(Value::Object(inner)) if o.len() == 1 => inner,
                _ => o,
            })
            .ok_or_else(|| CseError::bad_request("response primitive must be an object"))?;
        let rsc = obj
            .get("rsc")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .and_then(Rsc::from_u16)
            .ok_or_else(|| CseError::bad_request("missing or unknown rsc"))?;
        let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(ResponsePrimitive {
            rsc,
            rqi: s("rqi").unwrap_or_default(),
            pc: obj.get("pc").cloned(),
            to: s("to"),
            fr: s("fr"),
            ot: s("ot").and_then(|t| t.parse().ok()),
            rvi: s("rvi"),
            vsi: s("vsi"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_wrapped_and_bare() {
        let bare = json!({"op":1,"to":"cse-in","fr":"Cae1","rqi":"r1","ty":3,"pc":{"m2m:cnt":{}}});
        let p = RequestPrimitive::from_value(bare.clone()).unwrap();
        assert_eq!(p.op, Operation::Create);
        assert_eq!(p.ty, Some(3));
        let wrapped = json!({"m2m:rqp": bare});
        assert_eq!(RequestPrimitive::from_value(wrapped).unwrap(), p);
        assert_eq!(RequestPrimitive::from_value(p.to_value()).unwrap(), p);
    }

    #[test]
    fn rejects_bad_fields() {
        for v in [
            json!([]),
            json!({"op":9,"to":"x","rqi":"1"}),
            json!({"op":2,"rqi":"1"}),
            json!({"op":2,"to":"x"}),
            json!({"op":2,"to":5,"rqi":"1"}),
            json!({"op":2,"to":"x","rqi":"1","rcn":99}),
            json!({"op":2,"to":"x","rqi":"1","ty":-1}),
            json!({"op":2,"to":"x\u{0}","rqi":"1"}),
        ] {
            let e = RequestPrimitive::from_value(v.clone()).unwrap_err();
            assert_eq!(e.rsc, Rsc::BadRequest, "{v}");
        }
    }

    #[test]
    fn depth_guard() {
        let mut v = json!(1);
        for _ in 0..100 {
            v = json!([v]);
        }
        let req = json!({"op":1,"to":"x","rqi":"1","pc":v});
        assert_eq!(
            RequestPrimitive::from_value(req).unwrap_err().rsc,
            Rsc::BadRequest
        );
    }

    #[test]
    fn rcn_validity() {
        assert!(ResultContent::Attributes.valid_for(Operation::Create));
        assert!(!ResultContent::ChildResourceReferences.valid_for(Operation::Create));
        assert!(!ResultContent::ModifiedAttributes.valid_for(Operation::Retrieve));
    }
}
