//! Sizes in the config: `1048576` (bytes), `"512k"`, `"10m"`, `"1g"` (binary units, as nginx's
//! `client_max_body_size`), `0` for no limit where a setting says so.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A size in bytes as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// Parses `512`, `512k`, `10m`, `1g` (any case).
pub fn parse(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 1048576, 512k, 10m or 1g")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("a size cannot be negative, found {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse(v).map(Size).ok_or_else(|| {
                    E::custom(format!(
                        "invalid size {v:?}: write a whole number of bytes, or one with a unit, such as 512k, 10m or 1g"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bytes_and_binary_units() {
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("1048576"), Some(1 << 20));
        assert_eq!(parse("512k"), Some(512 * 1024));
        assert_eq!(parse("10m"), Some(10 << 20));
        assert_eq!(parse("10M"), Some(10 << 20));
        assert_eq!(parse("1g"), Some(1 << 30));
        assert_eq!(parse("2MiB"), Some(2 << 20));
    }

    #[test]
    fn refuses_unknown_units_fractions_signs_and_overflow() {
        for bad in [
            "10x",
            "m",
            "-1",
            "1.5m",
            "",
            "99999999999999999999g",
            "17179869184g",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
