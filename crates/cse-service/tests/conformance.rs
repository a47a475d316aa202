//! Issue 11 through HTTP (TS-0009) on the loopback plaintext listener: what an independent
//! oneM2M client sends, as raw HTTP/1.1 on a TCP socket. The engine side of each item is in
//! `m2msec-cse`'s `tests/conformance.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use m2msec_bindings::Limits;
use m2msec_core::clock::{Clock, ManualClock};
use m2msec_cse::{Cse, CseBasePolicy, CseConfig, CseType, SqliteStore};
use m2msec_cse_service::ServerOptions;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

async fn start_with(policy: CseBasePolicy) -> SocketAddr {
    start_at(policy, Clock::system()).await
}

/// A CSE reading `clock`.
async fn start_at(policy: CseBasePolicy, clock: Clock) -> SocketAddr {
    let cfg = CseConfig {
        sp: "sp.example".parse().unwrap(),
        cse_id: "/cse-in".parse().unwrap(),
        cb_rn: "cb".into(),
        cse_type: CseType::In,
        poa: vec![],
    };
    let cse =
        Cse::with_policy(cfg, SqliteStore::open_in_memory().unwrap(), clock, &policy).unwrap();
    let opts = ServerOptions {
        tls_addr: "127.0.0.1:0".parse().unwrap(),
        authority: None,
        require_sni: false,
        credentials: vec![],
        plain_addr: Some("127.0.0.1:0".parse().unwrap()),
        limits: Limits {
            max_body: 65536,
            handshake_timeout: WAIT,
            header_timeout: WAIT,
            body_timeout: WAIT,
            idle_timeout: WAIT,
            max_connections: 16,
        },
    };
    let server = m2msec_cse_service::bind_http(opts, cse).await.unwrap();
    let addr = server.plain_addr().unwrap();
    tokio::spawn(server.serve());
    addr
}

async fn start() -> SocketAddr {
    start_with(CseBasePolicy::default()).await
}

/// A CSE whose administrator `CAdmin` is accepted on the plaintext listener.
async fn start_admin() -> SocketAddr {
    start_admin_at(Clock::system()).await
}

/// As [`start_admin`], reading `clock`.
async fn start_admin_at(clock: Clock) -> SocketAddr {
    start_at(
        CseBasePolicy {
            admin: Some("CAdmin".into()),
            admin_plaintext: true,
            ..CseBasePolicy::default()
        },
        clock,
    )
    .await
}

/// One response: X-M2M-RSC, the lower-cased head, the JSON body (Null if none).
struct Resp {
    rsc: u16,
    head: String,
    body: Value,
}

/// Sends one request (`Connection: close`) and reads the whole response.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Resp {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nX-M2M-RI: rq-1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("no response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let head = head.to_ascii_lowercase();
    let rsc = head
        .lines()
        .find_map(|l| l.strip_prefix("x-m2m-rsc: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Resp {
        rsc,
        head,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

fn json_ty(ty: u8) -> String {
    format!("application/json;ty={ty}")
}

/// Registers an AE on the plaintext listener with From = `stem`.
async fn register(addr: SocketAddr, stem: &str) {
    let ct = json_ty(2);
    let r = http(
        addr,
        "POST",
        "/cb",
        &[
            ("X-M2M-Origin", stem),
            ("Content-Type", &ct),
            ("X-M2M-RVI", "3"),
        ],
        Some(json!({"m2m:ae": {"api": "Nclient", "rr": false, "srv": ["3"]}})),
    )
    .await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
}

/// Items 1, 3, 4, 7: a registered AE reads `<CSEBase>` (with `pi` "", `srv` 2a/3 only, its
/// Vendor Information echoed) and may do nothing more there; RVI 4 is 4001; rt=5 is 5001.
#[tokio::test]
async fn registered_ae_reads_cse_base_as_a_client_expects() {
    let addr = start().await;
    register(addr, "Cclient").await;
    let r = http(
        addr,
        "GET",
        "/cb",
        &[
            ("X-M2M-Origin", "Cclient"),
            ("X-M2M-RVI", "3"),
            ("X-M2M-VSI", "tester/2.1"),
        ],
        None,
    )
    .await;
    assert_eq!(r.rsc, 2000, "{}", r.body);
    assert_eq!(r.body["m2m:cb"]["pi"], json!(""));
    assert_eq!(r.body["m2m:cb"]["srv"], json!(["2a", "3"]));
    assert_eq!(r.body["m2m:cb"]["acpi"], json!(["acpCSEBase"]));
    assert!(r.head.contains("\r\nx-m2m-vsi: tester/2.1"), "{}", r.head);
    let ct = json_ty(3);
    let r = http(
        addr,
        "POST",
        "/cb",
        &[("X-M2M-Origin", "Cclient"), ("Content-Type", &ct)],
        Some(json!({"m2m:cnt": {"rn": "x"}})),
    )
    .await;
    assert_eq!(r.rsc, 4103, "{}", r.body);
    for rvi in ["4", "5"] {
        let r = http(
            addr,
            "GET",
            "/cb",
            &[("X-M2M-Origin", "Cclient"), ("X-M2M-RVI", rvi)],
            None,
        )
        .await;
        assert_eq!(r.rsc, 4001, "rvi {rvi}");
    }
    let r = http(
        addr,
        "GET",
        "/cb?rt=5",
        &[("X-M2M-Origin", "Cclient")],
        None,
    )
    .await;
    assert_eq!(r.rsc, 5001);
    let r = http(
        addr,
        "GET",
        "/cb?rt=6",
        &[("X-M2M-Origin", "Cclient")],
        None,
    )
    .await;
    assert_eq!(r.rsc, 4000);
}

/// Item 1: the administrator, where the operator enabled it on the plaintext listener, creates
/// under `<CSEBase>`; without that option its requests there are refused.
#[tokio::test]
async fn administrator_on_the_plaintext_listener_only_when_enabled() {
    let create = |addr| async move {
        http(
            addr,
            "POST",
            "/cb",
            &[("X-M2M-Origin", "CAdmin"), ("Content-Type", &json_ty(3))],
            Some(json!({"m2m:cnt": {"rn": "shared"}})),
        )
        .await
    };
    let off = start_with(CseBasePolicy {
        admin: Some("CAdmin".into()),
        ..CseBasePolicy::default()
    })
    .await;
    assert_eq!(create(off).await.rsc, 4106);
    let on = start_with(CseBasePolicy {
        admin: Some("CAdmin".into()),
        admin_plaintext: true,
        ..CseBasePolicy::default()
    })
    .await;
    let r = create(on).await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let r = http(on, "GET", "/cb/shared", &[("X-M2M-Origin", "CAdmin")], None).await;
    assert_eq!(r.rsc, 2000, "{}", r.body);
}

/// Item 5: invalid `cnf`, `csz` and trailing slashes are 4000.
#[tokio::test]
async fn invalid_input_is_refused_over_http() {
    let addr = start_admin().await;
    register(addr, "Cclient").await;
    let ct = json_ty(3);
    let r = http(
        addr,
        "POST",
        "/cb",
        &[("X-M2M-Origin", "CAdmin"), ("Content-Type", &ct)],
        Some(json!({"m2m:cnt": {"rn": "c"}})),
    )
    .await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let ct4 = json_ty(4);
    for cnf in ["text", "text:0", "text/plain:9", "text/plain:0:0:0"] {
        let r = http(
            addr,
            "POST",
            "/cb/c",
            &[("X-M2M-Origin", "CAdmin"), ("Content-Type", &ct4)],
            Some(json!({"m2m:cin": {"con": "1", "cnf": cnf}})),
        )
        .await;
        assert_eq!(r.rsc, 4000, "{cnf}");
    }
    let r = http(addr, "GET", "/cb/c", &[("X-M2M-Origin", "CAdmin")], None).await;
    assert_eq!(r.body["m2m:cnt"]["cni"], json!(0));
    let ct2 = json_ty(2);
    let r = http(
        addr,
        "POST",
        "/cb",
        &[("X-M2M-Origin", "Ccsz"), ("Content-Type", &ct2)],
        Some(json!({"m2m:ae": {"api": "Nx", "rr": false, "csz": ["wrong"]}})),
    )
    .await;
    assert_eq!(r.rsc, 4000);
    for path in ["/cb/", "/~/cse-in/cb/", "/~/cse-in/", "/cb/Cclient/"] {
        let r = http(addr, "GET", path, &[("X-M2M-Origin", "Cclient")], None).await;
        assert_eq!(r.rsc, 4000, "{path}");
    }
}

/// Item 6: CREATE `<AE>` with a CSE-ID as From, outside any association: 4107.
#[tokio::test]
async fn ae_create_from_a_cse_id_on_plaintext_is_4107() {
    let addr = start().await;
    let ct = json_ty(2);
    let r = http(
        addr,
        "POST",
        "/cb",
        &[("X-M2M-Origin", "/cse-in"), ("Content-Type", &ct)],
        Some(json!({"m2m:ae": {"api": "Nx", "rr": false}})),
    )
    .await;
    assert_eq!(r.rsc, 4107);
}

/// Item 8: `acpi: []` in an UPDATE is 4000.
#[tokio::test]
async fn empty_acpi_update_is_4000() {
    let addr = start_admin().await;
    let ct = json_ty(3);
    let r = http(
        addr,
        "POST",
        "/cb",
        &[("X-M2M-Origin", "CAdmin"), ("Content-Type", &ct)],
        Some(json!({"m2m:cnt": {"rn": "c"}})),
    )
    .await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let put = |v: Value| async move {
        http(
            addr,
            "PUT",
            "/cb/c",
            &[
                ("X-M2M-Origin", "CAdmin"),
                ("Content-Type", "application/json"),
            ],
            Some(json!({"m2m:cnt": {"acpi": v}})),
        )
        .await
    };
    let r = put(json!([])).await;
    assert_eq!(r.rsc, 4000, "{}", r.body);
    let r = put(json!(["acpCSEBase"])).await;
    assert_eq!(r.rsc, 2004, "{}", r.body);
}

/// Item 2: a CREATE without `et` gets one; an expired `<contentInstance>` is gone and no longer
/// counts in its container. The CSE's clock is moved past the `et`, not waited for (issue 10
/// item 7).
#[tokio::test]
async fn expiration_time_assigned_and_enforced_over_http() {
    const T0: i64 = 1_800_000_000;
    let clock = ManualClock::new(T0);
    let addr = start_admin_at(clock.clock()).await;
    let ct = json_ty(3);
    let r = http(
        addr,
        "POST",
        "/cb",
        &[("X-M2M-Origin", "CAdmin"), ("Content-Type", &ct)],
        Some(json!({"m2m:cnt": {"rn": "c"}})),
    )
    .await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    assert!(r.body["m2m:cnt"]["et"].is_string(), "{}", r.body);
    let soon = m2msec_core::timestamp::Timestamp::from_unix(T0 + 2)
        .unwrap()
        .to_string();
    let ct4 = json_ty(4);
    for (rn, et) in [("short", Some(soon)), ("long", None)] {
        let mut cin = json!({"rn": rn, "con": "12345"});
        if let Some(et) = et {
            cin["et"] = json!(et);
        }
        let r = http(
            addr,
            "POST",
            "/cb/c",
            &[("X-M2M-Origin", "CAdmin"), ("Content-Type", &ct4)],
            Some(json!({"m2m:cin": cin})),
        )
        .await;
        assert_eq!(r.rsc, 2001, "{}", r.body);
    }
    clock.set(T0 + 1);
    let r = http(
        addr,
        "GET",
        "/cb/c/short",
        &[("X-M2M-Origin", "CAdmin")],
        None,
    )
    .await;
    assert_eq!(r.rsc, 2000, "not yet expired: {}", r.body);
    clock.set(T0 + 2);
    let r = http(
        addr,
        "GET",
        "/cb/c/short",
        &[("X-M2M-Origin", "CAdmin")],
        None,
    )
    .await;
    assert_eq!(r.rsc, 4004);
    let r = http(addr, "GET", "/cb/c", &[("X-M2M-Origin", "CAdmin")], None).await;
    assert_eq!(r.body["m2m:cnt"]["cni"], json!(1), "{}", r.body);
    assert_eq!(r.body["m2m:cnt"]["cbs"], json!(5), "{}", r.body);
}

/// Item 9: a NOTIFY (POST without `ty`) to an `<AE>` is authorized, then answered 5103
/// TARGET_NOT_REACHABLE (no pointOfAccess), not 4005.
#[tokio::test]
async fn notify_to_an_ae_over_http_is_5103() {
    let addr = start_admin().await;
    let r = http(
        addr,
        "POST",
        "/cb",
        &[("X-M2M-Origin", "CAdmin"), ("Content-Type", &json_ty(1))],
        Some(
            json!({"m2m:acp": {"rn": "notify", "pv": {"acr": [{"acor": ["CAdmin"], "acop": 16}]},
                                "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}}),
        ),
    )
    .await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    let acp = r.body["m2m:acp"]["ri"].as_str().unwrap().to_string();
    let r = http(
        addr,
        "POST",
        "/cb",
        &[("X-M2M-Origin", "Cclient"), ("Content-Type", &json_ty(2))],
        Some(json!({"m2m:ae": {"api": "Nx", "rr": false, "acpi": [acp]}})),
    )
    .await;
    assert_eq!(r.rsc, 2001, "{}", r.body);
    register(addr, "Cother").await;
    let notify = |to: &'static str| async move {
        http(
            addr,
            "POST",
            to,
            &[
                ("X-M2M-Origin", "CAdmin"),
                ("Content-Type", "application/json"),
            ],
            Some(json!({"m2m:sgn": {"vrq": true}})),
        )
        .await
    };
    let r = notify("/cb/Cclient").await;
    assert_eq!(r.rsc, 5103, "{}", r.body);
    let r = notify("/cb/Cother").await;
    assert_eq!(r.rsc, 4103, "{}", r.body);
    let r = notify("/cb").await;
    assert_eq!(r.rsc, 4005, "{}", r.body);
}
