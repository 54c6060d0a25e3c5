//! Warnings: routes an earlier one shadows, policies nobody uses.

use super::*;

impl Compiler<'_> {
    /// Warns about routes that an earlier route always matches first.
    pub(super) fn lint_shadowed(&mut self, routes: &[Route]) {
        for (j, later) in routes.iter().enumerate() {
            if let Some(earlier) = routes[..j]
                .iter()
                .find(|e| covers_host(&e.host, &later.host) && covers_path(&e.path, &later.path))
            {
                let path = YamlPath::root().key("routes").index(j);
                self.warn(&path, format!("route {:?} is never used: route {:?} before it matches every request it would", later.name, earlier.name), "move it above the broader route, or narrow the broader one");
            }
        }
    }

    /// Warns about policies that no route, `default_cors` or bridge names.
    pub(super) fn lint_unused_policies(
        &mut self,
        policies: &BTreeMap<String, Arc<CorsPolicy>>,
        used: &HashSet<String>,
    ) {
        let root = YamlPath::root();
        let unused: Vec<String> = policies
            .keys()
            .filter(|n| !used.contains(*n) && !self.fallbacks.contains(*n))
            .cloned()
            .collect();
        for name in &unused {
            self.warn(
                &root.key("cors_policies").key(name),
                format!("policy {name:?} is not used by any route"),
                "name it in a route's cors:, or remove it",
            );
        }
    }
}

/// Whether every host `b` matches is matched by `a`.
fn covers_host(a: &HostMatch, b: &HostMatch) -> bool {
    match (a, b) {
        (HostMatch::Any, _) => true,
        (HostMatch::Exact(x), HostMatch::Exact(y)) => x == y,
        (HostMatch::Suffix(s), HostMatch::Exact(h)) => h.len() > s.len() && h.ends_with(s.as_str()),
        (HostMatch::Suffix(s), HostMatch::Suffix(t)) => t.ends_with(s.as_str()),
        _ => false,
    }
}

/// Whether every path `b` matches is matched by `a`. A regex is covered by a prefix when
/// every path it matches starts with its literal beginning, and that starts with the prefix
/// (`/api/v[0-9]+` after `/api/`); other regexes are not compared.
fn covers_path(a: &PathMatch, b: &PathMatch) -> bool {
    match (a, b) {
        (PathMatch::Prefix(p), PathMatch::Prefix(q))
        | (PathMatch::Prefix(p), PathMatch::Exact(q)) => q.starts_with(p.as_str()),
        (PathMatch::Exact(p), PathMatch::Exact(q)) => p == q,
        (PathMatch::Prefix(p), PathMatch::Regex(r)) => {
            literal_start(r.as_str()).is_some_and(|lit| lit.starts_with(p.as_str()))
        }
        _ => false,
    }
}

/// The text every match of a route regex (as compiled: `^(?:pattern)$`) begins with: its
/// characters up to the first one with a meaning in a regex, less the last when a quantifier
/// makes it optional. None with an alternation anywhere (its branches may begin otherwise).
fn literal_start(anchored: &str) -> Option<String> {
    let pattern = anchored.strip_prefix("^(?:")?.strip_suffix(")$")?;
    if pattern.contains('|') {
        return None;
    }
    let mut lit: String = pattern
        .chars()
        .take_while(|c| !"\\.+*?()[]{}^$".contains(*c))
        .collect();
    if matches!(pattern[lit.len()..].chars().next(), Some('?' | '*' | '{')) {
        lit.pop();
    }
    Some(lit)
}

#[cfg(test)]
mod tests {
    use super::literal_start;

    #[test]
    fn a_regex_begins_with_its_literal_characters_only() {
        let lit = |p: &str| literal_start(&format!("^(?:{p})$"));
        assert_eq!(lit("/api/v[0-9]+").as_deref(), Some("/api/v"));
        assert_eq!(lit("/api/x?").as_deref(), Some("/api/"));
        assert_eq!(lit("/api/x*y").as_deref(), Some("/api/"));
        assert_eq!(lit("/api\\.v1").as_deref(), Some("/api"));
        assert_eq!(lit("(?i)/api/").as_deref(), Some(""));
        assert_eq!(lit("/api/x|/other"), None);
    }
}
