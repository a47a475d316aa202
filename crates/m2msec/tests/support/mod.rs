//! Shared helpers of the binary's end-to-end tests: child processes whose output lines arrive
//! on channels (killed on drop), bounded waits, key files with a given mode, and a throwaway
//! PKI made with the openssl command line.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
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
        Self::spawn_with_stdin(cmd, None)
    }

    /// Starts `cmd`; with `stdin`, writes it and keeps stdin open for [`WAIT`] (the other side
    /// is the one that closes, as with `openssl s_client -quiet`).
    pub fn spawn_with_stdin(cmd: &mut Command, stdin: Option<Vec<u8>>) -> Proc {
        let mut child = cmd
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
                let _ = pipe.flush();
                std::thread::sleep(WAIT);
            });
        }
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

    /// The first line on `rx` that contains `needle` once lowercased (panics after [`WAIT`]).
    pub fn line_with(rx: &mpsc::Receiver<String>, needle: &str) -> String {
        let end = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.to_ascii_lowercase().contains(needle) => return l,
                Ok(l) => seen.push(l),
                Err(_) => panic!("no line with {needle:?} within {WAIT:?}: {seen:?}"),
            }
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

    /// The next stdout line (panics after [`WAIT`]).
    pub fn stdout_line(&self) -> String {
        self.stdout
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no stdout line within {WAIT:?}"))
    }

    /// The port of the first `https://127.0.0.1:PORT` in the "listening on" line.
    pub fn https_port(&self) -> u16 {
        let line = self.stderr_line_with("listening on ");
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("https://127.0.0.1:"))
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no TLS port in {line:?}"))
    }

    /// Time until the process exits, polled every 10 ms, at most `limit`.
    pub fn exits_within(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Waits for exit: (status code, stdout lines, stderr lines).
    pub fn finish(mut self) -> (Option<i32>, Vec<String>, Vec<String>) {
        let end = Instant::now() + WAIT;
        let status = loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                break st;
            }
            assert!(Instant::now() < end, "process still running after {WAIT:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(50));
        let out: Vec<String> = self.stdout.try_iter().collect();
        let err: Vec<String> = self.stderr.try_iter().collect();
        (status.code(), out, err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails (never skips) when an interop peer binary is missing, naming the apt package.
pub fn require(bin: &str, apt_package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "interop peer `{bin}` not found in PATH: install it with `apt-get install -y {apt_package}` \
         (scripts/setup.sh does this)"
    );
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

/// Runs `openssl ARGS` in `dir`, panicking with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line (apt install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A P-256 test CA in `dir`: `ca.key` and `ca.pem`.
pub fn make_ca(dir: &Path, cn: &str) {
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            &format!("/CN={cn}"),
            "-days",
            "30",
            "-sha256",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-out",
            "ca.pem",
        ],
    );
}

/// A P-256 key (`NAME.key`, 0600) and a certificate (`NAME.pem`) with `san`, signed by the test
/// CA in `dir`.
pub fn issue(dir: &Path, name: &str, san: &str) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let ext = format!("{name}.ext");
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &key,
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/CN={name}"),
            "-out",
            &csr,
        ],
    );
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName={san}\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            &ext,
            "-out",
            &format!("{name}.pem"),
        ],
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join(&key), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}
