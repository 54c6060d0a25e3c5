//! Kubernetes objects read from manifest files: documents, `kind: List`, and typed access to
//! fields with errors that name the file, line, object and field path.

use std::path::Path;

use crate::config::marked::{Node, Value};
use crate::config::ConfigError;

/// One Kubernetes object of the input.
pub struct Object<'a> {
    pub file: &'a Path,
    pub node: &'a Node,
    pub kind: &'a str,
    pub api_version: &'a str,
    pub name: &'a str,
    pub namespace: String,
}

/// A node and its path inside the object, such as `spec.rules[0].host`.
#[derive(Clone)]
pub struct At<'a> {
    pub node: &'a Node,
    pub path: String,
}

impl<'a> At<'a> {
    fn key_path(&self, key: &str) -> String {
        let plain = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        match (self.path.is_empty(), plain) {
            (true, true) => key.to_owned(),
            (false, true) => format!("{}.{key}", self.path),
            (_, false) => format!("{}[{key:?}]", self.path),
        }
    }
}

/// Objects of every document, `kind: List` (and `IngressList`, `HTTPRouteList`...) expanded.
pub fn objects<'a>(
    file: &'a Path,
    docs: &'a [Node],
    namespace: &str,
) -> Result<Vec<Object<'a>>, ConfigError> {
    let mut out = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        if doc.value == Value::Null {
            continue;
        }
        collect(
            file,
            doc,
            &format!("document {}", i + 1),
            namespace,
            &mut out,
        )?;
    }
    Ok(out)
}

fn collect<'a>(
    file: &'a Path,
    node: &'a Node,
    what: &str,
    namespace: &str,
    out: &mut Vec<Object<'a>>,
) -> Result<(), ConfigError> {
    let not_object = |message: String| {
        ConfigError::new(
            file,
            Some((node.line, node.col)),
            String::new(),
            message,
            "give Kubernetes manifests (apiVersion, kind, metadata, spec), as `kubectl get ingress,httproute -A -o yaml` prints them".into(),
        )
    };
    if !matches!(node.value, Value::Map(_)) {
        return Err(not_object(format!(
            "{what} is not a Kubernetes object (a map with apiVersion and kind)"
        )));
    }
    let text = |key: &str| node.get(key).and_then(Node::as_str);
    let Some(kind) = text("kind") else {
        return Err(not_object(format!("{what} has no `kind`")));
    };
    let api_version = text("apiVersion").unwrap_or("");
    if kind == "List" || (kind.ends_with("List") && node.get("items").is_some()) {
        let Some(Node {
            value: Value::Seq(items),
            ..
        }) = node.get("items")
        else {
            return Ok(());
        };
        for (i, item) in items.iter().enumerate() {
            collect(file, item, &format!("{what}, items[{i}]"), namespace, out)?;
        }
        return Ok(());
    }
    let meta = node.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Node::as_str);
    let Some(name) = name else {
        return Err(not_object(format!("{what} ({kind}) has no metadata.name")));
    };
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Node::as_str)
        .unwrap_or(namespace)
        .to_owned();
    out.push(Object {
        file,
        node,
        kind,
        api_version,
        name,
        namespace,
    });
    Ok(())
}

impl<'a> Object<'a> {
    /// `Ingress default/web`.
    pub fn label(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    /// `file.yaml:12 Ingress default/web`, where a report line points.
    pub fn place(&self, node: &Node) -> String {
        format!("{}:{} {}", self.file.display(), node.line, self.label())
    }

    /// `file.yaml:12`, where a comment of the config points.
    pub fn loc(&self, node: &Node) -> String {
        format!("{}:{}", self.file.display(), node.line)
    }

    pub fn root(&self) -> At<'a> {
        At {
            node: self.node,
            path: String::new(),
        }
    }

    pub fn err(&self, at: &At, message: String, fix: impl Into<String>) -> ConfigError {
        let path = if at.path.is_empty() {
            self.label()
        } else {
            format!("{} of {}", at.path, self.label())
        };
        ConfigError::new(
            self.file,
            Some((at.node.line, at.node.col)),
            path,
            message,
            fix.into(),
        )
    }

    fn wrong_type(&self, at: &At, expected: &str) -> ConfigError {
        let found = match &at.node.value {
            Value::Null => "nothing",
            Value::Scalar(_) => "a single value",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        };
        self.err(
            at,
            format!("expected {expected}, found {found}"),
            format!(
                "write {expected} here, as the API reference of {} shows",
                self.kind
            ),
        )
    }

    /// The value at `key` of the map `at` (`None` when absent or null).
    pub fn get(&self, at: &At<'a>, key: &str) -> Result<Option<At<'a>>, ConfigError> {
        match &at.node.value {
            Value::Null => Ok(None),
            Value::Map(entries) => Ok(entries
                .iter()
                .find(|e| e.key == key)
                .filter(|e| e.value.value != Value::Null)
                .map(|e| At {
                    node: &e.value,
                    path: at.key_path(key),
                })),
            _ => Err(self.wrong_type(at, "a map (key: value)")),
        }
    }

    /// The value at `key`, which must be there.
    pub fn need(&self, at: &At<'a>, key: &str) -> Result<At<'a>, ConfigError> {
        self.get(at, key)?.ok_or_else(|| {
            let path = at.key_path(key);
            self.err(
                at,
                format!("missing `{path}`"),
                format!("add `{key}:` here (the API server requires it)"),
            )
        })
    }

    /// The map's entries, in order.
    pub fn entries(&self, at: &At<'a>) -> Result<Vec<(&'a str, At<'a>)>, ConfigError> {
        match &at.node.value {
            Value::Null => Ok(Vec::new()),
            Value::Map(entries) => Ok(entries
                .iter()
                .map(|e| {
                    (
                        e.key.as_str(),
                        At {
                            node: &e.value,
                            path: at.key_path(&e.key),
                        },
                    )
                })
                .collect()),
            _ => Err(self.wrong_type(at, "a map (key: value)")),
        }
    }

    /// The items of the list `at` (a null is an empty list).
    pub fn list(&self, at: &At<'a>) -> Result<Vec<At<'a>>, ConfigError> {
        match &at.node.value {
            Value::Null => Ok(Vec::new()),
            Value::Seq(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, node)| At {
                    node,
                    path: format!("{}[{i}]", at.path),
                })
                .collect()),
            _ => Err(self.wrong_type(at, "a list (- item lines)")),
        }
    }

    pub fn str(&self, at: &At<'a>) -> Result<&'a str, ConfigError> {
        match &at.node.value {
            Value::Scalar(s) => Ok(s),
            _ => Err(self.wrong_type(at, "a single value")),
        }
    }

    /// The string at `key`, if there.
    pub fn opt_str(
        &self,
        at: &At<'a>,
        key: &str,
    ) -> Result<Option<(At<'a>, &'a str)>, ConfigError> {
        match self.get(at, key)? {
            None => Ok(None),
            Some(v) => {
                let s = self.str(&v)?;
                Ok(Some((v, s)))
            }
        }
    }

    /// A port number (1 to 65535).
    pub fn port(&self, at: &At<'a>) -> Result<u16, ConfigError> {
        let s = self.str(at)?;
        s.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            self.err(
                at,
                format!("invalid port {s:?}"),
                "give a port number from 1 to 65535",
            )
        })
    }

    /// Refuses keys other than `known` in the map `at`, naming the closest one: a typo in a
    /// CORS filter would otherwise drop a setting without a word.
    pub fn known_keys(&self, at: &At<'a>, known: &[&str]) -> Result<(), ConfigError> {
        let Value::Map(entries) = &at.node.value else {
            return Ok(());
        };
        if let Some(e) = entries.iter().find(|e| !known.contains(&e.key.as_str())) {
            let key = e.key.as_str();
            let close = known
                .iter()
                .map(|k| (strsim::jaro_winkler(key, k), *k))
                .filter(|(s, _)| *s > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let (message, fix) = match close {
                Some((_, k)) => (
                    format!("unknown field `{key}`; did you mean `{k}`?"),
                    format!("rename it to `{k}` (fields here: {})", known.join(", ")),
                ),
                None => (
                    format!("unknown field `{key}`"),
                    format!("remove it (fields here: {})", known.join(", ")),
                ),
            };
            return Err(ConfigError::new(
                self.file,
                Some((e.key_line, e.key_col)),
                format!("{} of {}", at.key_path(key), self.label()),
                message,
                fix,
            ));
        }
        Ok(())
    }
}
