//! The command-line error contract: every failure is one line on stderr naming the offending
//! argument, and exit status 2 (`ibc verify` uses 1 for a well-formed but invalid signature;
//! `probe connect` uses 1 for a failed handshake).

use std::fmt;

/// A command-line failure. `arg` names the offending argument (e.g. `--export`) when there is one.
#[derive(Debug)]
pub struct CliError {
    pub arg: Option<String>,
    pub msg: String,
}

impl CliError {
    /// An error caused by the value of one argument.
    pub fn arg(arg: &str, msg: impl fmt::Display) -> Self {
        CliError {
            arg: Some(arg.to_string()),
            msg: msg.to_string(),
        }
    }

    /// An error not tied to one argument (I/O, internal state).
    pub fn other(msg: impl fmt::Display) -> Self {
        CliError {
            arg: None,
            msg: msg.to_string(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, always: newlines in underlying messages are flattened.
        let msg = self.msg.replace(['\n', '\r'], " ");
        match &self.arg {
            Some(a) => write!(f, "m2msec: error: {a}: {msg}"),
            None => write!(f, "m2msec: error: {msg}"),
        }
    }
}

pub type CliResult<T> = Result<T, CliError>;
