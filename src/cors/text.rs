//! Values from requests, made safe for one-line messages and logs.

/// An attacker-controlled value, quoted and made safe for a one-line message.
pub fn printable(s: &str) -> String {
    format!("\"{}\"", sanitize(s))
}

/// An attacker-controlled value made safe for a log field: controls and non-ASCII escaped,
/// length bounded.
pub fn sanitize(s: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = s
        .chars()
        .take(MAX)
        .flat_map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                vec![c]
            } else {
                c.escape_default().collect()
            }
        })
        .collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}
