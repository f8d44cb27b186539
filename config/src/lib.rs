//! verge-config: verge's TOML configuration, from text to a validated, typed [`Config`].
//!
//! ```no_run
//! let config = verge_config::load(std::path::Path::new("verge.toml"))?;
//! println!("{} behaviors", config.behaviors.len());
//! # Ok::<(), verge_config::ConfigErrors>(())
//! ```
//!
//! Loading is two steps: the text is deserialized into `raw` structs that reject unknown keys, then
//! [`validate`](mod@validate) resolves names, parses durations, reads the files the configuration
//! names (function code, certificates, CA files) and builds the model. Every error carries
//! `FILE:LINE:COL: field.path: message`. This crate knows nothing of pingora or boa.

mod aws_credentials;
mod duration;
mod error;
mod model;
mod pattern;
mod raw;
pub mod validate;

use std::path::{Path, PathBuf};

pub use aws_credentials::AwsCredentials;
pub use duration::parse_duration;
pub use error::{ConfigError, ConfigErrors, Pos, SourceMap};
pub use model::*;
pub use pattern::PathPattern;
pub use validate::defaults;

/// Read and validate a configuration file.
pub fn load(file: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigErrors::one(ConfigError::new(
            file,
            Pos::START,
            "",
            format!("cannot read the configuration: {e}"),
        ))
    })?;
    parse(&text, file)
}

/// Every file the configuration at `file` names, itself included, also when it is not valid:
/// a reload that failed on a missing or broken file it names can then be retried when that file
/// changes. Only `file` when it cannot be read or its text does not parse.
pub fn files_named(file: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return vec![file.to_owned()];
    };
    match toml::from_str::<raw::RawConfig>(&text) {
        Ok(raw) => validate::validate_naming(raw, file, &SourceMap::new(&text)).1,
        Err(_) => vec![file.to_owned()],
    }
}

/// Validate configuration text; `file` names it in errors and anchors relative paths.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let map = SourceMap::new(text);
    let deserializer = toml::Deserializer::new(text);
    let raw: raw::RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = clean_path(&e.path().to_string());
        let inner = e.into_inner();
        let pos = inner.span().map_or(Pos::START, |span| map.pos(span.start));
        ConfigErrors::one(ConfigError::new(file, pos, path, inner.message().trim()))
    })?;
    validate::validate(raw, file, &map)
}

/// serde_path_to_error names `toml::Spanned`'s private fields and uses `.` for the root; keep
/// only the path a person wrote.
fn clean_path(path: &str) -> String {
    let kept: Vec<&str> = path
        .split('.')
        .filter(|seg| !seg.starts_with("$__") && *seg != "?")
        .collect();
    kept.join(".")
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod reference_tests;
