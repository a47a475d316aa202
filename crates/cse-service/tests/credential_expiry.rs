//! A stored PSK credential's expiry (TS-0003 §8.2.2.1; `m2m:timestamp` expiry of
//! `m2msec cse credential add --expires`) over real TLS-PSK on loopback, judged on the CSE's
//! injected clock (issue 10 item 7): the test moves the clock past the expiry instead of
//! sleeping. Up to the second before it the credential works; from it on, the store watcher's
//! round closes the live sessions and new handshakes with it fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use m2msec_bindings::client::HttpClient;
use m2msec_bindings::{Limits, Listeners, Server};
use m2msec_core::clock::ManualClock;
use m2msec_core::timestamp::Timestamp;
use m2msec_cse::credentials::{AddOptions, CredentialStore, NewCredential};
use m2msec_cse::{Cse, CseConfig, CseType, Operation, RequestPrimitive, Rsc, SqliteStore};
use m2msec_cse_service::{CseEndpoint, CseSecurity};
use m2msec_tls::{ClientConfig, Psk, PskIdentity, TlsClient};
use serde_json::json;

const SNI: &str = "cse.sp.example";
const ID: &str = "ae-short@mef.sp.example";
const KEY: [u8; 32] = [0xa1; 32];
/// The test's start time (2027-01-15T08:00:00Z); the credential expires a minute later.
const T0: i64 = 1_800_000_000;
const WAIT: Duration = Duration::from_secs(10);

async fn connect(port: u16) -> Result<HttpClient, String> {
    let cfg = ClientConfig::psk(PskIdentity::new(ID).unwrap(), Psk::new(&KEY).unwrap());
    let ch = TlsClient::new(cfg)
        .unwrap()
        .connect("127.0.0.1", port, Some(SNI))
        .await
        .map_err(|e| e.to_string())?;
    HttpClient::new(ch, SNI).await.map_err(|e| e.to_string())
}

fn retrieve(rqi: &str) -> RequestPrimitive {
    RequestPrimitive::new(Operation::Retrieve, "cb/short", Some("Cshort"), rqi)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_stored_credential_closes_its_session_and_is_refused() {
    let clock = ManualClock::new(T0);
    let dir = tempfile::tempdir().unwrap();
    // Provisioned at T0, as `m2msec cse credential add --expires` would, for one minute.
    let mut c = NewCredential::new(ID.parse().unwrap(), &KEY);
    c.expires = Some(Timestamp::from_unix(T0 + 60).unwrap());
    CredentialStore::open(dir.path())
        .unwrap()
        .add(&c, AddOptions::default(), T0, || Ok(()))
        .unwrap();

    let cse = Cse::with_clock(
        CseConfig {
            sp: "sp.example".parse().unwrap(),
            cse_id: "/cse-in".parse().unwrap(),
            cb_rn: "cb".into(),
            cse_type: CseType::In,
            poa: vec![],
        },
        SqliteStore::open_in_memory().unwrap(),
        clock.clock(),
    )
    .unwrap();
    let (ep, tls) = CseEndpoint::new(cse, &CseSecurity::default());
    assert_eq!(
        ep.attach_credential_store(CredentialStore::open(dir.path()).unwrap())
            .unwrap(),
        1
    );
    let server = Server::with_endpoint(
        Listeners {
            tls_addr: "127.0.0.1:0".parse().unwrap(),
            plain_addr: None,
            limits: Limits::default(),
        },
        &tls,
        Arc::clone(&ep),
    )
    .await
    .unwrap();
    let port = server.tls_addr().unwrap().port();
    tokio::spawn(server.serve());

    let mut http = connect(port).await.unwrap();
    let mut reg = RequestPrimitive::new(Operation::Create, "cb", Some("Cshort"), "1");
    reg.ty = Some(2);
    reg.pc = Some(json!({"m2m:ae": {"rn": "short", "api": "Nshort", "rr": false, "srv": ["3"]}}));
    assert_eq!(http.send(&reg).await.unwrap().rsc, Rsc::Created);

    // The second before the expiry: the session and new handshakes still work. (The CSE's
    // store watcher runs `refresh_credentials` every interval; the test runs it itself.)
    clock.set(T0 + 59);
    assert!(
        !ep.refresh_credentials().unwrap(),
        "time alone reloads nothing"
    );
    assert_eq!(http.send(&retrieve("2")).await.unwrap().rsc, Rsc::Ok);
    let mut again = connect(port).await.unwrap();
    assert_eq!(again.send(&retrieve("3")).await.unwrap().rsc, Rsc::Ok);

    // At the expiry: the next round closes both sessions; handshakes fail.
    clock.set(T0 + 60);
    ep.refresh_credentials().unwrap();
    let end = Instant::now() + WAIT;
    for (n, s) in [&mut http, &mut again].into_iter().enumerate() {
        loop {
            match tokio::time::timeout(WAIT, s.send(&retrieve(&format!("x{n}")))).await {
                Ok(Err(_)) => break,
                Ok(Ok(r)) => assert_eq!(r.rsc, Rsc::Ok),
                Err(_) => panic!("no answer and no close within {WAIT:?}"),
            }
            assert!(Instant::now() < end, "session {n} not closed at the expiry");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(
        connect(port).await.is_err(),
        "a handshake with an expired credential"
    );
}
