//! Hot reload: compile the file again and swap the rules in one atomic store. Requests in
//! flight keep the snapshot they started with (each holds its own `Arc<Rules>`); a file that
//! does not compile is logged with the same error `check` prints, counted, and the old rules
//! stay live. Triggered by SIGHUP and by changes to the file: its directory is watched, so an
//! editor's or a Kubernetes ConfigMap's atomic rename (a new `..data` symlink) is seen too.
//!
//! Only a change of what the rules are made of is acted on: the file's text and the
//! certificates it names. Events about other files in the directory (a log file, an editor's
//! swap file) and reads (the watcher's own) are ignored, and a text seen before is not
//! compiled again: a broken file is reported once, however many events follow, and a file
//! put back to the text that is running clears the failed-reload alarm.

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
    state: Mutex<Seen>,
}

/// What the reloader has seen, as fingerprints ([`fingerprint`]).
struct Seen {
    /// The text and certificates of the rules that are live.
    running: u64,
    /// The text and certificates last looked at (compiled or refused), so that one change
    /// seen twice is acted on once.
    last: u64,
    /// The last look failed: the alarm (`crossgate_config_last_reload_successful` 0) is on.
    failing: bool,
}

/// The config text and the certificate and key files of the rules in force: a renewed
/// certificate is a change too. Read without compiling anything.
fn fingerprint(source: &str, tls_listeners: &[crate::rules::TlsListener]) -> u64 {
    let mut h = DefaultHasher::new();
    source.hash(&mut h);
    for l in tls_listeners {
        for f in [&l.cert_path, &l.key_path] {
            std::fs::read(f).unwrap_or_default().hash(&mut h);
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
        let running = std::fs::read_to_string(&path)
            .map(|t| fingerprint(&t, &rules.load().tls_listeners))
            .unwrap_or(0);
        Reloader {
            path,
            rules,
            metrics,
            certs,
            state: Mutex::new(Seen {
                running,
                last: running,
                failing: false,
            }),
        }
    }

    /// Compiles the file and swaps it in. `force` reloads even an unchanged text (SIGHUP).
    pub fn reload(&self, force: bool) -> Outcome {
        let mut seen = self.state.lock();
        // What the rules would be made of now: the text, and the certificates the live rules
        // name (a change of which certificates are named is a change of the text).
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let now = fingerprint(&text, &self.rules.load().tls_listeners);
        if !force && now == seen.last {
            return Outcome::Unchanged;
        }
        seen.last = now;
        if !force && now == seen.running {
            // Put back as it is running (a rollback): nothing to compile, and a failed reload
            // before it no longer describes the live config.
            if seen.failing {
                seen.failing = false;
                self.metrics.last_reload_successful.set(1);
                let live = self.rules.load().config_hash.clone();
                tracing::info!(config = %self.path.display(), config_hash = %live, "config is back to the rules that are running; the failed reload is cleared");
            }
            return Outcome::Unchanged;
        }
        let loaded = match config::load(&self.path) {
            Ok(l) => l,
            Err(e) => return self.failed(&mut seen, &e.to_string()),
        };
        // A server name that does not resolve yet is a warning, as at start.
        let resolved = rules::resolve_with(&loaded, rules::Lookups::Tolerant);
        let new = match rules::compile_with(&loaded, &resolved) {
            Ok(r) => r,
            Err(e) => return self.failed(&mut seen, &e.to_string()),
        };
        seen.running = fingerprint(&loaded.source, &new.tls_listeners);
        seen.last = seen.running;
        seen.failing = false;
        for w in &new.warnings {
            tracing::warn!("config warning: {w}");
        }
        let old = self.rules.load();
        for u in &new.upstreams {
            if let Some(o) = old.upstreams.iter().find(|o| o.name == u.name) {
                u.keep_addresses_of_unresolved(o);
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

    fn failed(&self, seen: &mut Seen, error: &str) -> Outcome {
        seen.failing = true;
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
        // The names whose change is a change of the rules: the config file, the ConfigMap's
        // `..data` link, the certificate and key files (by file name: an editor's or the
        // kubelet's rename comes as the name it ends up with).
        let mut names: Vec<std::ffi::OsString> = vec!["..data".into()];
        names.extend(self.path.file_name().map(Into::into));
        for l in &self.rules.load().tls_listeners {
            for f in [&l.cert_path, &l.key_path] {
                names.extend(f.file_name().map(Into::into));
            }
        }
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else {
                    return;
                };
                if matters(&event, &names) {
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

/// Whether a watcher's event may change the rules: a write, creation, rename or removal (not
/// a read: the reloader's own reads come as events too) of one of `names`.
fn matters(event: &notify::Event, names: &[std::ffi::OsString]) -> bool {
    use notify::EventKind;
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    event
        .paths
        .iter()
        .any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n)))
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
    fn only_changes_to_the_files_the_rules_are_made_of_matter() {
        use notify::event::{AccessKind, CreateKind, DataChange, ModifyKind, RenameMode};
        use notify::{Event, EventKind};
        let names: Vec<std::ffi::OsString> = vec!["..data".into(), "config.yaml".into()];
        let event = |kind, path: &str| Event::new(kind).add_path(PathBuf::from(path));
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(matters(&event(write, "/etc/crossgate/config.yaml"), &names));
        assert!(matters(
            &event(
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                "/cm/..data"
            ),
            &names
        ));
        assert!(matters(
            &event(
                EventKind::Create(CreateKind::File),
                "/etc/crossgate/config.yaml"
            ),
            &names
        ));
        // Reads (the reloader's own) and other files of the directory do not.
        assert!(!matters(
            &event(
                EventKind::Access(AccessKind::Any),
                "/etc/crossgate/config.yaml"
            ),
            &names
        ));
        assert!(!matters(
            &event(write, "/etc/crossgate/crossgate.log"),
            &names
        ));
        assert!(!matters(
            &event(write, "/etc/crossgate/.config.yaml.swp"),
            &names
        ));
    }

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
