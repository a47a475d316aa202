//! Forwarding through an MN-CSE (issue 12 item 7, first half): time per RETRIEVE sent by an AE
//! registered at an MN-CSE to a `<contentInstance>` of the IN-CSE (AE → MN → IN, the MN
//! forwarding over its own keep-alive HTTP/TLS-PSK link, `bindings::registrar`) against the same
//! RETRIEVE sent by an AE registered at the IN-CSE straight to it (goal: at most 2.2×).
//!
//! `cargo bench -p m2msec-cse-service --bench forward` prints
//! `RATIO forwarded_retrieve/direct = x.xx (…)`: both clients are the bindings' `HttpClient`
//! over one keep-alive TLS-PSK connection each, one request in flight, the same `To`
//! (`/cse-in/cb/shared/la`, SP-relative); the container's one
//! ACP grants both originators RETRIEVE (no `acaf`), so the IN-CSE takes the same decision.
//! Batches alternate between the two paths; the ratio is the median of the per-batch ratios.
//! Both CSEs run in this process on one tokio runtime (2 workers), on in-memory SQLite stores;
//! the clients on a current-thread runtime on the main thread.
//!
//! Without `--bench` (as under `cargo test --all-targets`) it runs once with tiny counts as a
//! smoke test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use m2msec_bindings::client::HttpClient;
use m2msec_bindings::{Limits, Listeners, Server};
use m2msec_cse::registration::{Machine, Params};
use m2msec_cse::{
    BoundIdentity, Cse, CseBasePolicy, CseConfig, CseType, Operation, RequestPrimitive, Rsc,
    SecurityContext, SqliteStore,
};
use m2msec_cse_service::registrar::{run_registration, CseAddress, CseLink, LinkForwarder};
use m2msec_cse_service::{CseEndpoint, CseSecurity, PskCredential};
use m2msec_tls::{ClientConfig, Psk, PskIdentity, TlsClient};
use serde_json::json;

const MN_ID: &str = "mn@mef.sp.example";
const DIRECT_ID: &str = "direct@mef.sp.example";
const FWD_ID: &str = "fwd@mef.sp.example";
const TO: &str = "/cse-in/cb/shared/la";

fn key(b: u8) -> Psk {
    Psk::new(&[b; 32]).unwrap()
}

fn cred(id: &str, k: u8, bound: Option<BoundIdentity>) -> PskCredential {
    PskCredential {
        psk_identity: PskIdentity::new(id).unwrap(),
        kpsa_id: id.parse().unwrap(),
        key: key(k),
        bound,
    }
}

fn config(stem: &str, ty: CseType) -> CseConfig {
    CseConfig {
        sp: "sp.example".parse().unwrap(),
        cse_id: format!("/{stem}").parse().unwrap(),
        cb_rn: "cb".into(),
        cse_type: ty,
        poa: vec![],
    }
}

async fn serve(ep: Arc<CseEndpoint<SqliteStore>>, tls: &m2msec_tls::ServerConfig) -> u16 {
    let server = Server::with_endpoint(
        Listeners {
            tls_addr: "127.0.0.1:0".parse().unwrap(),
            plain_addr: None,
            limits: Limits::default(),
        },
        tls,
        ep,
    )
    .await
    .unwrap();
    let port = server.tls_addr().unwrap().port();
    tokio::spawn(server.serve());
    port
}

async fn client(port: u16, id: &str, k: u8) -> HttpClient {
    let tls = TlsClient::new(ClientConfig::psk(PskIdentity::new(id).unwrap(), key(k))).unwrap();
    let ch = tls.connect("127.0.0.1", port, None).await.unwrap();
    HttpClient::new(ch, "cse.sp.example").await.unwrap()
}

async fn expect(c: &mut HttpClient, req: RequestPrimitive, want: Rsc) {
    let r = c.send(&req).await.unwrap();
    assert_eq!(r.rsc, want, "{} {}: {:?}", req.op as u8, req.to, r.pc);
}

/// Seconds per request over `n` sequential RETRIEVEs.
async fn batch(c: &mut HttpClient, from: &str, n: usize, seq: &mut u64) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        *seq += 1;
        let req = RequestPrimitive::new(Operation::Retrieve, TO, Some(from), format!("b{seq}"));
        let r = c.send(&req).await.unwrap();
        assert_eq!(r.rsc, Rsc::Ok);
    }
    t.elapsed().as_secs_f64() / n as f64
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (rounds, n) = if full { (9, 300) } else { (1, 5) };
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // The IN-CSE: the MN-CSE's PSK bound to /cse-in's registree /cse-mn, and a direct AE's.
    let policy = CseBasePolicy {
        admin: Some("Cadmin".into()),
        admin_plaintext: true,
        ..CseBasePolicy::default()
    };
    let in_cse = Cse::with_policy(
        config("cse-in", CseType::In),
        SqliteStore::open_in_memory().unwrap(),
        m2msec_core::clock::Clock::system(),
        &policy,
    )
    .unwrap();
    let mn_bound = Some(BoundIdentity::Cse("/cse-mn".parse().unwrap()));
    let (in_ep, in_tls) = CseEndpoint::new(
        in_cse,
        &CseSecurity {
            credentials: vec![cred(MN_ID, 1, mn_bound), cred(DIRECT_ID, 2, None)],
            ..CseSecurity::default()
        },
    );
    in_ep.with_engine(|cse| {
        let admin = |req: RequestPrimitive| req;
        let acp = cse.handle(
            &SecurityContext::None,
            admin(
                RequestPrimitive::new(Operation::Create, "cb", Some("Cadmin"), "s1")
                    .with_ty(1)
                    .with_pc(json!({"m2m:acp": {"rn": "pol",
                        "pv": {"acr": [{"acor": ["/cse-mn/Cfwd00", "Cdirect", "Cadmin"], "acop": 63}]},
                        "pvs": {"acr": [{"acor": ["Cadmin"], "acop": 63}]}}})),
            ),
        );
        assert_eq!(acp.rsc, Rsc::Created, "{:?}", acp.pc);
        let acp_ri = acp.pc.as_ref().unwrap()["m2m:acp"]["ri"].clone();
        let r = cse.handle(
            &SecurityContext::None,
            RequestPrimitive::new(Operation::Create, "cb", Some("Cadmin"), "s2")
                .with_ty(3)
                .with_pc(json!({"m2m:cnt": {"rn": "shared", "acpi": [acp_ri]}})),
        );
        assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
        let r = cse.handle(
            &SecurityContext::None,
            RequestPrimitive::new(Operation::Create, "cb/shared", Some("Cadmin"), "s3")
                .with_ty(4)
                .with_pc(json!({"m2m:cin": {"con": "21.5"}})),
        );
        assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    });
    let in_port = server_rt.block_on(serve(in_ep.clone(), &in_tls));

    // The MN-CSE: registers with the IN-CSE, forwards to it.
    let mut mn_cse = Cse::new(
        config("cse-mn", CseType::Mn),
        SqliteStore::open_in_memory().unwrap(),
    )
    .unwrap();
    mn_cse.set_registrar_id(&"/cse-in".parse().unwrap());
    let (mn_ep, mn_tls) = CseEndpoint::new(
        mn_cse,
        &CseSecurity {
            credentials: vec![cred(FWD_ID, 3, None)],
            ..CseSecurity::default()
        },
    );
    let link = Arc::new(
        CseLink::new(
            CseAddress {
                host: "127.0.0.1".into(),
                port: in_port,
                sni: None,
            },
            ClientConfig::psk(PskIdentity::new(MN_ID).unwrap(), key(1)),
        )
        .unwrap(),
    );
    mn_ep.set_forwarder(Arc::new(LinkForwarder::new(
        Some(link.clone()),
        Vec::new(),
        server_rt.handle().clone(),
    )));
    let mn_port = server_rt.block_on(serve(mn_ep.clone(), &mn_tls));
    let machine = Machine::new(Params {
        cse_id: "/cse-mn".parse().unwrap(),
        cb_rn: "cb".into(),
        poa: vec![],
        registrar: "/cse-in".parse().unwrap(),
        backoff_min_secs: 1,
        backoff_max_secs: 1,
    });
    server_rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(20),
            run_registration(mn_ep.clone(), link, machine, Duration::from_secs(5), || {}),
        )
        .await
        .expect("the MN-CSE registers");
    });

    client_rt.block_on(async {
        let ae = json!({"m2m:ae": {"api": "Nbench", "rr": false, "srv": ["3"]}});
        let mut direct = client(in_port, DIRECT_ID, 2).await;
        expect(
            &mut direct,
            RequestPrimitive::new(Operation::Create, "cb", Some("Cdirect"), "r1")
                .with_ty(2)
                .with_pc(ae.clone()),
            Rsc::Created,
        )
        .await;
        let mut fwd = client(mn_port, FWD_ID, 3).await;
        expect(
            &mut fwd,
            RequestPrimitive::new(Operation::Create, "cb", Some("Cfwd00"), "r2")
                .with_ty(2)
                .with_pc(ae),
            Rsc::Created,
        )
        .await;
        let mut seq = 0;
        // Warm-up, then alternating batches.
        batch(&mut direct, "Cdirect", n, &mut seq).await;
        batch(&mut fwd, "Cfwd00", n, &mut seq).await;
        let mut ratios = Vec::new();
        let (mut td, mut tf) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let d = batch(&mut direct, "Cdirect", n, &mut seq).await;
            let f = batch(&mut fwd, "Cfwd00", n, &mut seq).await;
            ratios.push(f / d);
            td.push(d);
            tf.push(f);
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "RATIO forwarded_retrieve/direct = {:.2}  (time per RETRIEVE: AE → MN → IN {:.1} µs vs \
             AE → IN {:.1} µs; median of {rounds} alternating batches of {n}; goal: at most 2.2)",
            med(&mut ratios),
            med(&mut tf) * 1e6,
            med(&mut td) * 1e6,
        );
    });
    println!(
        "forward bench: {}",
        if full { "done" } else { "smoke test ok" }
    );
}
