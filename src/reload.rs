//! Hot reload: compile the file again and swap the rules in one atomic store. Requests in
//! flight keep the snapshot they started with (each holds its own `Arc<Rules>`); a file that
//! does not compile is logged with the same error `check` prints, counted, and the old rules
//! stay live. Triggered by SIGHUP and by changes to the file: its directory is watched, so an
//! editor's or a Kubernetes ConfigMap's atomic rename (a new `..data` symlink) is seen too.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::config;
use crate::metrics::Metrics;
use crate::rules::{self, Rules};

/// Everything a reload needs; cheap to share between the signal and watcher threads.
pub struct Reloader {
    pub path: PathBuf,
    pub rules: Arc<ArcSwap<Rules>>,
    pub metrics: Arc<Metrics>,
    /// The HTTPS listeners' certificates, by address.
    pub certs: Arc<Vec<(std::net::SocketAddr, Arc<crate::tls::SwappableCert>)>>,
    /// The hash of the text last compiled, so that one change seen twice reloads once.
    last: Mutex<u64>,
}

/// The config text and the certificates it names: a renewed certificate is a change too.
fn fingerprint(source: &str, tls_listeners: &[crate::rules::TlsListener]) -> u64 {
    let mut h = DefaultHasher::new();
    source.hash(&mut h);
    for l in tls_listeners {
        for c in &l.cert.cert {
            c.as_ref().hash(&mut h);
        }
    }
    h.finish()
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Reloaded,
    Unchanged,
    Failed,
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        rules: Arc<ArcSwap<Rules>>,
        metrics: Arc<Metrics>,
        certs: Arc<Vec<(std::net::SocketAddr, Arc<crate::tls::SwappableCert>)>>,
    ) -> Reloader {
        let last = std::fs::read_to_string(&path)
            .map(|t| fingerprint(&t, &rules.load().tls_listeners))
            .unwrap_or(0);
        Reloader {
            path,
            rules,
            metrics,
            certs,
            last: Mutex::new(last),
        }
    }

    /// Compiles the file and swaps it in. `force` reloads even an unchanged text (SIGHUP).
    pub fn reload(&self, force: bool) -> Outcome {
        let mut last = self.last.lock();
        let loaded = match config::load(&self.path) {
            Ok(l) => l,
            Err(e) => return self.failed(&e.to_string()),
        };
        let new = match rules::compile(&loaded) {
            Ok(r) => r,
            Err(e) => {
                let h = fingerprint(&loaded.source, &[]);
                if !force && h == *last {
                    return Outcome::Unchanged;
                }
                *last = h;
                return self.failed(&e.to_string());
            }
        };
        let h = fingerprint(&loaded.source, &new.tls_listeners);
        if !force && h == *last {
            return Outcome::Unchanged;
        }
        *last = h;
        for w in &new.warnings {
            tracing::warn!("config warning: {w}");
        }
        let old = self.rules.load();
        for u in &new.upstreams {
            if let Some(o) = old.upstreams.iter().find(|o| o.name == u.name) {
                u.inherit_health(o);
            }
        }
        for what in needs_restart(&old, &new) {
            tracing::warn!("config reload: {what} changed; this takes effect only after a restart (or an upgrade with --upgrade)");
        }
        // Certificates of the listeners that exist: new handshakes use the new ones.
        for l in &new.tls_listeners {
            if let Some((_, resolver)) = self.certs.iter().find(|(a, _)| *a == l.addr) {
                resolver.store(l.cert.clone());
            }
        }
        let (routes, hash) = (new.routes.len(), new.config_hash.clone());
        self.rules.store(Arc::new(new));
        self.metrics.reloaded(true);
        // Logged once it is true: whoever reads this line and then scrapes sees the new hash.
        tracing::info!(config = %self.path.display(), routes, config_hash = %hash, "config reloaded");
        Outcome::Reloaded
    }

    fn failed(&self, error: &str) -> Outcome {
        self.metrics.reloaded(false);
        let live = self.rules.load().config_hash.clone();
        tracing::error!(
            "config reload failed, the previous rules (config hash {live}) stay live:\n{error}"
        );
        Outcome::Failed
    }

    /// Watches the file's directory and reloads on changes, on a thread of its own. The
    /// watcher lives as long as the returned value.
    pub fn watch(self: &Arc<Self>) -> notify::Result<notify::RecommendedWatcher> {
        use notify::{RecursiveMode, Watcher};
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok() {
                    let _ = tx.send(());
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        // Certificates are often renewed in a directory of their own.
        let mut dirs = vec![dir];
        for l in &self.rules.load().tls_listeners {
            for f in [&l.cert_path, &l.key_path] {
                if let Some(d) = f
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty() && !dirs.contains(&d.to_path_buf()))
                {
                    dirs.push(d.to_path_buf());
                    watcher.watch(d, RecursiveMode::NonRecursive)?;
                }
            }
        }
        let me = self.clone();
        std::thread::Builder::new()
            .name("config-watch".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    // Let a burst of events (write, rename, chmod) settle, then look once.
                    while rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
                    me.reload(false);
                }
            })
            .map_err(|e| notify::Error::generic(&e.to_string()))?;
        Ok(watcher)
    }
}

/// What changed between two configs that takes effect only after a restart.
fn needs_restart(old: &Rules, new: &Rules) -> Vec<&'static str> {
    old.start_settings().changes(&new.start_settings())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::rules_from_yaml as compile_str;

    #[test]
    fn settings_read_at_start_are_named_when_they_change() {
        let base =
            "upstreams:\n  b: {servers: [127.0.0.1:9]}\nroutes:\n  - {name: r, upstream: b}\n";
        let old = compile_str(&format!("listen: 127.0.0.1:8080\n{base}"));
        let same = compile_str(&format!("listen: 127.0.0.1:8080\n{base}"));
        assert!(needs_restart(&old, &same).is_empty());
        let new = compile_str(&format!(
            "listen: 127.0.0.1:8081\nadmin: {{listen: 127.0.0.1:9091}}\nserver: {{threads: 2, upgrade_sock: /nonexistent-crossgate/other.sock}}\nlog: {{format: json}}\n{base}"
        ));
        assert_eq!(
            needs_restart(&old, &new),
            [
                "listen",
                "admin.listen",
                "server.threads",
                "server.upgrade_sock",
                "log.format"
            ]
        );
    }
}
