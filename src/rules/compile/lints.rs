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

/// Whether every path `b` matches is matched by `a` (regexes are not compared).
fn covers_path(a: &PathMatch, b: &PathMatch) -> bool {
    match (a, b) {
        (PathMatch::Prefix(p), PathMatch::Prefix(q))
        | (PathMatch::Prefix(p), PathMatch::Exact(q)) => q.starts_with(p.as_str()),
        (PathMatch::Exact(p), PathMatch::Exact(q)) => p == q,
        _ => false,
    }
}
