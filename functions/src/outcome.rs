//! What a function hands back: continue with edits, or answer the viewer, or fail with a
//! CloudFront result type.

use crate::invocation::HeaderList;

/// The result of running a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Go on with the (possibly edited) request or response.
    Continue(Edits),
    /// Answer the viewer with this response (`FunctionGeneratedResponse`).
    Respond(GeneratedResponse),
}

/// Changes a function made to what it was given. `None` means unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    /// New request path.
    pub uri: Option<String>,
    /// New raw query string.
    pub querystring: Option<String>,
    /// The full new header list (request or response, by hook).
    pub headers: Option<HeaderList>,
    /// New response status (response hooks).
    pub status: Option<u16>,
    /// Replacement response body (response hooks).
    pub body: Option<Vec<u8>>,
    /// Where to send this request instead of the behavior's origin (the `cloudfront` module's
    /// origin helpers, viewer-request only).
    pub origin: Option<crate::origin_choice::OriginChoice>,
}

/// A response a function generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderList,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Why a function failed, in CloudFront's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FunctionErrorKind {
    /// It threw or rejected (503).
    Execution,
    /// It returned something invalid (502).
    Validation,
    /// Over budget, throttled, timed out or no capacity (503).
    Throttled,
}

/// A failed invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FunctionError {
    /// What kind of failure.
    pub kind: FunctionErrorKind,
    /// For the log line, never for the viewer.
    pub message: String,
    /// Whether the function runs in the edge (Lambda@Edge) tier, which names its result types
    /// differently.
    pub edge: bool,
}

/// CloudFront's result types, as they appear in `x-cache`, logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultType {
    /// Proxied from the origin.
    Miss,
    /// A proxy error (origin unreachable, timeout, bad request).
    Error,
    /// A CloudFront Function generated the response.
    FunctionGeneratedResponse,
    /// A CloudFront Function threw.
    FunctionExecutionError,
    /// A CloudFront Function returned something invalid.
    FunctionValidationError,
    /// A CloudFront Function ran out of budget or was throttled.
    FunctionThrottledError,
    /// A Lambda@Edge handler generated the response.
    LambdaGeneratedResponse,
    /// A Lambda@Edge handler threw or called back with an error.
    LambdaExecutionError,
    /// A Lambda@Edge handler returned something invalid.
    LambdaValidationError,
    /// A Lambda@Edge handler timed out or had no free instance.
    LambdaLimitExceeded,
}

impl ResultType {
    /// The name used in `x-cache`, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultType::Miss => "Miss",
            ResultType::Error => "Error",
            ResultType::FunctionGeneratedResponse => "FunctionGeneratedResponse",
            ResultType::FunctionExecutionError => "FunctionExecutionError",
            ResultType::FunctionValidationError => "FunctionValidationError",
            ResultType::FunctionThrottledError => "FunctionThrottledError",
            ResultType::LambdaGeneratedResponse => "LambdaGeneratedResponse",
            ResultType::LambdaExecutionError => "LambdaExecutionError",
            ResultType::LambdaValidationError => "LambdaValidationError",
            ResultType::LambdaLimitExceeded => "LambdaLimitExceeded",
        }
    }
}

impl FunctionError {
    /// The HTTP status CloudFront answers this failure with.
    pub fn status(&self) -> u16 {
        match self.kind {
            FunctionErrorKind::Validation => 502,
            FunctionErrorKind::Execution | FunctionErrorKind::Throttled => 503,
        }
    }

    /// The result type of this failure.
    pub fn result_type(&self) -> ResultType {
        match (self.kind, self.edge) {
            (FunctionErrorKind::Execution, false) => ResultType::FunctionExecutionError,
            (FunctionErrorKind::Validation, false) => ResultType::FunctionValidationError,
            (FunctionErrorKind::Throttled, false) => ResultType::FunctionThrottledError,
            (FunctionErrorKind::Execution, true) => ResultType::LambdaExecutionError,
            (FunctionErrorKind::Validation, true) => ResultType::LambdaValidationError,
            (FunctionErrorKind::Throttled, true) => ResultType::LambdaLimitExceeded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_cloudfront_statuses_and_result_types() {
        let e = |kind, edge| FunctionError {
            kind,
            message: String::new(),
            edge,
        };
        let v = e(FunctionErrorKind::Validation, false);
        assert_eq!(
            (v.status(), v.result_type().as_str()),
            (502, "FunctionValidationError")
        );
        let x = e(FunctionErrorKind::Execution, true);
        assert_eq!(
            (x.status(), x.result_type().as_str()),
            (503, "LambdaExecutionError")
        );
        let t = e(FunctionErrorKind::Throttled, true);
        assert_eq!(
            (t.status(), t.result_type().as_str()),
            (503, "LambdaLimitExceeded")
        );
    }
}
