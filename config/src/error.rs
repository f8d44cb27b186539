//! Configuration errors: every one names the file, the line and column, and the field path.
//!
//! The one-line form `FILE:LINE:COL: field.path: message` is what `verge validate` prints and what
//! a failed reload logs, so editors and CI annotations can jump straight to the culprit.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in the configuration source, 1-based, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, starting at 1.
    pub line: usize,
    /// Column in characters, starting at 1.
    pub col: usize,
}

impl Pos {
    /// The start of a file, for errors that concern the whole file.
    pub const START: Pos = Pos { line: 1, col: 1 };
}

/// Converts byte offsets of a source text into line and column positions.
#[derive(Debug, Clone)]
pub struct SourceMap {
    line_starts: Vec<usize>,
    text: String,
}

impl SourceMap {
    /// Index a source text.
    pub fn new(text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap {
            line_starts,
            text: text.to_owned(),
        }
    }

    /// The line and column of a byte offset (clamped to the text).
    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line.saturating_sub(1)];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        Pos { line, col }
    }
}

/// One configuration error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file the error was found in.
    pub file: PathBuf,
    /// Where in that file.
    pub pos: Pos,
    /// The dotted field path, e.g. `behaviors[2].origin`.
    pub path: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl ConfigError {
    /// An error at a position of a file.
    pub fn new(file: &Path, pos: Pos, path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_owned(),
            pos,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.pos.line,
            self.pos.col,
            if self.path.is_empty() {
                "(file)"
            } else {
                &self.path
            },
            self.message
        )
    }
}

/// All errors found in one configuration, in source order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A single error.
    pub fn one(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let map = SourceMap::new("ab\nçd\n\nx");
        assert_eq!(map.pos(0), Pos { line: 1, col: 1 });
        assert_eq!(map.pos(3), Pos { line: 2, col: 1 });
        // 'ç' is two bytes but one column.
        assert_eq!(map.pos(5), Pos { line: 2, col: 2 });
        assert_eq!(map.pos(8), Pos { line: 4, col: 1 });
        assert_eq!(map.pos(1000), Pos { line: 4, col: 2 });
    }

    #[test]
    fn display_is_file_line_col_path_message() {
        let e = ConfigError::new(
            Path::new("v.toml"),
            Pos { line: 3, col: 7 },
            "origins.app.url",
            "bad",
        );
        assert_eq!(e.to_string(), "v.toml:3:7: origins.app.url: bad");
    }
}
