//! A small JavaScript scanner for load-time checks that need tokens, not a full parse: it skips
//! strings, template literals and comments, tells a regex literal from a division by what
//! precedes it, and keeps the line and column of each token. Used for the regex guard, for
//! the `cloudfront-js-1.0` language rules (no `const`, `let` or `async`), and for the 2.0
//! constructs reported to fail on CloudFront ([`runtime2_field_risks`]).

/// One significant token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An identifier or keyword (its position is its [`Located`]'s).
    Word(String),
    /// A regex literal's pattern (between the slashes).
    Regex(String),
    /// A string or template literal (its text is not kept).
    Str,
    /// Any other character.
    Punct(char),
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// A token with the 1-based line and column (in characters) where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The token.
    pub token: Token,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
}

/// The tokens of `source`.
pub fn tokens(source: &str) -> Vec<Token> {
    located_tokens(source)
        .into_iter()
        .map(|l| l.token)
        .collect()
}

/// The tokens of `source`, each with its position.
pub fn located_tokens(source: &str) -> Vec<Located> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let (mut line, mut line_start, mut scanned) = (1, 0, 0);
    let advance_lines = |from: usize, to: usize, line: &mut usize, line_start: &mut usize| {
        for (k, c) in chars
            .iter()
            .enumerate()
            .take(to.min(chars.len()))
            .skip(from)
        {
            if *c == '\n' {
                *line += 1;
                *line_start = k + 1;
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        // Lines are counted from where the last token's count stopped: each character once.
        advance_lines(scanned, start, &mut line, &mut line_start);
        scanned = start;
        let col = start - line_start + 1;
        macro_rules! push {
            ($token:expr) => {
                out.push(Located {
                    token: $token,
                    line,
                    col,
                })
            };
        }
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                push!(Token::Str);
            }
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            '/' => {
                let regex_position = match out.last().map(|l| &l.token) {
                    None => true,
                    Some(Token::Word(text)) => matches!(
                        text.as_str(),
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
                    Some(Token::Str | Token::Regex(_)) => false,
                    Some(Token::Punct(p)) => !matches!(p, ')' | ']' | '}'),
                };
                i += 1;
                if regex_position {
                    let mut j = i;
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
                        push!(Token::Regex(chars[i..j].iter().collect()));
                        i = j + 1;
                        continue;
                    }
                }
                push!(Token::Punct('/'));
            }
            c if c.is_whitespace() => i += 1,
            c if is_word_char(c) => {
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                push!(Token::Word(chars[start..i].iter().collect()));
            }
            c => {
                push!(Token::Punct(c));
                i += 1;
            }
        }
    }
    out
}

/// The regex literals of a source.
pub fn regex_literals(source: &str) -> Vec<String> {
    tokens(source)
        .into_iter()
        .filter_map(|t| match t {
            Token::Regex(pattern) => Some(pattern),
            _ => None,
        })
        .collect()
}

/// The first construct `cloudfront-js-1.0` does not have (`const`, `let`, `async`), as a load
/// error naming its line and column. Property names (`x.async`, `{let: 1}`) are not refused.
pub fn runtime1_refusal(source: &str) -> Option<String> {
    let located = located_tokens(source);
    let tokens: Vec<&Token> = located.iter().map(|l| &l.token).collect();
    for (k, Located { token, line, col }) in located.iter().enumerate() {
        let Token::Word(text) = token else {
            continue;
        };
        let after_dot = k > 0 && *tokens[k - 1] == Token::Punct('.');
        let next = tokens.get(k + 1).copied();
        let used_as_name = after_dot || matches!(next, Some(Token::Punct(':')));
        if used_as_name {
            continue;
        }
        let starts_declaration =
            matches!(next, Some(Token::Word(_))) || matches!(next, Some(Token::Punct('[' | '{')));
        let refused = match text.as_str() {
            "const" => true,
            "let" => starts_declaration,
            "async" => starts_declaration || matches!(next, Some(Token::Punct('('))),
            _ => false,
        };
        if refused {
            return Some(format!(
                "line {line}, column {col}: `{text}` is not supported by the cloudfront-js-1.0 \
                 runtime (use `var` and synchronous functions, or runtime cloudfront-js-2.0)"
            ));
        }
    }
    None
}

/// A construct of a `cloudfront-js-2.0` function that the language has and verge runs, but that
/// was reported to fail on CloudFront's own 2.0 runtime (spec §1.4: optional chaining and array
/// destructuring each gave `FunctionExecutionError` in live tests). Not refused, since what
/// AWS runs is not settled; said at load so the user hears of it before production does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRisk {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// What was found and why it matters.
    pub what: &'static str,
}

const OPTIONAL_CHAINING: &str = "optional chaining (`?.`) was reported to fail on CloudFront's \
    cloudfront-js-2.0 runtime (FunctionExecutionError in live tests); verge runs it";
const ARRAY_DESTRUCTURING: &str = "array destructuring was reported to fail on CloudFront's \
    cloudfront-js-2.0 runtime (FunctionExecutionError in live tests); verge runs it";

/// The [`FieldRisk`]s of a 2.0 source, in source order: `?.` (not `cond ?.5 : x`), and array
/// patterns in declarations (`var|let|const [`), in parameter lists (`function f([a])`,
/// `([a]) =>`) and in assignment statements (`[a, b] = [b, a];`).
pub fn runtime2_field_risks(source: &str) -> Vec<FieldRisk> {
    let t = located_tokens(source);
    let punct = |k: usize, c: char| matches!(t.get(k), Some(Located { token: Token::Punct(p), .. }) if *p == c);
    let word = |k: usize, w: &str| matches!(t.get(k), Some(Located { token: Token::Word(text), .. }) if text == w);
    // Whether the token at `k` starts right after the one before it (no space between).
    let adjacent = |k: usize| {
        k > 0
            && t.get(k)
                .is_some_and(|b| t[k - 1].line == b.line && t[k - 1].col + 1 == b.col)
    };
    // The index of the bracket that closes the one opened at `open`.
    let closing = |open: usize, (o, c): (char, char)| {
        let mut depth = 0usize;
        for k in open..t.len() {
            if punct(k, o) {
                depth += 1;
            } else if punct(k, c) {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
        }
        None
    };
    // The unclosed `(` before `k` at the same depth, if any.
    let enclosing_paren = |k: usize| {
        let mut depth = 0usize;
        for j in (0..k).rev() {
            match &t[j].token {
                Token::Punct(')' | ']' | '}') => depth += 1,
                Token::Punct('(') if depth == 0 => return Some(j),
                Token::Punct('(' | '[' | '{') if depth == 0 => return None,
                Token::Punct('(' | '[' | '{') => depth -= 1,
                _ => {}
            }
        }
        None
    };
    let mut risks = Vec::new();
    for k in 0..t.len() {
        let at = |what| FieldRisk {
            line: t[k].line,
            col: t[k].col,
            what,
        };
        if punct(k, '?') && punct(k + 1, '.') && adjacent(k + 1) {
            let decimal = matches!(&t.get(k + 2), Some(Located { token: Token::Word(text), .. })
                if adjacent(k + 2) && text.starts_with(|c: char| c.is_ascii_digit()));
            if !decimal {
                risks.push(at(OPTIONAL_CHAINING));
            }
            continue;
        }
        if !punct(k, '[') {
            continue;
        }
        let declared = k > 0 && (word(k - 1, "var") || word(k - 1, "let") || word(k - 1, "const"));
        let parameter = k > 0
            && (punct(k - 1, '(') || punct(k - 1, ','))
            && enclosing_paren(k).is_some_and(|open| {
                let is_function = word(open.wrapping_sub(1), "function")
                    || (open >= 2 && word(open - 2, "function"));
                let is_arrow = closing(open, ('(', ')')).is_some_and(|close| {
                    punct(close + 1, '=') && punct(close + 2, '>') && adjacent(close + 2)
                });
                is_function || is_arrow
            });
        let statement_start = k == 0 || punct(k - 1, ';') || punct(k - 1, '{') || punct(k - 1, '}');
        let assigned = statement_start
            && closing(k, ('[', ']')).is_some_and(|close| {
                punct(close + 1, '=')
                    && !(adjacent(close + 2) && (punct(close + 2, '=') || punct(close + 2, '>')))
            });
        if declared || parameter || assigned {
            risks.push(at(ARRAY_DESTRUCTURING));
        }
    }
    risks
}

/// Log each [`FieldRisk`] of function `name`'s 2.0 `source` (read from `file`) as a warning
/// naming `FILE:LINE:COL`.
pub fn warn_field_risks(name: &str, file: &std::path::Path, source: &str) {
    for risk in runtime2_field_risks(source) {
        tracing::warn!(
            function = %name,
            "{}:{}:{}: {}",
            file.display(),
            risk.line,
            risk.col,
            risk.what
        );
    }
}

/// Whether a source is an ES module: a line that starts with an `import` declaration
/// (`import x from '…'`, `import { x } from '…'`, `import '…'`) or with `export`. Both tiers load
/// such a file as a module.
pub fn is_module(source: &str) -> bool {
    source.lines().map(str::trim_start).any(|l| {
        l.starts_with("import{")
            || (l.starts_with("import ")
                && (l.contains(" from ") || l.contains('\'') || l.contains('"')))
            || l.starts_with("export ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn runtime2_field_risks_find_optional_chaining_and_array_patterns() {
        let found = |src: &str| {
            runtime2_field_risks(src)
                .into_iter()
                .map(|r| (r.line, r.col, r.what == OPTIONAL_CHAINING))
                .collect::<Vec<_>>()
        };
        let src = "function handler(event) {\n  var ua = event.request.headers['user-agent']?.value;\n  \
                   var [a, b] = ua.split('/');\n  [a, b] = [b, a];\n  \
                   var f = function ([x]) { return x; }, g = ([y], z) => y;\n  \
                   for (const [k, v] of []) {}\n  return event.request;\n}";
        assert_eq!(
            found(src),
            vec![
                (2, 47, true),
                (3, 7, false),
                (4, 3, false),
                (5, 21, false),
                (5, 46, false),
                (6, 14, false),
            ]
        );
        // What is not such a construct: a conditional with a decimal, array literals and
        // index reads, comparisons, `? .` with a space, strings and comments.
        for ok in [
            "var n = flag ?.5 : 1;",
            "var a = [1, 2]; a[0] = 3; f([1], [2]); var b = [a] == [a]; x = y ? [1] : [2];",
            "var s = '?. [a] = b'; // x?.y\n/* var [a] = b */ var t = `${'?.'}`;",
            "var u = c ? .5 : 1; if (x) { [1, 2].forEach(g); }",
            "var f = (a, b) => [a, b]; function g(a) { return [a]; }",
        ] {
            assert_eq!(found(ok), vec![], "{ok}");
        }
    }

    #[test]
    fn runtime1_refuses_const_let_and_async_where_they_are_syntax() {
        let refused = |src: &str| runtime1_refusal(src).unwrap_or_default();
        assert!(
            refused("function handler(e) {\n  const x = 1;\n}")
                .starts_with("line 2, column 3: `const`")
        );
        assert!(refused("var a = 1;\nlet b = 2;").contains("line 2, column 1: `let`"));
        assert!(refused("let [a, b] = [1, 2];").contains("`let`"));
        assert!(refused("async function handler(e) { return e.request; }").contains("`async`"));
        assert!(refused("var f = async (x) => x;").contains("`async`"));
        assert!(refused("var f = async x => x;").contains("`async`"));
        for ok in [
            "function handler(e) { var x = e.request; return x; }",
            "var o = { async: true, let: 1, const: 2 }; o.async = o.let;",
            "var s = 'const let async function'; // const x\n/* let y */",
            "var letter = 1, constant = 2, asyncish = 3;",
        ] {
            assert_eq!(runtime1_refusal(ok), None, "{ok}");
        }
    }
}
