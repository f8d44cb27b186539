//! Refusing regular expressions that can backtrack catastrophically. boa's regex engine has no
//! step limit and nothing interrupts it, so `/(a+)+b/` on a string of `a`s runs for seconds.
//! Patterns with a quantified group that itself contains a quantifier (nested quantifiers) are
//! refused: at load for regex literals in the source, at run time for `new RegExp(…)`.

/// Why a pattern is refused, or `None` when it is accepted.
pub fn nested_quantifier(pattern: &str) -> Option<String> {
    let chars: Vec<char> = pattern.chars().collect();
    // For each open group: whether something inside it is quantified.
    let mut groups: Vec<bool> = Vec::new();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                i += 2;
                // An escaped atom followed by a quantifier marks the enclosing group.
                if is_quantifier(&chars, i)
                    && let Some(top) = groups.last_mut()
                {
                    *top = true;
                }
                continue;
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => {
                in_class = false;
                if is_quantifier(&chars, i + 1)
                    && let Some(top) = groups.last_mut()
                {
                    *top = true;
                }
            }
            _ if in_class => {}
            '(' => groups.push(false),
            ')' => {
                let inner_quantified = groups.pop().unwrap_or(false);
                let quantified = is_unbounded_quantifier(&chars, i + 1);
                if inner_quantified && quantified {
                    return Some(format!(
                        "the regular expression /{pattern}/ has a quantified group that contains a quantifier (catastrophic backtracking)"
                    ));
                }
                if (inner_quantified || is_quantifier(&chars, i + 1))
                    && let Some(top) = groups.last_mut()
                {
                    *top = true;
                }
            }
            '+' | '*' | '{' | '?' => {
                if (c != '?' && c != '{' || c == '{' && is_quantifier(&chars, i))
                    && let Some(top) = groups.last_mut()
                {
                    *top = true;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `+`, `*`, `?` or `{n…}` at `i`.
fn is_quantifier(chars: &[char], i: usize) -> bool {
    match chars.get(i) {
        Some('+' | '*' | '?') => true,
        Some('{') => chars[i + 1..]
            .iter()
            .take_while(|c| **c != '}')
            .all(|c| c.is_ascii_digit() || *c == ','),
        _ => false,
    }
}

/// A quantifier that repeats more than once: `+`, `*`, or `{n,}` / `{n,m}` with m > 1.
fn is_unbounded_quantifier(chars: &[char], i: usize) -> bool {
    match chars.get(i) {
        Some('+' | '*') => true,
        Some('{') if is_quantifier(chars, i) => {
            let body: String = chars[i + 1..].iter().take_while(|c| **c != '}').collect();
            match body.split_once(',') {
                Some((_, "")) => true,
                Some((_, max)) => max.parse::<u64>().map_or(true, |m| m > 1),
                None => body.parse::<u64>().map_or(true, |n| n > 1),
            }
        }
        _ => false,
    }
}

/// The first catastrophic regex literal in a source, as a load error.
pub fn check_source(source: &str) -> Result<(), String> {
    for literal in crate::source_scan::regex_literals(source) {
        if let Some(why) = nested_quantifier(&literal) {
            return Err(why);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_quantifiers_are_refused_and_ordinary_patterns_pass() {
        for bad in [
            "(a+)+b",
            "(a*)*",
            "(\\w+)*$",
            "(x+x+)+y",
            "((ab)+)+",
            "(a{2,})*",
            "([a-z]+)+",
        ] {
            assert!(nested_quantifier(bad).is_some(), "{bad}");
        }
        for ok in [
            "^/api/(v1|v2)/",
            "(ab)+",
            "a+b*",
            "^[a-z0-9-]+\\.example\\.com$",
            "(\\d{3})-(\\d{4})",
            "(a+)?",
            "[(+)]+",
            "(a+){1}",
            "^Bearer ([A-Za-z0-9._-]+)$",
        ] {
            assert_eq!(nested_quantifier(ok), None, "{ok}");
        }
    }

    #[test]
    fn catastrophic_literals_are_refused_at_load() {
        let src = "var a = b / c; var r = /(a+)+b/.test(x); return x.replace(/-/g, '+');";
        assert!(check_source(src).unwrap_err().contains("(a+)+b"));
        assert!(check_source("var x = s.replace(/_/g, '/');").is_ok());
    }
}
