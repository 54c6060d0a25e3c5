//! The YAML shorthands that serde's derives cannot read: a scalar or a list, a path prefix or
//! a matcher map, a policy's name or the policy itself, `any` or a list of origins, an origin or
//! `{regex: ...}`, `mirror` or a list of headers. Their messages say what was expected.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{
    CorsRef, FileAllowHeaders, FileCorsPolicy, FileOrigin, FileOrigins, FilePath, OneOrMany,
};

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<T> {
            One(T),
            Many(Vec<T>),
        }
        Ok(match Either::deserialize(d)? {
            Either::One(t) => OneOrMany(vec![t]),
            Either::Many(v) => OneOrMany(v),
        })
    }
}

impl<'de> Deserialize<'de> for FilePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FilePath;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path prefix such as /api/, or one of {prefix: ...}, {exact: ...}, {regex: ...}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FilePath, E> {
                Ok(FilePath::Prefix(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FilePath, A::Error> {
                let key: String = map
                    .next_key()?
                    .ok_or_else(|| de::Error::custom("empty path map: use {prefix: /api/}"))?;
                let value: String = map.next_value()?;
                let path = match key.as_str() {
                    "prefix" => FilePath::Prefix(value),
                    "exact" => FilePath::Exact(value),
                    "regex" => FilePath::Regex(value),
                    other => {
                        return Err(de::Error::unknown_field(
                            other,
                            &["prefix", "exact", "regex"],
                        ))
                    }
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "a path has one matcher, found a second key `{extra}`: make it a second route"
                    )));
                }
                Ok(path)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for CorsRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CorsRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "the name of a policy in cors_policies, or a policy (a map with allow_origins)",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CorsRef, E> {
                Ok(CorsRef::Named(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CorsRef, A::Error> {
                FileCorsPolicy::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|p| CorsRef::Inline(Box::new(p)))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for FileOrigins {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileOrigins;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`any`, or a list of origins such as [\"https://app.example.com\"]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileOrigins, E> {
                match v {
                    "any" | "*" => Ok(FileOrigins::Any),
                    other => Err(E::custom(format!(
                        "allow_origins must be `any` or a list, found the string {other:?}: write [{other:?}]"
                    ))),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FileOrigins, A::Error> {
                let mut list = Vec::new();
                while let Some(o) = seq.next_element()? {
                    list.push(o);
                }
                Ok(FileOrigins::List(list))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for FileOrigin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileOrigin;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an origin such as \"https://app.example.com\", a wildcard such as \"https://*.example.com\", or {regex: ...}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileOrigin, E> {
                Ok(FileOrigin::Pattern(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileOrigin, A::Error> {
                const KEYS: &[&str] = &["regex", "allow_unescaped_dot"];
                let (mut regex, mut dot) = (None, false);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "regex" => regex = Some(map.next_value()?),
                        "allow_unescaped_dot" => dot = map.next_value()?,
                        other => return Err(de::Error::unknown_field(other, KEYS)),
                    }
                }
                let regex = regex.ok_or_else(|| de::Error::custom("no regex: use {regex: ...}"))?;
                Ok(FileOrigin::Regex(regex, dot))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for FileAllowHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileAllowHeaders;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`mirror` or a list of header names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileAllowHeaders, E> {
                match v {
                    "mirror" => Ok(FileAllowHeaders::Mirror),
                    // The same fix as for `["*"]` (rules::compile::policies).
                    "*" => Err(E::custom(
                        "allow_headers: '*' is not allowed: use `allow_headers: mirror` to allow whatever the browser asks for",
                    )),
                    other => Err(E::custom(format!(
                        "allow_headers must be `mirror` or a list, found the string {other:?}: write [{other:?}]"
                    ))),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<FileAllowHeaders, A::Error> {
                let mut list = Vec::new();
                while let Some(h) = seq.next_element()? {
                    list.push(h);
                }
                Ok(FileAllowHeaders::List(list))
            }
        }
        d.deserialize_any(V)
    }
}
