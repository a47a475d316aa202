//! `m2msec`: the one binary of the oneM2M security frameworks (TS-0003).
//!
//! Subcommands are thin: parsing, reading files, printing JSON. Every cryptographic decision is
//! made in `m2msec-core` (pure) or `m2msec-tls` (channels).

mod credential;
mod cse;
mod demo;
mod derive;
mod enrol;
mod error;
mod ibc;
mod mef;
mod mef_admin;
mod pkg;
mod probe;
mod remote;
mod request;
mod util;

use clap::{Parser, Subcommand};
use error::CliError;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "m2msec",
    version,
    about = "oneM2M security frameworks (TS-0003): key schedule, IBC, secure channels"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Derive keys of the TS-0003 §10.3 key schedule (and seed 002's Ksx).
    Derive {
        #[command(subcommand)]
        cmd: derive::DeriveCmd,
    },
    /// Identity-based credentials: ECCSI (RFC 6507) KMS, extraction, signing, verification.
    Ibc {
        #[command(subcommand)]
        cmd: ibc::IbcCmd,
    },
    /// Diagnose (D)TLS 1.2 PSK security associations: listen or connect, print JSON per handshake.
    Probe {
        #[command(subcommand)]
        cmd: probe::ProbeCmd,
    },
    /// Registrar CSE: serve oneM2M over HTTP (TS-0009) on TLS-PSK security associations.
    Cse {
        #[command(subcommand)]
        cmd: cse::CseCmd,
    },
    /// Send one oneM2M request over HTTP on TLS-PSK (the oneM2M curl); print the response as JSON.
    Request(request::RequestArgs),
    /// Run the whole system on loopback: MEF+PKG, IN-CSE, N devices enrolled and registered.
    Demo(demo::DemoArgs),
    /// The PKG of seed 001 as a separate service for MEFs (ECCSI extraction over TLS-PSK).
    Pkg {
        #[command(subcommand)]
        cmd: pkg::PkgCmd,
    },
    /// Enrol with a MEF using a pre-provisioned Kpm: Ke/KeID, target keys, IBC credential.
    Enrol(enrol::EnrolArgs),
    /// M2M Enrolment Function with its PKG: serve, and provision devices.
    Mef {
        #[command(subcommand)]
        cmd: mef::MefCmd,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return clap_error(e),
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.cmd {
        Command::Derive { cmd } => derive::run(cmd),
        Command::Ibc { cmd } => ibc::run(cmd),
        Command::Probe { cmd } => probe::run(cmd),
        Command::Cse { cmd } => cse::run(cmd),
        Command::Request(a) => request::run(a),
        Command::Mef { cmd } => mef::run(cmd),
        Command::Enrol(a) => enrol::run(a),
        Command::Pkg { cmd } => pkg::run(cmd),
        Command::Demo(a) => demo::run(a),
    }
}

/// Structured logs go to stderr, filtered by `M2MSEC_LOG` (tracing `EnvFilter` syntax, e.g.
/// `M2MSEC_LOG=info` or `M2MSEC_LOG=m2msec_tls=debug`); the default is `warn`. Key material is
/// never logged at any level.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("M2MSEC_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Help and version go to stdout with status 0; usage errors are one line with status 2.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            eprintln!("m2msec: error: {}", one_line(&e.render().to_string()));
            ExitCode::from(2)
        }
    }
}

/// Folds clap's message (the `error:` line and the indented lines after it, which name the
/// arguments) into one line, dropping the usage and tip paragraphs.
fn one_line(rendered: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let mut started = false;
    for l in rendered.lines() {
        if let Some(rest) = l.strip_prefix("error:") {
            parts.push(rest.trim());
            started = true;
        } else if started && l.starts_with("  ") && !l.trim_start().starts_with("tip:") {
            parts.push(l.trim());
        } else if started {
            break;
        }
    }
    if parts.is_empty() {
        "invalid arguments".to_string()
    } else {
        parts.join(" ")
    }
}
