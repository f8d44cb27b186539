//! Before any timing: every system answers the fixed request the same way (status, the headers
//! its work adds, the origin's body), and the JWT rows refuse a missing, badly signed or
//! expired token with 401. A misconfigured or short-circuiting system cannot win.

use crate::BoxError;
use crate::client::{fixed_headers, get, jwt};
use crate::systems::{BODY, JWT_SECRET, System, Work};

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
