//! Simulated pair (docs/architecture.md): an IN-CSE and an MN-CSE engine in one process, on
//! in-memory SQLite stores, with the registration machine ([`m2msec_cse::registration`]) and
//! the routing decision ([`m2msec_cse::Cse::dispatch`]) wired by a tiny loop instead of sockets.
//! Each CSE-to-CSE link is an association bound to the sending CSE's CSE-ID, as the bindings
//! describe a PSK association configured with that CSE-ID (TS-0003 §8.2.2.1).
//!
//! Covers issue 12 items 1–3 at the engine level: registration with drops, duplicates, stale
//! answers and restarts at every step; AEs registered at the MN-CSE writing to the IN-CSE
//! through it; the TS-0004 §7.3.2.1 rules and `acaf` for forwarded requests; routing loops.

mod common;

use common::*;
use m2msec_core::ids::CseId;
use m2msec_cse::registration::{Fed, Machine, Params, Step};
use m2msec_cse::{
    Cse, CseBasePolicy, CseConfig, CseType, Dispatch, Operation, RequestPrimitive,
    ResponsePrimitive, Rsc, SecurityContext, SqliteStore,
};
use serde_json::json;

struct Node {
    stem: &'static str,
    cse: Cse<SqliteStore>,
}

fn node(stem: &'static str, ty: CseType, registrar: Option<&str>) -> Node {
    let cfg = CseConfig {
        sp: "sp.example".parse().unwrap(),
        cse_id: format!("/{stem}").parse().unwrap(),
        cb_rn: "cb".into(),
        cse_type: ty,
        poa: vec![format!("https://{stem}.sp.example:8443")],
    };
    let policy = CseBasePolicy {
        admin: Some("Cadmin".into()),
        admin_plaintext: true,
        ..CseBasePolicy::default()
    };
    let mut cse = Cse::with_policy(
        cfg,
        SqliteStore::open_in_memory().unwrap(),
        m2msec_core::clock::Clock::fixed(NOW),
        &policy,
    )
    .unwrap();
    if let Some(r) = registrar {
        cse.set_registrar_id(&r.parse::<CseId>().unwrap());
    }
    Node { stem, cse }
}

/// The association at a CSE over which CSE `from` sends (bound to `from`'s CSE-ID).
fn link(from: &str) -> SecurityContext {
    cse_sa(&format!("{from}@mef.sp.example"), &format!("/{from}"))
}

/// Delivers `req` at `nodes[at]` over `sec`, following forwards through the other nodes as a
/// blocking request would (each hop waits for the next). `hops` bounds the recursion so a loop
/// the engines fail to stop fails the test instead of hanging it.
fn deliver(
    nodes: &mut [Node],
    at: usize,
    sec: &SecurityContext,
    req: RequestPrimitive,
    hops: &mut usize,
) -> ResponsePrimitive {
    *hops += 1;
    assert!(*hops < 16, "routing loop not stopped");
    match nodes[at].cse.dispatch(sec, req) {
        Dispatch::Reply(r) => r,
        Dispatch::Forward(f) => {
            let next = nodes
                .iter()
                .position(|n| n.stem == f.next_hop.csi())
                .expect("next hop is a node");
            let from = link(nodes[at].stem);
            let resp = deliver(nodes, next, &from, f.request.clone(), hops);
            nodes[at].cse.forward_ended(&f, Ok(resp))
        }
    }
}

fn send(
    nodes: &mut [Node],
    at: usize,
    sec: &SecurityContext,
    req: RequestPrimitive,
) -> ResponsePrimitive {
    let mut hops = 0;
    deliver(nodes, at, sec, req, &mut hops)
}

const IN: usize = 0;
const MN: usize = 1;

fn params() -> Params {
    Params {
        cse_id: "/cse-mn".parse().unwrap(),
        cb_rn: "cb".into(),
        poa: vec!["https://cse-mn.sp.example:8443".into()],
        registrar: "/cse-in".parse().unwrap(),
        backoff_min_secs: 1,
        backoff_max_secs: 60,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    DropRequest,
    DropResponse,
    DuplicateRequest,
    /// The response is delivered, then again after the next request is sent (a stale one).
    StaleResponse,
    /// The effect (writing the registrar's <remoteCSE>) fails once.
    StoreFails,
}

/// Runs the registration of node `reg_at` (registree) with `nodes[IN]`, injecting `fault` at
/// message `at`. Returns the number of requests the machine sent.
fn register_mn(nodes: &mut [Node], m: &mut Machine, fault: Option<(usize, Fault)>) -> usize {
    register_mn_at(nodes, m, fault, NOW)
}

fn register_mn_at(
    nodes: &mut [Node],
    m: &mut Machine,
    fault: Option<(usize, Fault)>,
    mut now: i64,
) -> usize {
    let mut sent = 0;
    let mut stale: Option<ResponsePrimitive> = None;
    let mn_link = link("cse-mn");
    for _ in 0..64 {
        match m.poll(now) {
            Step::Send(req) => {
                let k = sent;
                sent += 1;
                let f = fault.filter(|(at, _)| *at == k).map(|(_, f)| f);
                if let Some(s) = stale.take() {
                    assert_eq!(m.handle_response(s, now), Fed::Ignored, "a stale answer");
                }
                match f {
                    Some(Fault::DropRequest) => m.transport_failed(&"dropped", now),
                    Some(Fault::DropResponse) => {
                        send(nodes, IN, &mn_link, req);
                        m.transport_failed(&"no answer before the deadline", now);
                    }
                    Some(Fault::DuplicateRequest) => {
                        let r1 = send(nodes, IN, &mn_link, req.clone());
                        let r2 = send(nodes, IN, &mn_link, req);
                        assert_eq!(m.handle_response(r1, now), Fed::Accepted);
                        assert_eq!(m.handle_response(r2, now), Fed::Ignored);
                    }
                    Some(Fault::StaleResponse) => {
                        let r = send(nodes, IN, &mn_link, req);
                        stale = Some(r.clone());
                        m.handle_response(r, now);
                    }
                    _ => {
                        let r = send(nodes, IN, &mn_link, req);
                        m.handle_response(r, now);
                    }
                }
            }
            Step::Store(rec) => {
                let fail = fault.is_some_and(|(_, f)| f == Fault::StoreFails) && sent < 4;
                let res = if fail {
                    Err("disk full".to_string())
                } else {
                    nodes[MN].cse.set_registrar(&rec).map_err(|e| e.detail)
                };
                m.stored(res, now);
            }
            Step::Sleep(s) => {
                assert!((1..=60).contains(&s), "backoff {s}");
                now += i64::try_from(s).unwrap();
            }
            Step::Registered => return sent,
            Step::Awaiting => panic!("awaiting with nothing outstanding"),
        }
    }
    panic!("registration did not finish: {:?}", m.last_error());
}

/// The registration's invariants: one `<remoteCSE>` for the MN at the IN with the MN's current
/// poa, the IN's `<remoteCSE>` at the MN, the MN knows its registrar.
fn assert_registered(nodes: &mut [Node]) {
    let r = send(
        nodes,
        IN,
        &link("cse-mn"),
        req(Operation::Retrieve, "cb/cse-mn", Some("/cse-mn")),
    );
    assert_eq!(r.rsc, Rsc::Ok, "{:?}", r.pc);
    assert_eq!(
        attr(&r, "m2m:csr", "poa"),
        &json!(["https://cse-mn.sp.example:8443"])
    );
    assert_eq!(attr(&r, "m2m:csr", "csi"), "/cse-mn");
    // One <remoteCSE> at the IN.
    let routes = nodes[IN].cse.routes().unwrap();
    assert_eq!(routes.registrees.len(), 1, "{routes:?}");
    assert_eq!(routes.registrees[0].csi, "cse-mn");
    // The registrar's <remoteCSE> at the MN (readable by the registrar itself).
    let r = send(
        nodes,
        MN,
        &link("cse-in"),
        req(Operation::Retrieve, "cb/cse-in", Some("/cse-in")),
    );
    assert_eq!(r.rsc, Rsc::Ok, "{:?}", r.pc);
    assert_eq!(attr(&r, "m2m:csr", "csi"), "/cse-in");
    assert_eq!(attr(&r, "m2m:csr", "cb"), "/cse-in/cb");
    assert_eq!(attr(&r, "m2m:csr", "cst"), 1);
    assert_eq!(nodes[MN].cse.registrar(), Some("cse-in"));
}

fn pair() -> Vec<Node> {
    vec![
        node("cse-in", CseType::In, None),
        node("cse-mn", CseType::Mn, Some("/cse-in")),
    ]
}

#[test]
fn registration_clean_then_restart_reregisters() {
    let mut nodes = pair();
    let mut m = Machine::new(params());
    assert_eq!(register_mn(&mut nodes, &mut m, None), 2, "CREATE, RETRIEVE");
    assert_registered(&mut nodes);
    // A restart of the MN-CSE with a new poa: CREATE → 4117 → UPDATE poa → RETRIEVE.
    let mut p = params();
    p.poa = vec!["https://cse-mn.sp.example:9443".into()];
    let mut m = Machine::new(p);
    assert_eq!(register_mn(&mut nodes, &mut m, None), 3);
    let r = send(
        &mut nodes,
        IN,
        &link("cse-mn"),
        req(Operation::Retrieve, "cb/cse-mn", Some("/cse-mn")),
    );
    assert_eq!(
        attr(&r, "m2m:csr", "poa"),
        &json!(["https://cse-mn.sp.example:9443"])
    );
}

#[test]
fn registration_survives_a_fault_at_every_step() {
    for fault in [
        Fault::DropRequest,
        Fault::DropResponse,
        Fault::DuplicateRequest,
        Fault::StaleResponse,
        Fault::StoreFails,
    ] {
        for at in 0..3 {
            let mut nodes = pair();
            let mut m = Machine::new(params());
            register_mn(&mut nodes, &mut m, Some((at, fault)));
            assert_registered(&mut nodes);
        }
    }
}

#[test]
fn registrar_down_backs_off_exponentially_up_to_the_cap() {
    let mut m = Machine::new(params());
    let mut now = NOW;
    let mut sleeps = Vec::new();
    for _ in 0..10 {
        loop {
            match m.poll(now) {
                Step::Send(_) => {
                    m.transport_failed(&"connection refused", now);
                    break;
                }
                Step::Sleep(s) => {
                    sleeps.push(s);
                    now += i64::try_from(s).unwrap();
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(sleeps, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert!(m.last_error().unwrap().contains("connection refused"));
    // When the registrar is back, it registers and the backoff resets.
    let mut nodes = pair();
    register_mn_at(&mut nodes, &mut m, None, now);
    assert_eq!(m.failures(), 0);
    assert_registered(&mut nodes);
}

#[test]
fn registration_with_the_wrong_registrar_fails() {
    // The CSE at the other end says it is /cse-other: the attempt fails and backs off.
    let mut nodes = pair();
    let mut p = params();
    p.registrar = "/cse-other".parse().unwrap();
    let mut m = Machine::new(p);
    let mut now = NOW;
    for _ in 0..3 {
        match m.poll(now) {
            Step::Send(mut req) => {
                // Deliver to the IN regardless of the address (a misrouted connection).
                req.to = req.to.replace("/cse-other", "/cse-in");
                let r = send(&mut nodes, IN, &link("cse-mn"), req);
                m.handle_response(r, now);
            }
            Step::Sleep(s) => now += i64::try_from(s).unwrap(),
            other => panic!("{other:?}"),
        }
    }
    assert!(!m.is_registered());
    assert!(
        m.last_error().unwrap().contains("not the configured"),
        "{:?}",
        m.last_error()
    );
}

/// An ACP at the IN-CSE granting the MN-CSE's AEs, and a container using it (the administrator,
/// authenticated on the plaintext loopback listener).
fn shared_container(nodes: &mut [Node], name: &str, acaf: bool) -> String {
    let mut rule = json!({"acor": ["/cse-mn/C*"], "acop": 63});
    if acaf {
        rule["acaf"] = json!(true);
    }
    let acp = format!("acp{name}");
    let r = send(
        nodes,
        IN,
        &plain(),
        create(
            "cb",
            Some("Cadmin"),
            1,
            json!({"m2m:acp": {"rn": acp, "pv": {"acr": [rule]},
                "pvs": {"acr": [{"acor": ["Cadmin"], "acop": 63}]}}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    let acp_ri = r.pc.as_ref().unwrap()["m2m:acp"]["ri"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send(
        nodes,
        IN,
        &plain(),
        create(
            "cb",
            Some("Cadmin"),
            3,
            json!({"m2m:cnt": {"rn": name, "acpi": [acp_ri.clone()]}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    acp_ri
}

fn registered_pair() -> Vec<Node> {
    let mut nodes = pair();
    let mut m = Machine::new(params());
    register_mn(&mut nodes, &mut m, None);
    nodes
}

#[test]
fn ae_at_the_mn_writes_to_the_in_through_it() {
    let mut nodes = registered_pair();
    let acp = shared_container(&mut nodes, "shared", false);
    // An AE registers at the MN-CSE over its own association.
    let ae_sa = psk("dev1@mef.sp.example");
    let r = send(
        &mut nodes,
        MN,
        &ae_sa,
        create("cb", None, 2, ae_body("Nsensor")),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    let aei = attr(&r, "m2m:ae", "aei").as_str().unwrap().to_string();
    // It creates a container and a contentInstance at the IN-CSE, through the MN-CSE, with
    // SP-relative addressing (structured) and absolute addressing.
    let r = send(
        &mut nodes,
        MN,
        &ae_sa,
        create(
            "/cse-in/cb/shared",
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "c1", "acpi": [acp]}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    assert_eq!(r.fr.as_deref(), Some("/cse-in"), "the IN-CSE answered");
    assert_eq!(r.rqi, "rq-1");
    let r = send(
        &mut nodes,
        MN,
        &ae_sa,
        create(
            "//sp.example/cse-in/cb/shared/c1",
            Some(&aei),
            4,
            json!({"m2m:cin": {"con": "21.5"}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    // The IN-CSE recorded the AE's SP-relative AE-ID as the creator (From preserved).
    let r = send(
        &mut nodes,
        MN,
        &ae_sa,
        req(Operation::Retrieve, "/cse-in/cb/shared/c1/la", Some(&aei)),
    );
    assert_eq!(r.rsc, Rsc::Ok, "{:?}", r.pc);
    assert_eq!(attr(&r, "m2m:cin", "con"), "21.5");
    // The AE cannot claim another identity at the MN to be forwarded (verified before
    // forwarding: TS-0003 §7.2.1 at its registrar).
    let r = send(
        &mut nodes,
        MN,
        &ae_sa,
        req(
            Operation::Retrieve,
            "/cse-in/cb/shared/c1/la",
            Some("Cother"),
        ),
    );
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
    assert_eq!(r.fr.as_deref(), Some("/cse-mn"), "refused at the MN-CSE");
    // A registration cannot be forwarded (TS-0004 §7.3.2.8).
    let r = send(
        &mut nodes,
        MN,
        &ae_sa,
        create("/cse-in", None, 2, ae_body("Nx")),
    );
    assert_eq!(r.rsc, Rsc::BadRequest);
    // The IN-CSE reaches the MN-CSE's resources (down the tree): the MN's own <CSEBase>
    // policy lets no IN-side originator read it, so 4103 comes from the MN-CSE.
    let r = send(
        &mut nodes,
        IN,
        &plain(),
        req(Operation::Retrieve, "/cse-mn/cb", Some("Cadmin")),
    );
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege, "{:?}", r.pc);
    assert_eq!(r.fr.as_deref(), Some("/cse-mn"));
    // An unknown CSE: NOT_FOUND at the IN-CSE (TS-0004 §7.3.2.6).
    let r = send(
        &mut nodes,
        MN,
        &ae_sa,
        req(Operation::Retrieve, "/cse-nowhere/cb", Some(&aei)),
    );
    assert_eq!(r.rsc, Rsc::NotFound);
    assert_eq!(r.fr.as_deref(), Some("/cse-in"));
}

#[test]
fn acaf_refuses_forwarded_requests() {
    let mut nodes = registered_pair();
    shared_container(&mut nodes, "strict", true);
    shared_container(&mut nodes, "open", false);
    let ae_sa = psk("dev1@mef.sp.example");
    let aei = register(&mut nodes[MN].cse, &ae_sa, None);
    for (c, want) in [
        ("strict", Rsc::OriginatorHasNoPrivilege),
        ("open", Rsc::Created),
    ] {
        let r = send(
            &mut nodes,
            MN,
            &ae_sa,
            create(
                &format!("/cse-in/cb/{c}"),
                Some(&aei),
                4,
                json!({"m2m:cin": {"con": "x"}}),
            ),
        );
        assert_eq!(r.rsc, want, "{c}: {:?}", r.pc);
    }
}

/// The three TS-0004 §7.3.2.1 CSE-association rules, applied to what an MN-CSE forwards: a
/// compromised MN-CSE sending over its own association with a forged `From`.
#[test]
fn forged_from_over_the_mn_association() {
    let mut nodes = registered_pair();
    nodes.push(node("cse-mn2", CseType::Mn, Some("/cse-in")));
    let mut m2 = Machine::new(Params {
        cse_id: "/cse-mn2".parse().unwrap(),
        ..params()
    });
    // Register cse-mn2 by hand (register_mn drives nodes[MN]).
    let mut now = NOW;
    loop {
        match m2.poll(now) {
            Step::Send(r) => {
                let resp = send(&mut nodes, IN, &link("cse-mn2"), r);
                m2.handle_response(resp, now);
            }
            Step::Store(rec) => {
                let res = nodes[2].cse.set_registrar(&rec).map_err(|e| e.detail);
                m2.stored(res, now);
            }
            Step::Registered => break,
            Step::Sleep(s) => now += i64::try_from(s).unwrap(),
            Step::Awaiting => unreachable!(),
        }
    }
    shared_container(&mut nodes, "shared", false);
    let in_ae_sa = psk("direct@mef.sp.example");
    let in_ae = register(&mut nodes[IN].cse, &in_ae_sa, None);
    let mn = link("cse-mn");
    for from in [
        in_ae.clone(),               // an AE registered directly at the IN-CSE
        format!("/cse-in/{in_ae}"),  // ... in SP-relative form
        "/cse-in".to_string(),       // the IN-CSE's own CSE-ID
        "/cse-mn2".to_string(),      // another MN-CSE's CSE-ID
        "/cse-mn2/Cdev".to_string(), // an AE of another MN-CSE
    ] {
        let r = send(
            &mut nodes,
            IN,
            &mn,
            create(
                "/cse-in/cb/shared",
                Some(&from),
                4,
                json!({"m2m:cin": {"con": "x"}}),
            ),
        );
        assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated, "From={from}");
    }
    // The legitimate forward of one of its own AEs.
    let r = send(
        &mut nodes,
        IN,
        &mn,
        create(
            "/cse-in/cb/shared",
            Some("/cse-mn/Cdev"),
            4,
            json!({"m2m:cin": {"con": "x"}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
}

#[test]
fn registering_with_each_other_is_refused() {
    // cse-mn is registered with cse-in; cse-in (misconfigured as an MN with registrar cse-mn)
    // tries to register with cse-mn: OPERATION_NOT_ALLOWED, the machine backs off.
    let mut nodes = registered_pair();
    let mut m = Machine::new(Params {
        cse_id: "/cse-in".parse().unwrap(),
        cb_rn: "cb".into(),
        poa: vec![],
        registrar: "/cse-mn".parse().unwrap(),
        backoff_min_secs: 1,
        backoff_max_secs: 60,
    });
    let Step::Send(r) = m.poll(NOW) else { panic!() };
    let resp = send(&mut nodes, MN, &link("cse-in"), r);
    assert_eq!(resp.rsc, Rsc::OperationNotAllowed, "{:?}", resp.pc);
    m.handle_response(resp, NOW);
    assert!(matches!(m.poll(NOW), Step::Sleep(1)));
}

#[test]
fn routing_loops_are_stopped() {
    // Two MN-CSEs each configured as the other's registrar: a request for an unknown CSE goes
    // from A up to B, which got it from its registrar and does not send it back up.
    let mut nodes = vec![
        node("cse-a", CseType::Mn, Some("/cse-b")),
        node("cse-b", CseType::Mn, Some("/cse-a")),
    ];
    let ae = psk("dev@mef.sp.example");
    let aei = register(&mut nodes[0].cse, &ae, None);
    let r = send(
        &mut nodes,
        0,
        &ae,
        req(Operation::Retrieve, "/cse-x/cb", Some(&aei)),
    );
    assert_eq!(r.rsc, Rsc::NotFound, "{:?}", r.pc);
    assert_eq!(r.fr.as_deref(), Some("/cse-b"));
    // Three MN-CSEs in a registration cycle, A under B under C under A (each one's CREATE
    // <remoteCSE> accepted: no single CSE sees the cycle), and D registered under A.
    let mut nodes = vec![
        node("cse-a", CseType::Mn, Some("/cse-b")),
        node("cse-b", CseType::Mn, Some("/cse-c")),
        node("cse-c", CseType::Mn, Some("/cse-a")),
    ];
    for (at, below) in [(1, "cse-a"), (2, "cse-b"), (0, "cse-c"), (0, "cse-d")] {
        register_cse(&mut nodes[at].cse, &link(below), &format!("/{below}"));
    }
    // An AE of A: back at A, its From is an AE registered at A arriving from C (4106).
    let aei = register(&mut nodes[0].cse, &ae, None);
    let r = send(
        &mut nodes,
        0,
        &ae,
        req(Operation::Retrieve, "/cse-x/cb", Some(&aei)),
    );
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated, "{:?}", r.pc);
    // D forwarding for D itself: back at A, From is another registree's CSE-ID (4106).
    let d = link("cse-d");
    let r = send(
        &mut nodes,
        0,
        &d,
        req(Operation::Retrieve, "/cse-x/cb", Some("/cse-d")),
    );
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated, "{:?}", r.pc);
    // D forwarding for an S-type AE known to none of them: only the in-flight set at A
    // recognises the request coming back.
    let r = send(
        &mut nodes,
        0,
        &d,
        req(Operation::Retrieve, "/cse-x/cb", Some("/Sfar")),
    );
    assert_eq!(r.rsc, Rsc::TargetNotReachable, "{:?}", r.pc);
    assert_eq!(r.fr.as_deref(), Some("/cse-a"));
    let dbg = r.pc.as_ref().unwrap()["m2m:dbg"].as_str().unwrap();
    assert!(dbg.contains("already being forwarded"), "{dbg}");
    // Nothing stays in flight anywhere.
    for n in &nodes {
        assert_eq!(n.cse.forwards_pending(), 0, "{}", n.stem);
    }
}

#[test]
fn unreachable_next_hop_is_target_not_reachable() {
    let mut nodes = registered_pair();
    let ae = psk("dev@mef.sp.example");
    let aei = register(&mut nodes[MN].cse, &ae, None);
    let Dispatch::Forward(f) = nodes[MN]
        .cse
        .dispatch(&ae, req(Operation::Retrieve, "/cse-in/cb", Some(&aei)))
    else {
        panic!("not forwarded")
    };
    assert_eq!((f.deadline, f.timeout_secs), (NOW + 30, 30));
    let r = nodes[MN]
        .cse
        .forward_ended(&f, Err("connection refused".into()));
    assert_eq!(r.rsc, Rsc::TargetNotReachable);
    assert_eq!(r.rqi, "rq-1");
    assert_eq!(r.to.as_deref(), Some(format!("/cse-mn/{aei}").as_str()));
    // The in-flight entry ended: the originator may retry the same request.
    assert!(matches!(
        nodes[MN]
            .cse
            .dispatch(&ae, req(Operation::Retrieve, "/cse-in/cb", Some(&aei))),
        Dispatch::Forward(_)
    ));
}

#[test]
fn registrar_refusing_the_retrieve_still_registers() {
    // Another implementation's policy may refuse the (optional) RETRIEVE of its <CSEBase>.
    let mut nodes = pair();
    let mut m = Machine::new(params());
    let mut sent = Vec::new();
    loop {
        match m.poll(NOW) {
            Step::Send(r) => {
                sent.push(r.op);
                let resp = if r.op == Operation::Retrieve {
                    ResponsePrimitive::new(Rsc::OriginatorHasNoPrivilege, r.rqi.clone())
                } else {
                    send(&mut nodes, IN, &link("cse-mn"), r)
                };
                m.handle_response(resp, NOW);
            }
            Step::Store(rec) => {
                assert_eq!(rec.cb, "/cse-in");
                let res = nodes[MN].cse.set_registrar(&rec).map_err(|e| e.detail);
                m.stored(res, NOW);
            }
            Step::Registered => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(sent, [Operation::Create, Operation::Retrieve]);
    assert_eq!(nodes[MN].cse.registrar(), Some("cse-in"));
}

#[test]
fn checks_reregister_when_the_registrar_lost_us() {
    let mut nodes = pair();
    let mut m = Machine::new(params()).with_check_interval(60);
    register_mn(&mut nodes, &mut m, None);
    assert_eq!(m.next_check(NOW), Some(60));
    // Not due yet: nothing to send.
    assert_eq!(m.poll(NOW + 59), Step::Registered);
    // Due while the registrar is down: the registration stands, the next check is later.
    let Step::Send(r) = m.poll(NOW + 60) else {
        panic!("no check")
    };
    assert_eq!(
        (r.op, r.to.as_str()),
        (Operation::Retrieve, "/cse-in/cse-mn")
    );
    m.transport_failed(&"connection refused", NOW + 60);
    assert!(m.is_registered());
    assert_eq!(m.next_check(NOW + 60), Some(60));
    // A check answered OK.
    let Step::Send(r) = m.poll(NOW + 120) else {
        panic!("no check")
    };
    let resp = send(&mut nodes, IN, &link("cse-mn"), r);
    assert_eq!(resp.rsc, Rsc::Ok);
    m.handle_response(resp, NOW + 120);
    assert_eq!(m.poll(NOW + 121), Step::Registered);
    // The registrar loses our <remoteCSE> (here: the MN-CSE's own DELETE of it, as an
    // administrator's de-registration or a lost store would): the next check re-registers.
    let r = send(
        &mut nodes,
        IN,
        &link("cse-mn"),
        req(Operation::Delete, "cb/cse-mn", Some("/cse-mn")),
    );
    assert_eq!(r.rsc, Rsc::Deleted);
    assert!(nodes[IN].cse.routes().unwrap().registrees.is_empty());
    let Step::Send(r) = m.poll(NOW + 180) else {
        panic!("no check")
    };
    let resp = send(&mut nodes, IN, &link("cse-mn"), r);
    assert_eq!(resp.rsc, Rsc::NotFound);
    m.handle_response(resp, NOW + 180);
    assert!(!m.is_registered());
    register_mn_at(&mut nodes, &mut m, None, NOW + 180);
    assert_registered(&mut nodes);
}
