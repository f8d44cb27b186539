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
    /// New headers (request or response, by hook).
    pub headers: Option<HeaderEdits>,
    /// New response status (response hooks).
    pub status: Option<u16>,
    /// Replacement response body (response hooks).
    pub body: Option<Vec<u8>>,
    /// Where to send this request instead of the behavior's origin (the `cloudfront` module's
    /// origin helpers, viewer-request only).
    pub origin: Option<crate::origin_choice::OriginChoice>,
}

/// How a function changed the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdits {
    /// The whole new list: a header it does not name is removed. Lambda@Edge hands its headers
    /// back whole, each under the name's own case.
    Whole(HeaderList),
    /// Only what changed: each name in `set` gets exactly the values listed for it there (a
    /// name's values are next to each other, in order), each name in `removed` goes, and every
    /// other header stays as it is, bytes and all. A CloudFront Function returns every header
    /// it was given; the worker compares them with what it gave (which it has grouped by name
    /// already), so neither thread copies the unchanged ones and the proxy thread touches only
    /// the few that changed. Callgrind, the viewer-request rewrite, against a whole list
    /// compared on the proxy thread: 3.2k instructions a request less there, 4.1k less on the
    /// worker.
    Changes {
        /// Names with their new values (lower-case names).
        set: HeaderList,
        /// Names removed (lower-case).
        removed: Vec<String>,
    },
}

impl HeaderEdits {
    /// The values `name` ends up with where this edit names it: `Some(values)` (empty when it
    /// is removed), or `None` where the edit leaves it as it was (and for a `Whole` list
    /// without it, empty: the name is gone). For tests, which check what an outcome does to one
    /// header; the proxy applies them whole.
    #[cfg(test)]
    pub(crate) fn values_of(&self, name: &str) -> Option<Vec<&[u8]>> {
        fn of<'a>(list: &'a [(String, Vec<u8>)], name: &str) -> Vec<&'a [u8]> {
            list.iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_slice())
                .collect()
        }
        match self {
            HeaderEdits::Whole(list) => Some(of(list, name)),
            HeaderEdits::Changes { set, removed } => {
                if removed.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                    return Some(Vec::new());
                }
                let values = of(set, name);
                (!values.is_empty()).then_some(values)
            }
        }
    }

    /// The headers `original` becomes with these edits (a changed name moves to the end).
    #[cfg(test)]
    pub(crate) fn applied_to(&self, original: &[(String, Vec<u8>)]) -> HeaderList {
        match self {
            HeaderEdits::Whole(list) => list.clone(),
            HeaderEdits::Changes { set, removed } => {
                let named = |name: &str| {
                    removed
                        .iter()
                        .chain(set.iter().map(|(n, _)| n))
                        .any(|n| n == name)
                };
                let kept = original.iter().filter(|(n, _)| !named(n)).cloned();
                kept.chain(set.iter().cloned()).collect()
            }
        }
    }

    /// The first value `name` ends up with where this edit names it (see [`Self::values_of`]).
    #[cfg(test)]
    pub(crate) fn value_of(&self, name: &str) -> Option<&[u8]> {
        self.values_of(name).and_then(|v| v.first().copied())
    }
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
