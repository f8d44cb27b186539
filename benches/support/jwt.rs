//! The JWT check every bench runs (the load bench's rows and the per-invocation counts), and
//! the secret its tokens are signed with.

/// HS256 with the `crypto` module, the claims through `Buffer` and `JSON.parse`;
/// `SECRET_VALUE` stands for [`JWT_SECRET`].
pub const JWT_CHECK: &str = include_str!("jwt-check.js");
/// The secret the JWT check's tokens are signed with.
pub const JWT_SECRET: &str = "verge-bench-secret";
