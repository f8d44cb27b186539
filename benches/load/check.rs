//! Before any timing: every system answers the fixed request the same way (status, the headers
//! its work adds, the origin's body), and the JWT rows refuse a missing, badly signed or
//! expired token with 401. A misconfigured or short-circuiting system cannot win.

use crate::BoxError;
use crate::client::{fixed_headers, get, jwt};
use crate::systems::{BODY, JWT_SECRET, System, Work};

/// How often a system may answer 503 to the fixed request while it finishes starting.
const START_TRIES: u32 = 20;
/// The pause between those tries.
const START_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// Wait until `system` answers the fixed request with anything but 503, at most
/// [`START_TRIES`] times: every system starts at once on shared cores, and a verge whose
/// function workers are still starved of CPU answers 503 (`FunctionThrottledError`: no worker
/// took the invocation in time) to its first request. What it answers then is checked by
/// [`answers_identically`], strictly, as is everything it answers during timing.
pub fn wait_started(system: &System) -> Result<(), BoxError> {
    for tries in 1..=START_TRIES {
        let a = get(system.addr, "/", &fixed_headers())?;
        if a.status != 503 {
            if tries > 1 {
                eprintln!(
                    "bench: {} answered 503 {} time(s) while starting",
                    system.name,
                    tries - 1
                );
            }
            return Ok(());
        }
        std::thread::sleep(START_PAUSE);
    }
    Err(format!(
        "{}: still answering 503 after {START_TRIES} tries over {:?}",
        system.name,
        START_PAUSE * START_TRIES
    )
    .into())
}

/// Check `system`'s answers; `Err` says what differs.
pub fn answers_identically(system: &System) -> Result<(), BoxError> {
    let name = system.name;
    let a = get(system.addr, "/", &fixed_headers())?;
    let fail = |what: String| -> BoxError { format!("{name}: {what}").into() };
    if a.status != 200 {
        return Err(fail(format!("status {} for the fixed request", a.status)));
    }
    if a.body != BODY.as_bytes() {
        return Err(fail(format!(
            "body {:?} is not the origin's",
            String::from_utf8_lossy(&a.body)
        )));
    }
    let rewrite = matches!(system.work, Work::Rewrite | Work::FourHooks);
    let request_rewrite = rewrite || system.work == Work::RequestRewrite;
    let expect = [
        ("x-origin-saw-bucket", request_rewrite.then_some("b")),
        (
            "x-origin-saw-variant",
            request_rewrite.then_some("variant-b"),
        ),
        ("x-ab-bucket", rewrite.then_some("b")),
        (
            "x-origin-saw-sub",
            (system.work == Work::Jwt).then_some("bench-user"),
        ),
        (
            "x-origin-response",
            (system.work == Work::FourHooks).then_some("seen"),
        ),
    ];
    for (header, want) in expect {
        if a.header(header) != want {
            return Err(fail(format!(
                "{header} is {:?}, expected {want:?}",
                a.header(header)
            )));
        }
    }
    if system.work == Work::Jwt {
        let cookie = ("Cookie", "ab=b".to_owned());
        let bad_signature = jwt(r#"{"sub":"bench-user","exp":4102444800}"#, "another secret");
        let expired = jwt(r#"{"sub":"bench-user","exp":1000000000}"#, JWT_SECRET);
        for (case, auth) in [
            ("no token", None),
            ("a bad signature", Some(bad_signature)),
            ("an expired token", Some(expired)),
            ("a malformed token", Some("abc".to_owned())),
        ] {
            let mut headers = vec![cookie.clone()];
            if let Some(token) = auth {
                headers.push(("Authorization", format!("Bearer {token}")));
            }
            let a = get(system.addr, "/", &headers)?;
            if a.status != 401 {
                return Err(fail(format!(
                    "status {} for {case} (401 expected)",
                    a.status
                )));
            }
        }
    }
    Ok(())
}
