//! Helpers for tests, benches and fuzz targets (the `test-util` feature): one way to turn a
//! YAML text into compiled rules instead of a copy in each.

use std::path::Path;

use crate::config::{parse_yaml, ConfigError, Loaded};
use crate::rules::{compile, Rules};

/// Parses and compiles `yaml` as if it were the file `test.yaml`.
pub fn try_rules_from_yaml(yaml: &str) -> Result<Rules, ConfigError> {
    let path = Path::new("test.yaml");
    let config = parse_yaml(path, yaml)?;
    compile(&Loaded {
        path: path.into(),
        source: yaml.to_owned(),
        config,
    })
}

/// [`try_rules_from_yaml`], panicking with the config error (for tests).
pub fn rules_from_yaml(yaml: &str) -> Rules {
    try_rules_from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"))
}
