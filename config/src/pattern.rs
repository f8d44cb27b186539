//! CloudFront path patterns: `*` matches any run of characters (including `/`), `?` exactly one,
//! everything else itself, case-sensitively. A leading `/` is optional, as on CloudFront.

use std::fmt;

/// The longest pattern CloudFront accepts.
pub const MAX_PATTERN_LEN: usize = 255;

/// A validated path pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: String,
    /// The pattern as matched: always starting with `/` unless it starts with a wildcard.
    normalized: Vec<u8>,
}

impl PathPattern {
    /// Validate a pattern as written in the configuration.
    pub fn parse(source: &str) -> Result<Self, String> {
        if source.is_empty() {
            return Err("the path pattern is empty; use \"*\" for the default behavior".into());
        }
        if source.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "the path pattern is {} characters long; CloudFront allows {MAX_PATTERN_LEN}",
                source.len()
            ));
        }
        if let Some(c) = source.chars().find(|&c| !is_pattern_char(c)) {
            return Err(format!("`{c}` is not allowed in a path pattern"));
        }
        let normalized = if source.starts_with(['/', '*', '?']) {
            source.as_bytes().to_vec()
        } else {
            let mut v = Vec::with_capacity(source.len() + 1);
            v.push(b'/');
            v.extend_from_slice(source.as_bytes());
            v
        };
        Ok(PathPattern {
            source: source.to_owned(),
            normalized,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether this is the catch-all default pattern.
    pub fn is_default(&self) -> bool {
        self.normalized.iter().all(|&b| b == b'*')
    }

    /// Whether a request path (without its query string) matches.
    pub fn matches(&self, path: &str) -> bool {
        glob_match(&self.normalized, path.as_bytes())
    }
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathPattern({:?})", self.source)
    }
}

/// The characters CloudFront accepts in a path pattern.
fn is_pattern_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '_' | '-' | '.' | '*' | '?' | '$' | '/' | '~' | '"' | '\'' | '@' | ':' | '+' | '&'
        )
}

/// Iterative glob matching with single-star backtracking: linear in practice, O(n·m) at worst,
/// never recursive, so no pattern or path can blow the stack.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        PathPattern::parse(pattern).unwrap().matches(path)
    }

    #[test]
    fn star_matches_any_run_including_slashes() {
        assert!(m("*", "/"));
        assert!(m("*", "/a/b/c"));
        assert!(m("/api/*", "/api/"));
        assert!(m("/api/*", "/api/v1/users"));
        assert!(!m("/api/*", "/apix"));
        assert!(m("*.jpg", "/img/a/b.jpg"));
        assert!(!m("*.jpg", "/img/a/b.jpeg"));
        assert!(m("/a*b*c", "/aXXbYYc"));
        assert!(!m("/a*b*c", "/aXXbYY"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(m("/v?/x", "/v1/x"));
        assert!(!m("/v?/x", "/v10/x"));
        assert!(!m("/v?/x", "/v/x"));
    }

    #[test]
    fn matching_is_case_sensitive_and_leading_slash_optional() {
        assert!(!m("/API/*", "/api/x"));
        assert!(m("images/*", "/images/a.png"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(PathPattern::parse("").is_err());
        assert!(PathPattern::parse("/a b").is_err());
        assert!(PathPattern::parse(&"a".repeat(300)).is_err());
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let pattern = PathPattern::parse(&"*a".repeat(60)).unwrap();
        let path = format!("/{}", "a".repeat(59));
        assert!(!pattern.matches(&path));
    }
}
