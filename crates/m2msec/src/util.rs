//! Argument helpers shared by the subcommands: hex in (any case), hex out (lowercase), JSON out.

use crate::error::{CliError, CliResult};
use zeroize::Zeroizing;

/// Decodes hex given for `arg` (case-insensitive). The result is wiped on drop.
pub fn hex_arg(arg: &str, value: &str) -> CliResult<Zeroizing<Vec<u8>>> {
    let v = value.trim();
    if v.is_empty() {
        return Err(CliError::arg(arg, "empty hex value"));
    }
    if v.len() % 2 != 0 {
        return Err(CliError::arg(
            arg,
            format!("odd number of hex digits ({})", v.len()),
        ));
    }
    if let Some((i, c)) = v.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(CliError::arg(
            arg,
            format!("invalid hex digit {c:?} at position {i}"),
        ));
    }
    hex::decode(v)
        .map(Zeroizing::new)
        .map_err(|e| CliError::arg(arg, e))
}

/// Decodes hex that must be exactly `len` bytes.
pub fn hex_exact(arg: &str, value: &str, len: usize) -> CliResult<Zeroizing<Vec<u8>>> {
    let b = hex_arg(arg, value)?;
    if b.len() != len {
        return Err(CliError::arg(
            arg,
            format!(
                "must be {len} bytes ({} hex digits), got {} bytes",
                len * 2,
                b.len()
            ),
        ));
    }
    Ok(b)
}

/// Prints one JSON value on one line.
pub fn print_json(v: &impl serde::Serialize) -> CliResult<()> {
    let s = serde_json::to_string(v).map_err(CliError::other)?;
    println!("{s}");
    Ok(())
}

/// Prints a table: the head, then the rows, columns padded to their widest cell (the last
/// column unpadded).
pub fn print_table(head: &[&str], rows: &[Vec<String>]) {
    let head: Vec<String> = head.iter().map(|h| h.to_string()).collect();
    let mut width = vec![0usize; head.len()];
    for r in std::iter::once(&head).chain(rows.iter()) {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&head).chain(rows.iter()) {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(&width).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = *w));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// Reads a whole file given for `arg`.
pub fn read_file(arg: &str, path: &std::path::Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| CliError::arg(arg, format!("{}: {e}", path.display())))
}
