//! The registrar CSE service under load (issue item 8): requests per second over an established
//! TLS-PSK association against the same server's plaintext loopback listener, AE registrations
//! per second (each with a fresh PSK handshake) against a bare OpenSSL handshake loop, and
//! p50/p99 latency with 200 concurrent clients, TLS against plaintext. Every figure is measured
//! against its baseline in the same run, in alternating batches, and reported as a median.
//!
//! `cargo bench -p m2msec-cse-service --bench service` prints:
//!
//! * `RATIO rps_{retrieve_cin,create_cin} tls/plain = x.xx`: time per request over one
//!   keep-alive HTTP/1.1 connection, one request in flight, TLS-PSK against plaintext (goal: at
//!   most 1.3). Both paths send the same requests but for `From`: `Cbench`, an AE registered
//!   over TLS in the setup, on the TLS path, and `Cplain`, an AE registered on the plaintext
//!   listener, on the plaintext path (an AE-ID registered over a credential is refused outside
//!   its association, issue 9 item 3, and unauthenticated requests hold no creator rights). The
//!   `<container>`s carry one ACP (`acpi`) whose single rule grants both originators every
//!   operation without `acaf`, so both paths take the same access decision: the same RETRIEVE
//!   of a `<contentInstance>` (`/cb/Cbench/rd/c0`) and the same CREATE of a
//!   `<contentInstance>` (in `/cb/Cbench/wr`, `mni` 100, so each CREATE also deletes the oldest
//!   instance). `RETRIEVE <CSEBase>` is not measured: nobody has default privileges on it, so it
//!   is 4103 on both paths and would measure an error response.
//! * `RATIO registrations/bare_handshakes = x.xx`: sequential AE registrations, each a new TCP
//!   connection, a TLS-PSK handshake with a credential never used before, `POST /cb`
//!   (CREATE `<AE>`, `From: C`, so the CSE assigns a C-type AE-ID and binds the credential to
//!   it) and a close, against sequential bare TLS-PSK handshakes (the `m2msec-tls` handshake
//!   bench's loop: the `openssl` crate's blocking `Ssl::connect`/`Ssl::accept`, server on its own
//!   thread; goal: at least 0.7). Both loops use the same blocking `openssl` client on the same
//!   (vendored) OpenSSL, so the ratio is the CSE's side (our TLS accept on tokio, hyper, the
//!   engine's CREATE) against a bare accept. A credential without a configured IdA binds the
//!   first AE-ID it registers and may register only that AE-ID again (TS-0003 §8.2.1), so each
//!   registration needs its own credential: the server is provisioned with one per registration
//!   of the run (`reg-N@mef.sp.example`, distinct keys); deleting each `<AE>` after its
//!   registration instead would add a request per registration. `RATE cse_handshake_only` is the
//!   same client's handshake with the CSE's listener and no request, to split the ratio between
//!   the handshake and the HTTP exchange, and `SPLIT registration` the client's time in each.
//! * `RATIO p{50,99}_200_clients tls/plain = x.xx`: 200 tasks, each with its own connection
//!   (established before the window), sending the RETRIEVE back to back for a fixed window;
//!   latencies of all requests of all clients, TLS against plaintext (medians over alternating
//!   windows). `THREADS` is the process's thread count before and after these runs.
//! * `COST …` lines: the engine alone (`CseEndpoint::handle`, no HTTP, no I/O) per request, and
//!   a `spawn_blocking` round trip on the server runtime, to locate the service's own overhead.
//!
//! Thread layout (the machine this was written on has 2 cores): the server runs on a tokio
//! multi-thread runtime with 2 workers, plus tokio's blocking pool, where `server.rs` runs each
//! engine call (`spawn_blocking`, one mutex around the engine). The clients run on a
//! current-thread tokio runtime on the bench's main thread; both sides of each TLS/plaintext
//! ratio use this same client code, only the stream differs (`TlsChannel` from `TlsClient`, or a
//! `TcpStream`). The registration and bare handshake clients are blocking, on the main thread;
//! the bare server is one more OS thread, idle outside the bare batches. The store is SQLite in
//! memory, so the store's cost is the smallest and the transport's share of each request the
//! largest.
//!
//! Without `--bench` (as under `cargo test --all-targets`) every part runs once with tiny counts
//! as a smoke test (a few seconds).

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdTcp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hyper::http::{HeaderMap, HeaderName, HeaderValue, Method};
use m2msec_bindings::http::request_from_http;
use m2msec_bindings::{listen, Endpoint, ListenOptions, Listening};
use m2msec_cse::{Cse, CseConfig, CseType, SecurityContext, SqliteStore};
use m2msec_cse_service::{CseEndpoint, CseSecurity, PskCredential};
use m2msec_tls::{ClientConfig, Psk, PskIdentity, TlsChannel, TlsClient};
use openssl::ex_data::Index;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslStream, SslVersion,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const MAIN_ID: &str = "bench@mef.sp.example";
const AE: &str = "Cbench";
/// The AE of the plaintext path (same length as [`AE`], so the requests have the same size).
const PLAIN_AE: &str = "Cplain";
const CIN: &str = r#"{"m2m:cin":{"con":"21.5","cnf":"text/plain:0"}}"#;
const REG_AE: &str = r#"{"m2m:ae":{"api":"Nreg","rr":false,"srv":["3"]}}"#;
const BARE_ID: &str = "bare@mef.sp.example";
const BARE_KEY: [u8; 32] = [0x5a; 32];

/// Counts of one run.
struct Plan {
    rounds: usize,
    rps_batch: usize,
    reg_batch: usize,
    clients: usize,
    window: Duration,
    lat_rounds: usize,
}

const FULL: Plan = Plan {
    rounds: 9,
    rps_batch: 400,
    reg_batch: 60,
    clients: 200,
    window: Duration::from_secs(2),
    lat_rounds: 3,
};

const SMOKE: Plan = Plan {
    rounds: 1,
    rps_batch: 5,
    reg_batch: 2,
    clients: 8,
    window: Duration::from_millis(100),
    lat_rounds: 1,
};

/// Registrations outside the timed batches (warm-up).
const WARM_REG: usize = 5;

/// The key of credential `c`: 0 is the main credential, `c` > 0 registration credential `c`.
fn key_bytes(c: usize) -> [u8; 32] {
    let mut k = [0x5au8; 32];
    k[..8].copy_from_slice(&(c as u64).to_le_bytes());
    k
}

fn key(c: usize) -> Psk {
    Psk::new(&key_bytes(c)).unwrap()
}

/// The identity of credential `c`.
fn cred_id(c: usize) -> String {
    if c == 0 {
        MAIN_ID.to_string()
    } else {
        format!("reg-{c}@mef.sp.example")
    }
}

fn credential(id: &str, key: Psk) -> PskCredential {
    PskCredential {
        psk_identity: PskIdentity::new(id).unwrap(),
        kpsa_id: id.parse().unwrap(),
        key,
        bound: None,
    }
}

/// One HTTP/1.1 request as bytes (`ty` set: a CREATE with a JSON body).
fn request(method: &str, path: &str, from: &str, ty: Option<u8>, body: &str) -> Vec<u8> {
    let mut s = format!(
        "{method} {path} HTTP/1.1\r\nHost: cse.sp.example\r\nX-M2M-Origin: {from}\r\n\
         X-M2M-RI: bench\r\nX-M2M-RVI: 3\r\nAccept: application/json\r\n"
    );
    if let Some(ty) = ty {
        s.push_str(&format!(
            "Content-Type: application/json;ty={ty}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    s.push_str("\r\n");
    s.push_str(body);
    s.into_bytes()
}

// ---------- the bench client: HTTP/1.1, one request in flight, any stream ----------

struct Conn<S> {
    io: S,
    buf: Vec<u8>,
    body: std::ops::Range<usize>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// (X-M2M-RSC, Content-Length) of a response head.
fn parse_head(head: &[u8]) -> (u16, usize) {
    let text = std::str::from_utf8(head).expect("response head is not UTF-8");
    assert!(
        text.starts_with("HTTP/1.1 "),
        "not an HTTP/1.1 response: {text}"
    );
    let (mut rsc, mut len) = (0, 0);
    for line in text.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                len = value.parse().expect("Content-Length");
            } else if name.eq_ignore_ascii_case("x-m2m-rsc") {
                rsc = value.parse().expect("X-M2M-RSC");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                panic!("the bench client reads Content-Length bodies only: {text}");
            }
        }
    }
    (rsc, len)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(io: S) -> Self {
        Conn {
            io,
            buf: Vec::with_capacity(8192),
            body: 0..0,
        }
    }

    async fn fill(&mut self) {
        self.buf.reserve(4096);
        let n = self.io.read_buf(&mut self.buf).await.expect("read");
        assert!(n > 0, "the server closed the connection");
    }

    /// Sends one request and reads its response; the response's X-M2M-RSC.
    async fn call(&mut self, req: &[u8]) -> u16 {
        self.io.write_all(req).await.expect("write");
        self.io.flush().await.expect("flush");
        self.buf.clear();
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p + 4;
            }
            self.fill().await;
        };
        let (rsc, len) = parse_head(&self.buf[..head_end]);
        while self.buf.len() < head_end + len {
            self.fill().await;
        }
        self.body = head_end..head_end + len;
        rsc
    }

    /// As [`Conn::call`], failing unless the RSC is `want`.
    async fn expect(&mut self, req: &[u8], want: u16) {
        let rsc = self.call(req).await;
        if rsc != want {
            panic!(
                "{}: RSC {rsc}, expected {want}: {}",
                String::from_utf8_lossy(&req[..req.iter().position(|&b| b == b'\r').unwrap_or(0)]),
                String::from_utf8_lossy(&self.buf[self.body.clone()])
            );
        }
    }
}

// ---------- the service under test ----------

struct Fixture {
    /// Dropped first, while its runtime still runs.
    _listening: Listening<CseEndpoint<SqliteStore>>,
    server_rt: tokio::runtime::Runtime,
    client_rt: tokio::runtime::Runtime,
    endpoint: Arc<CseEndpoint<SqliteStore>>,
    tls_port: u16,
    plain: SocketAddr,
    main: TlsClient,
    /// Registration credentials provisioned, and the next one unused.
    n_reg: usize,
    next_reg: usize,
}

fn fixture(n_reg: usize) -> Fixture {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cse-server")
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = CseConfig {
        sp: "sp.example".parse().unwrap(),
        cse_id: "/cse-in".parse().unwrap(),
        cb_rn: "cb".into(),
        cse_type: CseType::In,
        poa: vec![],
    };
    let cse = Cse::new(cfg, SqliteStore::open_in_memory().unwrap()).unwrap();
    let credentials = (0..=n_reg)
        .map(|c| credential(&cred_id(c), key(c)))
        .collect();
    let (endpoint, tls_cfg) = CseEndpoint::new(
        cse,
        &CseSecurity {
            authority: None,
            require_sni: false,
            credentials,
            raw_keys: Vec::new(),
        },
    );
    let listening = server_rt
        .block_on(listen(
            endpoint.clone(),
            &tls_cfg,
            ListenOptions {
                plain_addr: Some("127.0.0.1:0".parse().unwrap()),
                ..ListenOptions::loopback()
            },
        ))
        .unwrap();
    let (tls_port, plain) = (
        listening.tls_addr.unwrap().port(),
        listening.plain_addr.unwrap(),
    );
    let fx = Fixture {
        _listening: listening,
        server_rt,
        client_rt,
        endpoint,
        tls_port,
        plain,
        main: TlsClient::new(ClientConfig::psk(
            PskIdentity::new(MAIN_ID).unwrap(),
            key(0),
        ))
        .unwrap(),
        n_reg,
        next_reg: 0,
    };
    // The AE and its resources, created over TLS with the main credential.
    fx.client_rt.block_on(async {
        let mut c = Conn::new(fx.tls().await);
        let ae = r#"{"m2m:ae":{"api":"Nbench","rr":false,"srv":["3"]}}"#;
        c.expect(&request("POST", "/cb", AE, Some(2), ae), 2001)
            .await;
        let path = format!("/cb/{AE}");
        let pol = format!(
            r#"{{"m2m:acp":{{"rn":"pol","pv":{{"acr":[{{"acor":["{AE}","{PLAIN_AE}"],"acop":63}}]}},"pvs":{{"acr":[{{"acor":["{AE}"],"acop":63}}]}}}}}}"#
        );
        c.expect(&request("POST", &path, AE, Some(1), &pol), 2001)
            .await;
        let rd = format!(r#"{{"m2m:cnt":{{"rn":"rd","acpi":["cb/{AE}/pol"]}}}}"#);
        c.expect(&request("POST", &path, AE, Some(3), &rd), 2001)
            .await;
        let c0 = r#"{"m2m:cin":{"rn":"c0","con":"21.5","cnf":"text/plain:0"}}"#;
        c.expect(&request("POST", &format!("{path}/rd"), AE, Some(4), c0), 2001)
            .await;
        let wr = format!(r#"{{"m2m:cnt":{{"rn":"wr","mni":100,"acpi":["cb/{AE}/pol"]}}}}"#);
        c.expect(&request("POST", &path, AE, Some(3), &wr), 2001)
            .await;
        let mut p = Conn::new(fx.plain().await);
        let ae = r#"{"m2m:ae":{"api":"Nplain","rr":false,"srv":["3"]}}"#;
        p.expect(&request("POST", "/cb", PLAIN_AE, Some(2), ae), 2001)
            .await;
        let cipher = c
            .io
            .ssl()
            .current_cipher()
            .map(|c| c.name())
            .unwrap_or("?");
        println!(
            "service bench: {}, {cipher}; {} CPUs; server: multi-thread runtime, 2 workers + blocking pool; clients: current-thread runtime on the main thread",
            m2msec_tls::openssl_version(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        );
    });
    fx
}

impl Fixture {
    async fn tls(&self) -> TlsChannel {
        self.main
            .connect("127.0.0.1", self.tls_port, None)
            .await
            .unwrap()
    }

    async fn plain(&self) -> TcpStream {
        let s = TcpStream::connect(self.plain).await.unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// `n` registration credentials never used before.
    fn take_reg(&mut self, n: usize) -> std::ops::Range<usize> {
        let first = self.next_reg + 1;
        self.next_reg += n;
        assert!(
            self.next_reg <= self.n_reg,
            "too few credentials provisioned"
        );
        first..first + n
    }
}

// ---------- bare OpenSSL TLS-PSK handshakes (as in m2msec-tls's handshake bench) ----------

/// The bare contexts. The client's PSK callback sends the credential whose number the `Ssl`
/// carries in `cred` (ex data), or the bare loop's own identity and key without one.
fn bare_ctx(server: bool, cred: Index<Ssl, usize>) -> SslContext {
    let mut b = SslContextBuilder::new(SslMethod::tls()).unwrap();
    b.set_min_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    b.set_options(SslOptions::NO_TICKET);
    b.set_security_level(0);
    b.set_cipher_list("PSK-AES128-CBC-SHA256").unwrap();
    if server {
        b.set_psk_server_callback(|_, _, out| {
            out[..BARE_KEY.len()].copy_from_slice(&BARE_KEY);
            Ok(BARE_KEY.len())
        });
    } else {
        b.set_psk_client_callback(move |ssl, _, id, out| {
            let (name, k) = match ssl.ex_data(cred) {
                Some(&c) => (cred_id(c), key_bytes(c)),
                None => (BARE_ID.to_string(), BARE_KEY),
            };
            id[..name.len()].copy_from_slice(name.as_bytes());
            id[name.len()] = 0;
            out[..k.len()].copy_from_slice(&k);
            Ok(k.len())
        });
    }
    b.build()
}

struct Bare {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
    cctx: SslContext,
    cred: Index<Ssl, usize>,
}

fn bare() -> Bare {
    let stop = Arc::new(AtomicBool::new(false));
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let cred = Ssl::new_ex_index::<usize>().unwrap();
    let sctx = bare_ctx(true, cred);
    let st = stop.clone();
    let thread = std::thread::spawn(move || {
        for tcp in l.incoming() {
            if st.load(Ordering::Relaxed) {
                break;
            }
            if let Ok(tcp) = tcp {
                let _ = tcp.set_nodelay(true);
                let _ = Ssl::new(&sctx).unwrap().accept(tcp);
            }
        }
    });
    Bare {
        stop,
        thread: Some(thread),
        addr,
        cctx: bare_ctx(false, cred),
        cred,
    }
}

impl Bare {
    /// A blocking client handshake with `addr`, with credential `cred` (None: the bare loop's).
    fn connect(&self, addr: SocketAddr, cred: Option<usize>) -> SslStream<StdTcp> {
        let tcp = StdTcp::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut ssl = Ssl::new(&self.cctx).unwrap();
        if let Some(c) = cred {
            ssl.set_ex_data(self.cred, c);
        }
        ssl.connect(tcp).map_err(|e| e.to_string()).unwrap()
    }

    /// One bare handshake: the bare server, then close.
    fn handshake(&self) {
        self.connect(self.addr, None);
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = StdTcp::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request and its response over a blocking stream; the response's X-M2M-RSC.
fn call_blocking(s: &mut impl ReadWrite, req: &[u8]) -> u16 {
    s.write_all(req).unwrap();
    s.flush().unwrap();
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            let (rsc, len) = parse_head(&buf[..p + 4]);
            if buf.len() >= p + 4 + len {
                return rsc;
            }
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

// ---------- measurements ----------

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds per request over `n` sequential requests.
fn batch<S: AsyncRead + AsyncWrite + Unpin>(
    rt: &tokio::runtime::Runtime,
    c: &mut Conn<S>,
    req: &[u8],
    want: u16,
    n: usize,
) -> f64 {
    rt.block_on(async {
        let t = Instant::now();
        for _ in 0..n {
            c.expect(req, want).await;
        }
        t.elapsed().as_secs_f64() / n as f64
    })
}

/// Part 1: time per request over one established connection, TLS against plaintext.
fn requests_per_second(fx: &Fixture, plan: &Plan) {
    let retrieve = |from| request("GET", &format!("/cb/{AE}/rd/c0"), from, None, "");
    let create = |from| request("POST", &format!("/cb/{AE}/wr"), from, Some(4), CIN);
    let (mut tls, mut plain) = fx
        .client_rt
        .block_on(async { (Conn::new(fx.tls().await), Conn::new(fx.plain().await)) });
    for (name, treq, preq, want) in [
        ("retrieve_cin", retrieve(AE), retrieve(PLAIN_AE), 2000),
        ("create_cin", create(AE), create(PLAIN_AE), 2001),
    ] {
        batch(&fx.client_rt, &mut tls, &treq, want, plan.rps_batch / 4 + 1);
        batch(
            &fx.client_rt,
            &mut plain,
            &preq,
            want,
            plan.rps_batch / 4 + 1,
        );
        let (mut t, mut p) = (Vec::new(), Vec::new());
        for _ in 0..plan.rounds {
            t.push(batch(&fx.client_rt, &mut tls, &treq, want, plan.rps_batch));
            p.push(batch(
                &fx.client_rt,
                &mut plain,
                &preq,
                want,
                plan.rps_batch,
            ));
        }
        let (t, p) = (median(t), median(p));
        println!(
            "RATIO rps_{name} tls/plain = {:.2}  (time per request: tls {:.1} µs vs plain {:.1} µs; \
             tls {:.0} req/s vs plain {:.0} req/s; goal <= 1.3)",
            t / p,
            t * 1e6,
            p * 1e6,
            1.0 / t,
            1.0 / p
        );
    }
}

/// The engine alone (no HTTP, no I/O, no spawn_blocking) and one spawn_blocking round trip on
/// the server runtime, per request.
fn costs(fx: &Fixture, plan: &Plan) {
    // Outside any association, as the plaintext AE (module docs).
    let mut h = HeaderMap::new();
    h.insert(
        HeaderName::from_static("x-m2m-origin"),
        HeaderValue::from_static(PLAIN_AE),
    );
    h.insert(
        HeaderName::from_static("x-m2m-ri"),
        HeaderValue::from_static("bench"),
    );
    h.insert(
        HeaderName::from_static("x-m2m-rvi"),
        HeaderValue::from_static("3"),
    );
    let get = request_from_http(&Method::GET, &format!("/cb/{AE}/rd/c0"), &h, b"", 65536)
        .unwrap_or_else(|r| panic!("{r:?}"));
    let mut hc = h.clone();
    hc.insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("application/json;ty=4"),
    );
    let post = request_from_http(
        &Method::POST,
        &format!("/cb/{AE}/wr"),
        &hc,
        CIN.as_bytes(),
        65536,
    )
    .unwrap_or_else(|r| panic!("{r:?}"));
    // CREATE <AE> outside any association (`From: C`): the engine's part of a registration,
    // without a credential binding.
    let mut ha = h.clone();
    ha.insert(
        HeaderName::from_static("x-m2m-origin"),
        HeaderValue::from_static("C"),
    );
    ha.insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("application/json;ty=2"),
    );
    let ae = request_from_http(&Method::POST, "/cb", &ha, REG_AE.as_bytes(), 65536)
        .unwrap_or_else(|r| panic!("{r:?}"));
    let n = plan.rounds * plan.rps_batch;
    for (name, prim, want, batch) in [
        ("retrieve_cin", &get, 2000, plan.rps_batch),
        ("create_cin", &post, 2001, plan.rps_batch),
        ("create_ae", &ae, 2001, plan.reg_batch),
    ] {
        let mut v = Vec::new();
        for _ in 0..plan.rounds {
            let t = Instant::now();
            for _ in 0..batch {
                let r = fx
                    .endpoint
                    .handle(&SecurityContext::None.into(), prim.clone());
                assert_eq!(r.response.rsc.as_u16(), want, "{:?}", r.response);
            }
            v.push(t.elapsed().as_secs_f64() / batch as f64);
        }
        println!(
            "COST engine {name} = {:.1} µs per request (CseEndpoint::handle, no HTTP, no I/O)",
            median(v) * 1e6
        );
    }
    let rt = &fx.server_rt;
    let per = rt.block_on(async {
        tokio::spawn(async move {
            let t = Instant::now();
            for _ in 0..n {
                tokio::task::spawn_blocking(|| ()).await.unwrap();
            }
            t.elapsed().as_secs_f64() / n as f64
        })
        .await
        .unwrap()
    });
    println!(
        "COST spawn_blocking round trip on the server runtime = {:.1} µs",
        per * 1e6
    );
}

/// Part 2: registrations with a fresh handshake each, against bare handshakes. Both loops use
/// the same blocking `openssl` client, so only the server side and the HTTP exchange differ.
fn registrations(fx: &mut Fixture, plan: &Plan) {
    let bare = bare();
    let cse: SocketAddr = ([127, 0, 0, 1], fx.tls_port).into();
    let req = request("POST", "/cb", "C", Some(2), REG_AE);
    // (registrations per second, mean seconds in the handshake, mean seconds in the exchange).
    let register = |creds: std::ops::Range<usize>| -> (f64, f64, f64) {
        let n = creds.len() as f64;
        let (mut hs, mut ex) = (Duration::ZERO, Duration::ZERO);
        let t = Instant::now();
        for c in creds {
            let t0 = Instant::now();
            let mut s = bare.connect(cse, Some(c));
            let t1 = Instant::now();
            let rsc = call_blocking(&mut s, &req);
            assert_eq!(rsc, 2001, "registration with credential {c}");
            ex += t1.elapsed();
            hs += t1 - t0;
        }
        (
            n / t.elapsed().as_secs_f64(),
            hs.as_secs_f64() / n,
            ex.as_secs_f64() / n,
        )
    };
    let handshakes = |n: usize| -> f64 {
        let t = Instant::now();
        for _ in 0..n {
            bare.connect(cse, Some(0));
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    let bare_rate = |n: usize| -> f64 {
        let t = Instant::now();
        for _ in 0..n {
            bare.handshake();
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    register(fx.take_reg(WARM_REG));
    bare_rate(WARM_REG);
    handshakes(WARM_REG);
    let (mut r, mut b, mut h) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rh, mut rx) = (Vec::new(), Vec::new());
    for _ in 0..plan.rounds {
        let (rate, hs, ex) = register(fx.take_reg(plan.reg_batch));
        r.push(rate);
        rh.push(hs);
        rx.push(ex);
        b.push(bare_rate(plan.reg_batch));
        h.push(handshakes(plan.reg_batch));
    }
    let (r, b, h) = (median(r), median(b), median(h));
    let (rh, rx) = (median(rh), median(rx));
    println!(
        "RATIO registrations/bare_handshakes = {:.2}  (registrations {r:.0}/s vs bare TLS-PSK \
         handshakes {b:.0}/s; goal >= 0.7)",
        r / b
    );
    println!(
        "RATE cse_handshake_only = {h:.0}/s ({:.2} of bare: the same client's handshake with the CSE's \
         listener, no request)",
        h / b
    );
    println!(
        "SPLIT registration = {:.0} µs: TCP connect + handshake {:.0} µs, CREATE <AE> exchange {:.0} µs \
         (the bare handshake: {:.0} µs)",
        1e6 / r,
        rh * 1e6,
        rx * 1e6,
        1e6 / b
    );
}

fn percentile(sorted: &[u32], p: usize) -> f64 {
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    f64::from(sorted[i]) / 1000.0
}

/// 200 clients sending the RETRIEVE back to back for `window`: (connections, latencies in µs,
/// requests per second).
fn run_clients<S>(
    rt: &tokio::runtime::Runtime,
    conns: Vec<Conn<S>>,
    req: &Arc<Vec<u8>>,
    window: Duration,
) -> (Vec<Conn<S>>, Vec<u32>, f64)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    rt.block_on(async {
        let start = Instant::now();
        let end = start + window;
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut c| {
                let req = req.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(1024);
                    while Instant::now() < end {
                        let t = Instant::now();
                        c.expect(&req, 2000).await;
                        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                    (c, lat)
                })
            })
            .collect();
        let mut conns = Vec::with_capacity(tasks.len());
        let mut all = Vec::new();
        for t in tasks {
            let (c, lat) = t.await.unwrap();
            conns.push(c);
            all.extend(lat);
        }
        let rate = all.len() as f64 / start.elapsed().as_secs_f64();
        all.sort_unstable();
        (conns, all, rate)
    })
}

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Part 3: p50/p99 latency with `plan.clients` concurrent clients, TLS against plaintext.
fn latency(fx: &Fixture, plan: &Plan) {
    let req = Arc::new(request("GET", &format!("/cb/{AE}/rd/c0"), AE, None, ""));
    let preq = Arc::new(request(
        "GET",
        &format!("/cb/{AE}/rd/c0"),
        PLAIN_AE,
        None,
        "",
    ));
    let (mut tls, mut plain) = fx.client_rt.block_on(async {
        let mut t = Vec::with_capacity(plan.clients);
        let mut p = Vec::with_capacity(plan.clients);
        for _ in 0..plan.clients {
            t.push(Conn::new(fx.tls().await));
            p.push(Conn::new(fx.plain().await));
        }
        (t, p)
    });
    let threads_before = threads();
    let n = plan.clients;
    let (mut t50, mut t99, mut trate) = (Vec::new(), Vec::new(), Vec::new());
    let (mut p50, mut p99, mut prate) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..plan.lat_rounds {
        let (c, lat, rate) = run_clients(&fx.client_rt, tls, &req, plan.window);
        tls = c;
        t50.push(percentile(&lat, 50));
        t99.push(percentile(&lat, 99));
        trate.push(rate);
        let (c, lat, rate) = run_clients(&fx.client_rt, plain, &preq, plan.window);
        plain = c;
        p50.push(percentile(&lat, 50));
        p99.push(percentile(&lat, 99));
        prate.push(rate);
    }
    let (t50, t99, trate) = (median(t50), median(t99), median(trate));
    let (p50, p99, prate) = (median(p50), median(p99), median(prate));
    println!("LATENCY {n} clients tls: p50 = {t50:.2} ms, p99 = {t99:.2} ms, {trate:.0} req/s");
    println!("LATENCY {n} clients plain: p50 = {p50:.2} ms, p99 = {p99:.2} ms, {prate:.0} req/s");
    println!("RATIO p50_{n}_clients tls/plain = {:.2}", t50 / p50);
    println!("RATIO p99_{n}_clients tls/plain = {:.2}", t99 / p99);
    println!(
        "THREADS process = {} before the {n}-client runs, {} after (tokio blocking pool growth)",
        threads_before,
        threads()
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full { &FULL } else { &SMOKE };
    let t = Instant::now();
    let mut fx = fixture(WARM_REG + plan.rounds * plan.reg_batch);
    requests_per_second(&fx, plan);
    registrations(&mut fx, plan);
    latency(&fx, plan);
    costs(&fx, plan);
    println!(
        "service bench: {} in {:.1} s",
        if full { "done" } else { "smoke test ok" },
        t.elapsed().as_secs_f64()
    );
}
