//! Harness for interop tests: independent peer processes with captured output, timeouts on
//! every wait, kill on drop, free ports.

#![allow(dead_code)]

pub mod pki;

use std::io::Read;
use std::path::PathBuf;
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

/// The workspace venv's interpreter (`.venv/bin/python`, or `$M2MSEC_PYTHON`), checked to
/// import `mbedtls`; panics with the fix otherwise (never skips).
pub fn python() -> PathBuf {
    let py = std::env::var_os("M2MSEC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(".venv/bin/python")
        });
    assert!(
        py.is_file(),
        "python-mbedtls interop: no Python interpreter at {} (set M2MSEC_PYTHON or run \
         ./scripts/setup.sh, which creates .venv and installs scripts/requirements-test.txt)",
        py.display()
    );
    let out = Command::new(&py)
        .args([
            "-c",
            "import mbedtls.tls, mbedtls.version; print(mbedtls.version.version)",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    assert!(
        out.status.success(),
        "python-mbedtls interop: {} cannot import mbedtls (run ./scripts/setup.sh, which runs \
         `.venv/bin/pip install -r scripts/requirements-test.txt`): {}",
        py.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    py
}

/// A peer script in `tests/peers/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// A real ClientHello (no cookie), captured from our client.
pub async fn captured_client_hello(client: &m2msec_tls::DtlsClient) -> Vec<u8> {
    let sink = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sink.local_addr().unwrap();
    let c = client.clone();
    let h = tokio::spawn(async move { c.connect_addr(addr, Some("mef.example.com")).await });
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(WAIT, sink.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    h.abort();
    buf.truncate(n);
    buf
}

/// The cookie of a HelloVerifyRequest datagram (RFC 6347 §4.2.1): record header (13 bytes),
/// handshake header (12), server_version (2), cookie<0..255>.
pub fn hello_verify_cookie(d: &[u8]) -> Option<Vec<u8>> {
    if d.first() != Some(&22) || d.get(13) != Some(&3) {
        return None;
    }
    let len = usize::from(*d.get(27)?);
    d.get(28..28 + len).map(<[u8]>::to_vec)
}

/// `hello` (a single-record, unfragmented DTLS ClientHello without cookie) with `cookie`
/// inserted, as a client sends it in reply to a HelloVerifyRequest (message_seq 1).
pub fn client_hello_with_cookie(hello: &[u8], cookie: &[u8]) -> Vec<u8> {
    let body = &hello[25..];
    // client_version (2), random (32), session_id<0..32>, cookie<0..255>, the rest.
    let sid_end = 35 + usize::from(body[34]);
    let cookie_end = sid_end + 1 + usize::from(body[sid_end]);
    let mut new_body = body[..sid_end].to_vec();
    new_body.push(u8::try_from(cookie.len()).unwrap());
    new_body.extend_from_slice(cookie);
    new_body.extend_from_slice(&body[cookie_end..]);
    let blen = u32::try_from(new_body.len()).unwrap().to_be_bytes();
    // Record header: type, version, epoch (unchanged), sequence_number 1, length.
    let mut out = hello[..5].to_vec();
    out.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
    out.extend_from_slice(&u16::try_from(12 + new_body.len()).unwrap().to_be_bytes());
    out.push(1); // client_hello
    out.extend_from_slice(&blen[1..]);
    out.extend_from_slice(&[0, 1]); // message_seq 1
    out.extend_from_slice(&[0, 0, 0]); // fragment_offset
    out.extend_from_slice(&blen[1..]); // fragment_length
    out.extend_from_slice(&new_body);
    out
}

/// A DTLS server on 127.0.0.1 answering every datagram of every session with `echo:` + the
/// datagram. Returns its address, its counters (published every 10 ms) and a channel that
/// reports each session's end as (peer address, why).
pub async fn echo_server(
    cfg: &m2msec_tls::ServerConfig,
    opts: m2msec_tls::DtlsOptions,
) -> (
    std::net::SocketAddr,
    tokio::sync::watch::Receiver<m2msec_tls::DtlsStats>,
    tokio::sync::mpsc::UnboundedReceiver<(std::net::SocketAddr, String)>,
) {
    let mut server = m2msec_tls::DtlsServer::bind("127.0.0.1:0".parse().unwrap(), cfg, opts)
        .await
        .unwrap();
    let addr = server.local_addr();
    let (tx, rx) = tokio::sync::watch::channel(server.stats());
    let (ended_tx, ended_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tokio::select! {
                a = server.accept() => match a {
                    Some(Ok(mut s)) => {
                        let ended = ended_tx.clone();
                        tokio::spawn(async move {
                            let why = loop {
                                match s.recv().await {
                                    Ok(d) => {
                                        let mut reply = b"echo:".to_vec();
                                        reply.extend_from_slice(&d);
                                        if let Err(e) = s.send(&reply).await {
                                            break e.to_string();
                                        }
                                    }
                                    Err(e) => break e.to_string(),
                                }
                            };
                            let _ = ended.send((s.peer().addr, why));
                        });
                    }
                    Some(Err(_)) => {}
                    None => return,
                },
                _ = tick.tick() => {
                    if tx.send(server.stats()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (addr, rx, ended_rx)
}
