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

/// Opens the `[secure_environment]` of a service (TS-0003 §6.3.1) and states it and its
/// protection level as a tracing info event. The PIN is never printed.
pub fn open_secure_environment(
    service: &str,
    c: &m2msec_keystore::SecureEnvironmentConfig,
) -> CliResult<m2msec_keystore::SecureEnvironment> {
    let se = c
        .open()
        .map_err(|e| CliError::arg("--config", format!("[secure_environment]: {e}")))?;
    let st = se.status();
    tracing::info!(
        service,
        kind = st.kind,
        level = st.level.get(),
        token = st.token.as_deref().unwrap_or("-"),
        "secure environment: {st}"
    );
    Ok(se)
}

/// The line `secure environment: …` of status and list output.
pub fn secure_environment_line(se: &m2msec_keystore::SecureEnvironment) -> String {
    format!("secure environment: {}", se.status())
}

/// The device keystore's configuration file (`--secure-environment FILE`): a
/// `[secure_environment]` section, as in the services' configurations.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeystoreConfig {
    #[serde(default)]
    secure_environment: m2msec_keystore::SecureEnvironmentConfig,
}

/// The secure environment of a device keystore: the sealed `kek` file without `file`, else the
/// `[secure_environment]` of the TOML file `file` (argument `--secure-environment`).
pub fn keystore_environment(
    file: Option<&std::path::Path>,
) -> CliResult<m2msec_keystore::SecureEnvironment> {
    const ARG: &str = "--secure-environment";
    let Some(file) = file else {
        return Ok(m2msec_keystore::SecureEnvironment::Files);
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::arg(ARG, format!("{}: {e}", file.display())))?;
    let c: KeystoreConfig = toml::from_str(&text)
        .map_err(|e| CliError::arg(ARG, format!("{}: {e}", file.display())))?;
    c.secure_environment
        .open()
        .map_err(|e| CliError::arg(ARG, format!("[secure_environment]: {e}")))
}
