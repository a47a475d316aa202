//! Readers for the `key = value` vector files under `tests/vectors/`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// Reads a vector file into blocks separated by blank lines; `#` starts a comment line.
pub fn blocks(name: &str) -> Vec<BTreeMap<String, String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut cur = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let (k, v) = line
            .split_once(" = ")
            .or_else(|| line.split_once(" ="))
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        cur.insert(k.trim().to_string(), v.trim().to_string());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A single-block vector file.
pub fn single(name: &str) -> BTreeMap<String, String> {
    let mut b = blocks(name);
    assert_eq!(b.len(), 1, "{name} must have one block");
    b.remove(0)
}

pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}
