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

/// The regex literals of a JavaScript source, found by a small scanner that skips strings,
/// template literals and comments and tells a regex from a division by what precedes it.
pub fn regex_literals(source: &str) -> Vec<String> {
    let chars: Vec<char> = source.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    // The last significant character, and whether it ended an identifier or keyword.
    let mut prev: Option<char> = None;
    let mut prev_word = String::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                prev = Some(c);
                prev_word.clear();
            }
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
                continue;
            }
            '/' => {
                let regex_position = match prev {
                    None => true,
                    Some(p) if p.is_alphanumeric() || p == '_' || p == '$' => matches!(
                        prev_word.as_str(),
                        "return"
                            | "typeof"
                            | "case"
                            | "do"
                            | "else"
                            | "in"
                            | "of"
                            | "new"
                            | "delete"
                            | "void"
                            | "throw"
                            | "yield"
                            | "await"
                    ),
                    Some(p) => !matches!(p, ')' | ']' | '}' | '"' | '\'' | '`'),
                };
                if regex_position {
                    let start = i + 1;
                    let mut j = start;
                    let mut in_class = false;
                    while j < chars.len() && chars[j] != '\n' {
                        match chars[j] {
                            '\\' => j += 1,
                            '[' => in_class = true,
                            ']' => in_class = false,
                            '/' if !in_class => break,
                            _ => {}
                        }
                        j += 1;
                    }
                    if j < chars.len() && chars[j] == '/' {
                        found.push(chars[start..j].iter().collect());
                        i = j;
                    }
                }
                prev = Some('/');
                prev_word.clear();
            }
            c if c.is_whitespace() => {}
            c => {
                if c.is_alphanumeric() || c == '_' || c == '$' {
                    if !prev.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '$') {
                        prev_word.clear();
                    }
                    prev_word.push(c);
                } else {
                    prev_word.clear();
                }
                prev = Some(c);
            }
        }
        i += 1;
    }
    found
}

/// The first catastrophic regex literal in a source, as a load error.
pub fn check_source(source: &str) -> Result<(), String> {
    for literal in regex_literals(source) {
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
    fn regex_literals_are_found_and_divisions_are_not() {
        let src = r#"
            var a = b / c / d;
            var r = /(a+)+b/.test(x);
            if (/^\/api\//.test(uri)) { return x.replace(/-/g, '+'); }
            var s = "not /a regex/ here"; // nor /this/
            /* nor /this/ */ var t = (n) / 2;
            return /[/]+/;
        "#;
        assert_eq!(
            regex_literals(src),
            vec!["(a+)+b", "^\\/api\\/", "-", "[/]+"]
        );
        assert!(check_source(src).unwrap_err().contains("(a+)+b"));
        assert!(check_source("var x = s.replace(/_/g, '/');").is_ok());
    }
}
