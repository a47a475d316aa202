//! Shared helpers of the binary's end-to-end tests: child processes whose output lines arrive
//! on channels (killed on drop), bounded waits, key files with a given mode.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest wait for any one thing.
pub const WAIT: Duration = Duration::from_secs(30);

/// The binary under test.
pub fn m2msec() -> Command {
    Command::new(env!("CARGO_BIN_EXE_m2msec"))
}

/// A child whose output lines arrive on channels. Killed on drop.
pub struct Proc {
    pub child: Child,
    pub stdout: mpsc::Receiver<String>,
    pub stderr: mpsc::Receiver<String>,
}

impl Proc {
    /// Starts `cmd` with stdin closed.
    pub fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (otx, stdout) = mpsc::channel();
        let (etx, stderr) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = otx.send(l);
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = etx.send(l);
            }
        });
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    /// The first stderr line containing `needle` (panics after [`WAIT`]).
    pub fn stderr_line_with(&self, needle: &str) -> String {
        let end = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(l) => seen.push(l),
                Err(_) => panic!("no stderr line with {needle:?} within {WAIT:?}: {seen:?}"),
            }
        }
    }

    /// The port of the first `https://127.0.0.1:PORT` in the "listening on" line.
    pub fn https_port(&self) -> u16 {
        let line = self.stderr_line_with("listening on ");
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("https://127.0.0.1:"))
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no TLS port in {line:?}"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion: (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Writes `hex` to `path` with `mode`.
pub fn write_key(path: &Path, hex: &str, mode: u32) {
    std::fs::write(path, format!("{hex}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}
