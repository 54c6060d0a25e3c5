//! Config errors that say what is wrong, where (file, line, column, YAML path) and how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};

/// One step of a YAML path: a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A path into the YAML document, shown as `routes[2].cors.allow_origins[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YamlPath(Vec<PathSeg>);

impl YamlPath {
    pub fn root() -> Self {
        YamlPath(Vec::new())
    }
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Key(k.to_owned()));
        p
    }
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Index(i));
        p
    }
    pub fn segments(&self) -> &[PathSeg] {
        &self.0
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A config that cannot be used, and why.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Line and column, both counted from 1.
    pub location: Option<(usize, usize)>,
    /// The YAML path of the bad node; empty for the whole file.
    pub path: String,
    /// What is wrong, naming the bad value.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl ConfigError {
    pub fn new(
        file: &Path,
        location: Option<(usize, usize)>,
        path: String,
        message: String,
        fix: String,
    ) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            location,
            path,
            message,
            fix,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": at {}", self.path)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

/// Turns a serde/YAML error into a [`ConfigError`], with a "did you mean" for unknown keys.
pub(super) fn from_serde(
    file: &Path,
    location: Option<(usize, usize)>,
    path: String,
    raw: String,
) -> ConfigError {
    // serde_yaml appends " at line L column C"; the location is reported separately.
    let message = match raw.rfind(" at line ") {
        Some(i) => raw[..i].to_owned(),
        None => raw,
    };
    // serde_yaml also prefixes its own path (`routes[0].cors: unknown field ...`).
    let message = match message.split_once(": ") {
        Some((prefix, rest)) if !prefix.contains(' ') && !prefix.is_empty() => rest.to_owned(),
        _ => message,
    };
    let path = if path == "." { String::new() } else { path };
    let (message, fix) = explain(&message);
    ConfigError::new(file, location, path, message, fix)
}

fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

fn explain(message: &str) -> (String, String) {
    for (prefix, what) in [("unknown field ", "key"), ("unknown variant ", "value")] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let names = backticked(rest);
            let Some((bad, expected)) = names.split_first() else {
                break;
            };
            let suggestion = expected
                .iter()
                .map(|e| (strsim::jaro_winkler(bad, e), e))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, e)| *e);
            let list = expected.join(", ");
            let msg = match suggestion {
                Some(s) => format!("unknown {what} `{bad}`; did you mean `{s}`?"),
                None => format!("unknown {what} `{bad}`"),
            };
            let fix = match (suggestion, what) {
                (Some(s), _) => format!("rename `{bad}` to `{s}` (valid {what}s here: {list})"),
                (None, "key") if expected.is_empty() => format!("remove `{bad}`"),
                (None, _) => format!("use one of: {list}"),
            };
            return (msg, fix);
        }
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        let field = backticked(rest).first().copied().unwrap_or(rest);
        return (
            format!("missing key `{field}`"),
            format!("add `{field}:` here (see config.example.yaml)"),
        );
    }
    if message.starts_with("invalid type") {
        return (
            message.to_owned(),
            "give a value of the expected type (see config.example.yaml)".into(),
        );
    }
    (message.to_owned(), String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_displays_like_the_yaml() {
        let p = YamlPath::root()
            .key("routes")
            .index(2)
            .key("cors")
            .key("allow_origins")
            .index(0);
        assert_eq!(p.to_string(), "routes[2].cors.allow_origins[0]");
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let (msg, fix) =
            explain("unknown field `allow_orgins`, expected one of `allow_origins`, `max_age`");
        assert_eq!(
            msg,
            "unknown key `allow_orgins`; did you mean `allow_origins`?"
        );
        assert!(
            fix.starts_with("rename `allow_orgins` to `allow_origins`"),
            "{fix}"
        );
    }

    #[test]
    fn unknown_variant_lists_the_choices() {
        let (msg, fix) = explain("unknown variant `xml`, expected `text` or `json`");
        assert_eq!(msg, "unknown value `xml`");
        assert_eq!(fix, "use one of: text, json");
    }
}
