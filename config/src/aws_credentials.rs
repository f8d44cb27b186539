//! AWS credentials for the S3 origins whose requests verge signs: from a shared-credentials
//! file (the `~/.aws/credentials` format), or from the process environment as the AWS tools
//! read it (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
//!
//! The file is INI: `[profile]` sections of `key = value` lines, `#` and `;` comments. Only the
//! three keys a signature needs are read; others (`region`, `output`, …) are ignored, as the
//! AWS tools ignore what they do not use.

use std::fmt;

/// An access key and its secret (and session token, for temporary credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// `aws_access_key_id`.
    pub access_key_id: String,
    /// `aws_secret_access_key`.
    pub secret_access_key: String,
    /// `aws_session_token`, sent as `x-amz-security-token`.
    pub session_token: Option<String>,
}

/// The secret never reaches a log line or an error message.
impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The credentials of `profile` in the shared-credentials `text`, or what is wrong with them
/// (naming lines and keys, never values).
pub fn parse_profile(text: &str, profile: &str) -> Result<AwsCredentials, String> {
    let mut in_profile = false;
    let mut seen = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            let name = section
                .strip_suffix(']')
                .ok_or_else(|| format!("line {}: a section header must end with `]`", number + 1))?
                .trim();
            in_profile = name == profile;
            seen |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected `key = value`", number + 1))?;
        let value = value.trim().to_owned();
        match key.trim() {
            "aws_access_key_id" => id = Some(value),
            "aws_secret_access_key" => secret = Some(value),
            "aws_session_token" => token = Some(value),
            _ => {}
        }
    }
    if !seen {
        return Err(format!("no profile `[{profile}]`"));
    }
    let required = |value: Option<String>, key: &str| {
        value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("profile `[{profile}]` has no {key}"))
    };
    Ok(AwsCredentials {
        access_key_id: required(id, "aws_access_key_id")?,
        secret_access_key: required(secret, "aws_secret_access_key")?,
        session_token: token.filter(|t| !t.is_empty()),
    })
}

/// The credentials the environment gives, `var` reading one variable (unset or empty: `None`).
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<AwsCredentials, String> {
    let get = |name: &str| var(name).filter(|v| !v.is_empty());
    let required = |name: &str| get(name).ok_or_else(|| format!("{name} is not set"));
    Ok(AwsCredentials {
        access_key_id: required("AWS_ACCESS_KEY_ID")?,
        secret_access_key: required("AWS_SECRET_ACCESS_KEY")?,
        session_token: get("AWS_SESSION_TOKEN"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_gives_the_keys_and_an_optional_token() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let c = from_env(env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]))
        .unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token),
            ("AKIDENV", None)
        );
        let c = from_env(env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "t"),
        ]))
        .unwrap();
        assert_eq!(c.session_token.as_deref(), Some("t"));
        assert_eq!(
            from_env(env(&[("AWS_ACCESS_KEY_ID", "AKIDENV")])).unwrap_err(),
            "AWS_SECRET_ACCESS_KEY is not set"
        );
        assert_eq!(
            from_env(env(&[
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", "s")
            ]))
            .unwrap_err(),
            "AWS_ACCESS_KEY_ID is not set"
        );
    }

    const FILE: &str = "# verge's signer\n[default]\naws_access_key_id = AKIDDEFAULT\n\
        aws_secret_access_key = secret/default+key\n\n[assets]\n; temporary\n\
        aws_access_key_id=AKIDASSETS\naws_secret_access_key=s2\naws_session_token = tok==\n\
        region = eu-west-1\n";

    #[test]
    fn a_profile_gives_its_keys_and_token() {
        let d = parse_profile(FILE, "default").unwrap();
        assert_eq!(
            (d.access_key_id.as_str(), d.secret_access_key.as_str()),
            ("AKIDDEFAULT", "secret/default+key")
        );
        assert_eq!(d.session_token, None);
        let a = parse_profile(FILE, "assets").unwrap();
        assert_eq!(a.access_key_id, "AKIDASSETS");
        assert_eq!(a.session_token.as_deref(), Some("tok=="));
    }

    #[test]
    fn what_is_missing_or_malformed_is_named_and_the_secret_never_shown() {
        assert_eq!(
            parse_profile(FILE, "other").unwrap_err(),
            "no profile `[other]`"
        );
        assert_eq!(
            parse_profile("[p]\naws_access_key_id = A\n", "p").unwrap_err(),
            "profile `[p]` has no aws_secret_access_key"
        );
        assert_eq!(
            parse_profile("[p\n", "p").unwrap_err(),
            "line 1: a section header must end with `]`"
        );
        assert_eq!(
            parse_profile("[p]\naws_access_key_id A\n", "p").unwrap_err(),
            "line 2: expected `key = value`"
        );
        let shown = format!("{:?}", parse_profile(FILE, "assets").unwrap());
        assert!(!shown.contains("s2") && !shown.contains("tok=="), "{shown}");
        assert!(shown.contains("AKIDASSETS"), "{shown}");
    }
}
