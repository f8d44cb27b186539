//! The work behind each pingora phase, one module per step of a request's life. `service.rs`
//! maps phases to these in a few lines each.
//!
//! | phase (pingora)            | stage                      |
//! |----------------------------|----------------------------|
//! | `early_request_filter`     | [`viewer_request::prepare_connection`] |
//! | `request_filter`           | [`viewer_request::run`] → [`function::viewer_request`] |
//! | `upstream_peer`            | [`origin_select::peer`] → [`origin_function::origin_request`] |
//! | `fail_to_connect`          | [`origin_select::on_connect_error`] |
//! | `error_while_proxy`        | [`origin_select::on_proxy_error`] |
//! | `upstream_request_filter`  | [`origin_request::prepare`] |
//! | `request_body_filter`      | [`crate::request_body::HeldBody::filter`] (include-body only) |
//! | `upstream_response_filter` | [`origin_response::on_header`] → [`origin_function::origin_response`] |
//! | `response_filter`          | [`viewer_response::on_header`] (a [`custom_error`] page: [`custom_error::finish`]) |
//! | `fail_to_proxy`            | [`respond::fail`]          |
//! | `logging`                  | [`log::finish`]            |
//!
//! A future is as large as the largest step it awaits, and pingora boxes every phase's future
//! for every request: with a function call inline (its invocation and the pool's futures,
//! ~3 KB), each of four phases allocated and copied that much per request whether or not a
//! function ran. So the steps most requests skip (function calls, error pages) are awaited
//! through `Box::pin`, paid for only when they run.

pub mod custom_error;
pub mod function;
pub mod log;
pub mod origin_function;
pub mod origin_request;
pub mod origin_response;
pub mod origin_select;
pub mod respond;
pub mod viewer_request;
pub mod viewer_response;

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async function returns, without calling it: `$arg` names one
    /// type parameter per argument.
    macro_rules! future_size {
        ($f:path, $($arg:ident),+) => {{
            fn size<$($arg),+, Fut>(_: impl Fn($($arg),+) -> Fut) -> usize {
                std::mem::size_of::<Fut>()
            }
            (stringify!($f), size($f))
        }};
    }

    #[test]
    fn the_futures_every_request_allocates_stay_small() {
        // With a function call awaited inline each phase's future was 2.7–3 KB. Boxed, they
        // hold a pointer to it: under 256 bytes; `peer` also holds the origin's name
        // resolution, and a function call holds the pools' futures (~2.1 KB) through a box.
        let sizes = [
            (future_size!(viewer_request::run, A, B, C), 256),
            (future_size!(viewer_response::on_header, A, B, C, D), 256),
            (future_size!(origin_response::on_header, A, B, C, D), 256),
            (future_size!(origin_select::peer, A, B, C), 640),
            (future_size!(function::invoke, A, B, C, D), 512),
        ];
        for ((step, size), most) in sizes {
            assert!(
                size <= most,
                "{step}: a {size}-byte future (at most {most})"
            );
        }
    }
}
