//! The config's identity, so that ops can see that every replica runs the same config: the
//! `crossgate_config_info{hash="…"}` gauge, the `config hash:` line of `crossgate check` and
//! the `config reloaded` log line all show it.
//!
//! It is a hash of the YAML document as data, not as text. The file is parsed into a YAML
//! value (anchors and aliases expanded) and written out in one canonical form: mapping keys
//! sorted, strings JSON-escaped, no comments, no whitespace, no quoting or flow/block style.
//! The first 64 bits of that text's SHA-256 are the hash, as 16 hex digits. So reformatting,
//! comments, key order, quoting and anchors leave it alone; any changed value, key or list
//! order (route order matters) changes it.
//!
//! Why not the compiled rules, which is what runs? They hold what DNS answered at load
//! (replicas behind different resolvers may differ, and names are meant to be re-resolved)
//! and state such as server health, and their only generic rendering is `Debug`, whose derived
//! format Rust documents as unstable across compiler versions: two builds of one release
//! could disagree. `Debug` of the typed file would add that every new config key changes every
//! config's hash in the next release. The YAML value of a file is the same whichever crossgate
//! reads it, so a rolling upgrade does not look like drift.
//!
//! What it does not see through: spellings that compile alike (`1m` and `60s`, `any` and
//! `"*"`, `listen: a` and `listen: [a]`, a default written out and one left out) hash
//! differently. That errs toward "these differ", never toward "these are the same". The
//! certificate files that `tls` names are not part of it: a renewed certificate is not a
//! config change. Not a security measure: 64 bits tell configs apart, they do not resist a
//! forger.

use std::fmt::Write;

use super::yaml;

/// The hash of a config file's text (see the module comment); 16 lowercase hex digits.
pub fn semantic_hash(source: &str) -> String {
    let canonical = match yaml::from_str::<yaml::Value>(source) {
        Ok(value) => {
            let mut out = String::new();
            canonical(&value, &mut out);
            out
        }
        // Unreachable for a file that compiled (the same parser read it); the text itself is
        // still an identity.
        Err(_) => format!("unparsed:{source}"),
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .fold(String::with_capacity(16), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Appends the canonical form of `v` to `out`.
fn canonical(v: &yaml::Value, out: &mut String) {
    use yaml::Value;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => out.push_str(&serde_json::Value::from(s.as_str()).to_string()),
        Value::Sequence(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::Mapping(map) => {
            let mut entries: Vec<(String, String)> = map
                .iter()
                .map(|(k, v)| {
                    let (mut key, mut value) = (String::new(), String::new());
                    canonical(k, &mut key);
                    canonical(v, &mut value);
                    (key, value)
                })
                .collect();
            entries.sort();
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(k);
                out.push(':');
                out.push_str(v);
            }
            out.push('}');
        }
        Value::Tagged(t) => {
            let _ = write!(out, "{} ", t.tag);
            canonical(&t.value, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
listen: 127.0.0.1:8080
upstreams:
  legacy: {servers: ["127.0.0.1:9001"], read_timeout: 30s}
cors_policies:
  app: {allow_origins: [http://localhost:3000], allow_methods: [GET, PUT]}
  ops: {allow_origins: [http://localhost:3000], allow_methods: [GET, PUT]}
routes:
  - {name: api, path: /api/, upstream: legacy, cors: app}
  - {name: rest, upstream: legacy}
"#;

    #[test]
    fn the_hash_is_16_hex_digits_and_the_same_for_the_same_text() {
        let h = semantic_hash(CONFIG);
        assert_eq!(h.len(), 16);
        assert!(h
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(semantic_hash(CONFIG), h);
    }

    #[test]
    fn comments_whitespace_key_order_quoting_style_and_anchors_do_not_change_the_hash() {
        let reformatted = r#"# The same config, written differently.
routes:
  - name: "api"        # quoted
    upstream: legacy
    cors: app
    path: '/api/'
  - upstream: legacy
    name: rest
cors_policies:
  app: &same
    allow_methods:
      - GET
      - PUT
    allow_origins: ["http://localhost:3000"]
  ops: *same

upstreams:
  legacy:
    read_timeout: 30s
    servers:
      - 127.0.0.1:9001
listen: "127.0.0.1:8080"
"#;
        assert_eq!(semantic_hash(reformatted), semantic_hash(CONFIG));
    }

    #[test]
    fn a_changed_value_key_or_route_order_changes_the_hash() {
        let base = semantic_hash(CONFIG);
        for changed in [
            CONFIG.replace("30s", "31s"),
            CONFIG.replace("GET, PUT", "PUT, GET"),
            CONFIG.replace("localhost:3000", "localhost:3001"),
            CONFIG.replace("read_timeout", "write_timeout"),
            CONFIG.replace(
                "  - {name: api, path: /api/, upstream: legacy, cors: app}\n  - {name: rest, upstream: legacy}",
                "  - {name: rest, upstream: legacy}\n  - {name: api, path: /api/, upstream: legacy, cors: app}",
            ),
        ] {
            assert_ne!(changed, CONFIG);
            assert_ne!(semantic_hash(&changed), base, "{changed}");
        }
    }

    #[test]
    fn strings_and_numbers_do_not_collide_in_the_canonical_form() {
        let mut a = String::new();
        canonical(&yaml::from_str("{k: '1'}").unwrap(), &mut a);
        let mut b = String::new();
        canonical(&yaml::from_str("{k: 1}").unwrap(), &mut b);
        assert_eq!(a, r#"{"k":"1"}"#);
        assert_eq!(b, r#"{"k":1}"#);
    }
}
