//! Harness for interop tests: independent peer processes with captured output, timeouts on
//! every wait, kill on drop, free ports.

#![allow(dead_code)]

pub mod pki;

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

/// Fail (never skip) when a peer binary is missing, naming the apt package.
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

/// A running peer process. Killed on drop.
pub struct Peer {
    name: String,
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Peer {
    /// Spawn `cmd` with stdout and stderr captured; stdin is a pipe kept open when `keep_stdin`
    /// (servers that quit on EOF), else /dev/null.
    pub fn spawn(name: &str, cmd: &mut Command, keep_stdin: bool) -> Peer {
        cmd.stdin(if keep_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let out = Arc::new(Mutex::new(String::new()));
        for r in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut r = r;
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut o) = out.lock() {
                        o.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            });
        }
        Peer {
            name: name.to_string(),
            child,
            out,
        }
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.out.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Wait until the output contains `needle`; panics with the output after `timeout`.
    pub async fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        match self.try_wait_for(needle, timeout).await {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        }
    }

    /// Wait until the output contains `needle`; Err with the output on timeout or early exit.
    pub async fn try_wait_for(
        &mut self,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let end = Instant::now() + timeout;
        loop {
            let o = self.output();
            if o.contains(needle) {
                return Ok(o);
            }
            if Instant::now() > end {
                return Err(format!(
                    "{}: no {needle:?} within {timeout:?}; output:\n{o}",
                    self.name
                ));
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                // Give the reader threads a moment to drain.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let o = self.output();
                if o.contains(needle) {
                    return Ok(o);
                }
                return Err(format!(
                    "{}: exited ({st}) before printing {needle:?}; output:\n{o}",
                    self.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait for the process to exit; panics after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return st;
            }
            if Instant::now() > end {
                panic!(
                    "{}: still running after {timeout:?}; output:\n{}",
                    self.name,
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the caller retries if it is taken by then).
pub fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or(0)
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or(0)
    }
}

/// The keying material printed by `openssl s_client/s_server -keymatexport`, lowercase hex.
pub fn openssl_keymat(output: &str) -> Option<String> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Keying material: "))
        .map(|h| h.trim().to_ascii_lowercase())
}

/// A PSK server configuration holding one identity and key (hex), with a handshake timeout.
pub fn psk_server_cfg(id: &str, key_hex: &str, timeout: Duration) -> m2msec_tls::ServerConfig {
    let t = m2msec_tls::PskTable::new();
    t.insert(
        m2msec_tls::PskIdentity::new(id).unwrap(),
        m2msec_tls::Psk::from_hex(key_hex).unwrap(),
    );
    let mut c = m2msec_tls::ServerConfig::psk(Arc::new(t));
    c.handshake_timeout = timeout;
    c
}

/// A PSK client configuration for one identity and key (hex), with a handshake timeout.
pub fn psk_client_cfg(id: &str, key_hex: &str, timeout: Duration) -> m2msec_tls::ClientConfig {
    let mut c = m2msec_tls::ClientConfig::psk(
        m2msec_tls::PskIdentity::new(id).unwrap(),
        m2msec_tls::Psk::from_hex(key_hex).unwrap(),
    );
    c.handshake_timeout = timeout;
    c
}
