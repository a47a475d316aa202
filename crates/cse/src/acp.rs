//! Access control (TS-0003 §7.1; TS-0001 §9.6.2 and the access decision text of §10.2.3.1 / TS-0004
//! §7.3.3.15): `m2m:setOfAcrs` (privileges `pv`, selfPrivileges `pvs`), and the reference access
//! decision algorithm of TS-0003 §7.1.5.
//!
//! The decision is Permit-overrides: a request is permitted if one rule of one applicable ACP
//! permits it. For each rule (TS-0003 §7.1.5):
//! `res_acr = res_authn AND res_origs AND res_ops AND res_ctxts AND res_objd`, where
//! - `res_authn` is table 7.1.5-1: a rule with `acaf` TRUE applies only when `rq_authn` is TRUE
//!   (TS-0003 §7.1.2 computes `rq_authn`, see [`crate::verify`]);
//! - `res_origs`: the originator is in `acor`: the keyword `all`, an SP domain (`//sp` or the bare
//!   FQDN), or a CSE-ID / AE-ID in any of its forms, with `*` wildcards whose scope ends at the next
//!   `/` (TS-0003 table 7.1.3-2). Role IDs and `<group>` resource IDs are not evaluated here: they
//!   never match (deny, never allow);
//! - `res_ops`: the operation's bit is set in `acop` (TS-0004 §6.3.4.2.29);
//! - `res_ctxts`: a rule without `acco` admits any context; **a rule with any `acco` is never
//!   satisfied here**, because this CSE does not evaluate time windows, location regions or IP
//!   addresses (TS-0003 §7.1.4: an indeterminate result is "Deny");
//! - `res_objd`: for CREATE only, one `acod` element must match (its optional `ty` equals the
//!   target's type and the new resource's type is in `chty`); other operations ignore `acod`, as
//!   TS-0003 §7.1.3 states that the object details apply to Create only.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::primitive::Operation;
use crate::rsc::CseError;

/// Most rules accepted in one `m2m:setOfAcrs`.
pub const MAX_RULES: usize = 64;
/// Most originators accepted in one rule.
pub const MAX_ORIGINATORS: usize = 256;

/// `accessControlObjectDetails` (`acod`, TS-0003 table 7.1.3-4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDetails {
    /// `ty`: the target resource's type the rule applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<u64>,
    /// `spty`: specializationType. Present → never matches here (no specialisations hosted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spty: Option<String>,
    /// `chty`: child resource types that may be created.
    #[serde(default)]
    pub chty: Vec<u64>,
}

/// One access control rule, `m2m:accessControlRule` (TS-0004 §6.3.5.27, TS-0003 table 7.1.3-1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessControlRule {
    /// `acor`: accessControlOriginators.
    pub acor: Vec<String>,
    /// `acop`: accessControlOperations bitmask (1 C, 2 R, 4 U, 8 D, 16 N, 32 Discovery).
    pub acop: u32,
    /// `acco`: accessControlContexts, kept as given (never satisfied here; see module docs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acco: Vec<Value>,
    /// `acaf`: accessControlAuthenticationFlag; absent means FALSE (TS-0003 §7.1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acaf: Option<bool>,
    /// `acod`: accessControlObjectDetails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acod: Vec<ObjectDetails>,
}

/// `m2m:setOfAcrs` (TS-0004 §6.3.5.26): `{"acr": [rule, …]}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SetOfAcrs {
    /// `acr`: the rules.
    #[serde(default)]
    pub acr: Vec<AccessControlRule>,
}

impl SetOfAcrs {
    /// Parses and validates a `pv`/`pvs` value from a request (TS-0004 §7.4.2). Unknown keys,
    /// wrong types, an empty `acor`, `acop` outside 1..=63 or too many entries → BAD_REQUEST.
    pub fn parse(name: &str, v: &Value) -> Result<SetOfAcrs, CseError> {
        let bad = |why: &str| CseError::bad_request(format!("{name}: {why}"));
        let obj = v.as_object().ok_or_else(|| bad("must be an object"))?;
        if let Some(k) = obj.keys().find(|k| k.as_str() != "acr") {
            return Err(bad(&format!("unknown member {k:?}")));
        }
        let rules = match obj.get("acr") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(bad("acr must be an array")),
        };
        if rules.len() > MAX_RULES {
            return Err(bad("too many rules"));
        }
        let mut out = Vec::with_capacity(rules.len());
        for r in rules {
            let ro = r
                .as_object()
                .ok_or_else(|| bad("a rule must be an object"))?;
            if let Some(k) = ro
                .keys()
                .find(|k| !matches!(k.as_str(), "acor" | "acop" | "acco" | "acaf" | "acod"))
            {
                return Err(bad(&format!("unknown rule member {k:?}")));
            }
            let rule: AccessControlRule =
                serde_json::from_value(r).map_err(|e| bad(&format!("invalid rule: {e}")))?;
            if rule.acor.is_empty() || rule.acor.len() > MAX_ORIGINATORS {
                return Err(bad("acor must list 1 to 256 originators"));
            }
            if rule.acor.iter().any(|o| {
                o.is_empty()
                    || o.len() > 1024
                    || o.chars().any(|c| c.is_control() || c.is_whitespace())
            }) {
                return Err(bad("acor entries must be non-empty IDs"));
            }
            if rule.acop == 0 || rule.acop > 63 {
                return Err(bad("acop must be in 1..=63"));
            }
            if rule.acco.iter().any(|c| !c.is_object()) {
                return Err(bad("acco entries must be objects"));
            }
            out.push(rule);
        }
        Ok(SetOfAcrs { acr: out })
    }
}

/// What a rule is matched against (TS-0003 §7.1.2).
#[derive(Debug, Clone)]
pub struct AccessRequest<'a> {
    /// The originator, in absolute form (`//sp/cse` or `//sp/cse/Cae`, `//sp/Sae`).
    pub originator: &'a str,
    /// The operation.
    pub op: Operation,
    /// `rq_authn` (TS-0003 table 7.1.2-3).
    pub rq_authn: bool,
    /// The target resource's type (for `acod.ty`).
    pub target_ty: u64,
    /// For CREATE: the type of the resource to be created.
    pub create_ty: Option<u64>,
    /// The hosting CSE's SP-ID and CSE-ID stem, to complete relative IDs in `acor`.
    pub sp: &'a str,
    /// The hosting CSE's CSE-ID stem.
    pub cse_stem: &'a str,
}

/// TS-0003 §7.1.5: whether one set of rules permits the request.
pub fn permits(set: &SetOfAcrs, req: &AccessRequest<'_>) -> bool {
    set.acr.iter().any(|r| rule_permits(r, req))
}

fn rule_permits(r: &AccessControlRule, req: &AccessRequest<'_>) -> bool {
    // Table 7.1.5-1.
    let res_authn = !r.acaf.unwrap_or(false) || req.rq_authn;
    let res_ops = r.acop & req.op.acop_bit() != 0;
    // Contexts cannot be evaluated: deny (TS-0003 §7.1.4).
    let res_ctxts = r.acco.is_empty();
    let res_objd = match (req.op, req.create_ty) {
        (Operation::Create, Some(cty)) if !r.acod.is_empty() => r.acod.iter().any(|d| {
            d.spty.is_none() && d.ty.map_or(true, |t| t == req.target_ty) && d.chty.contains(&cty)
        }),
        _ => true,
    };
    res_authn
        && res_ops
        && res_ctxts
        && res_objd
        && r.acor.iter().any(|o| originator_matches(o, req))
}

/// Whether one `acor` entry names the originator (TS-0003 §7.1.3, table 7.1.3-2).
pub fn originator_matches(entry: &str, req: &AccessRequest<'_>) -> bool {
    if entry == "all" {
        return true;
    }
    let orig = req.originator;
    // An SP domain name: `//sp` or a bare FQDN (contains '.', no '/').
    if let Some(sp) = entry.strip_prefix("//") {
        if !sp.contains('/') {
            return !sp.contains('*')
                && orig
                    .strip_prefix("//")
                    .and_then(|r| r.split_once('/'))
                    .is_some_and(|(osp, _)| osp == sp);
        }
    } else if !entry.contains('/') && entry.contains('.') && !entry.contains('*') {
        return orig
            .strip_prefix("//")
            .and_then(|r| r.split_once('/'))
            .is_some_and(|(osp, _)| osp == entry);
    }
    let pattern = absolutise(entry, req.sp, req.cse_stem);
    glob_segments(&pattern, orig)
}

/// Completes a relative CSE-ID / AE-ID (TS-0004 §6.2.3) to its absolute form.
pub fn absolutise(id: &str, sp: &str, cse_stem: &str) -> String {
    if id.starts_with("//") {
        id.to_string()
    } else if id.starts_with('/') {
        format!("//{sp}{id}")
    } else if id.starts_with('C') {
        // CSE-relative C-type AE-ID-Stem: registered here.
        format!("//{sp}/{cse_stem}/{id}")
    } else {
        // CSE-relative S-type stem or CSE-relative CSE-ID.
        format!("//{sp}/{id}")
    }
}

/// Matches `pattern` against `text` segment by segment ('/'-separated); `*` in a pattern segment
/// matches any run of characters within that segment.
fn glob_segments(pattern: &str, text: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let t: Vec<&str> = text.split('/').collect();
    p.len() == t.len() && p.iter().zip(t.iter()).all(|(ps, ts)| glob(ps, ts))
}

/// Single-segment wildcard match, iterative (no exponential backtracking).
fn glob(p: &str, t: &str) -> bool {
    let p = p.as_bytes();
    let t = t.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<usize> = None;
    let mut mark = 0usize;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some(pi);
                mark = ti;
                pi += 1;
            }
            Some(&c) if t.get(ti) == Some(&c) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some(s) => {
                    pi = s + 1;
                    mark += 1;
                    ti = mark;
                }
                None => return false,
            },
        }
    }
    while p.get(pi) == Some(&b'*') {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(orig: &str, op: Operation, authn: bool) -> AccessRequest<'_> {
        AccessRequest {
            originator: orig,
            op,
            rq_authn: authn,
            target_ty: 3,
            create_ty: None,
            sp: "sp.example",
            cse_stem: "cse-in",
        }
    }

    #[test]
    fn wildcards_per_table_7_1_3_2() {
        let r = req("//sp.example/cse-in/C9886", Operation::Retrieve, false);
        for yes in [
            "all",
            "//sp.example",
            "sp.example",
            "//*/cse-in/C9886",
            "//*/cse*/C9886",
            "/cse-in/C98*",
            "/cse*/C98*",
            "C9886",
        ] {
            assert!(originator_matches(yes, &r), "{yes}");
        }
        for no in [
            "//other.example",
            "/cse-in/C1*",
            "//*/cse-in",
            "/cse-in/*/x",
            "group1",
            "C98",
        ] {
            assert!(!originator_matches(no, &r), "{no}");
        }
    }

    #[test]
    fn glob_basics() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*", ""));
        assert!(!glob("a*c", "abbbd"));
        assert!(glob("*a*a*a*", "aaaa"));
    }

    #[test]
    fn acaf_and_contexts() {
        let set = SetOfAcrs::parse(
            "pv",
            &json!({"acr":[{"acor":["all"],"acop":2,"acaf":true}]}),
        )
        .unwrap();
        assert!(!permits(
            &set,
            &req("//sp.example/cse-in/C1", Operation::Retrieve, false)
        ));
        assert!(permits(
            &set,
            &req("//sp.example/cse-in/C1", Operation::Retrieve, true)
        ));
        assert!(!permits(
            &set,
            &req("//sp.example/cse-in/C1", Operation::Update, true)
        ));
        let ctx = SetOfAcrs::parse(
            "pv",
            &json!({"acr":[{"acor":["all"],"acop":63,"acco":[{"acw":["* * * * * * *"]}]}]}),
        )
        .unwrap();
        assert!(!permits(
            &ctx,
            &req("//sp.example/cse-in/C1", Operation::Retrieve, true)
        ));
    }

    #[test]
    fn parse_rejects() {
        for v in [
            json!([]),
            json!({"acr":[{"acor":[],"acop":2}]}),
            json!({"acr":[{"acor":["all"],"acop":0}]}),
            json!({"acr":[{"acor":["all"],"acop":64}]}),
            json!({"acr":[{"acor":["all"],"acop":2,"x":1}]}),
            json!({"acr":[{"acor":"all","acop":2}]}),
            json!({"acr":[], "y":1}),
        ] {
            assert!(SetOfAcrs::parse("pv", &v).is_err(), "{v}");
        }
    }
}
