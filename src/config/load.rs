//! Reading the file: its text, then serde's [`FileConfig`], with errors located in the text.

use std::path::{Path, PathBuf};

use super::{error, locate, yaml, ConfigError, FileConfig, YamlPath};

/// The loaded file: its path and text (for error locations) and what it says.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub source: String,
    pub config: FileConfig,
}

impl Loaded {
    /// An error at `path` in this file, with its line and column looked up.
    pub fn error_at(&self, path: &YamlPath, message: String, fix: String) -> ConfigError {
        let location = locate::locate(&self.source, path.segments());
        ConfigError::new(&self.path, location, path.to_string(), message, fix)
    }
}

/// Reads and parses a config file. Semantic checks happen in [`crate::rules::compile`].
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            path,
            None,
            String::new(),
            format!("cannot read the config file: {e}"),
            "check the path given with --config".into(),
        )
    })?;
    let config = parse_yaml(path, &source)?;
    Ok(Loaded {
        path: path.to_path_buf(),
        source,
        config,
    })
}

/// Parses YAML text; `path` only names the file in errors.
pub fn parse_yaml(path: &Path, source: &str) -> Result<FileConfig, ConfigError> {
    let de = yaml::Deserializer::from_str(source);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let yaml_path = e.path().to_string();
        let inner = e.into_inner();
        let location = inner.location().map(|l| (l.line(), l.column()));
        error::from_serde(path, location, yaml_path, inner.to_string())
    })
}
