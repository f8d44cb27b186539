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
//! | `response_filter`          | [`viewer_response::on_header`] |
//! | `fail_to_proxy`            | [`respond::fail`]          |
//! | `logging`                  | [`log::finish`]            |

pub mod function;
pub mod log;
pub mod origin_function;
pub mod origin_request;
pub mod origin_response;
pub mod origin_select;
pub mod respond;
pub mod viewer_request;
pub mod viewer_response;
