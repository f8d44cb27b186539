//! A small JavaScript scanner for load-time checks that need tokens, not a full parse: it skips
//! strings, template literals and comments, tells a regex literal from a division by what
//! precedes it, and keeps the line and column of each word. Used for the regex guard and for
//! the `cloudfront-js-1.0` language rules (no `const`, `let` or `async`).

/// One significant token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An identifier or keyword.
    Word {
        /// The word.
        text: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        col: usize,
    },
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

/// The tokens of `source`.
pub fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let (mut line, mut line_start) = (1, 0);
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
                out.push(Token::Str);
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
                let regex_position = match out.last() {
                    None => true,
                    Some(Token::Word { text, .. }) => matches!(
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
                        out.push(Token::Regex(chars[i..j].iter().collect()));
                        i = j + 1;
                        continue;
                    }
                }
                out.push(Token::Punct('/'));
            }
            c if c.is_whitespace() => i += 1,
            c if is_word_char(c) => {
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                advance_lines(line_start, start, &mut line, &mut line_start);
                out.push(Token::Word {
                    text: chars[start..i].iter().collect(),
                    line,
                    col: start - line_start + 1,
                });
            }
            c => {
                out.push(Token::Punct(c));
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
    let tokens = tokens(source);
    for (k, token) in tokens.iter().enumerate() {
        let Token::Word { text, line, col } = token else {
            continue;
        };
        let after_dot = k > 0 && tokens[k - 1] == Token::Punct('.');
        let next = tokens.get(k + 1);
        let used_as_name = after_dot || matches!(next, Some(Token::Punct(':')));
        if used_as_name {
            continue;
        }
        let starts_declaration = matches!(next, Some(Token::Word { .. }))
            || matches!(next, Some(Token::Punct('[' | '{')));
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
