//! tracing setup: human-readable lines by default, JSON on request. Filtered by `RUST_LOG`
//! (default `info`). pingora's own `log` records are bridged in by tracing-subscriber.
//!
//! The JSON lines all have one schema, crossgate's and pingora's alike: `timestamp`, `level`,
//! `message` (when there is one), the event's fields, `target`. The bridge's `log.file`,
//! `log.line`, `log.module_path` and `log.target` are left out (the file is a build path on
//! the build machine; the target is `target`).

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Later calls do nothing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
    };
}

/// One JSON object per event, in the schema of the module's doc.
pub struct JsonLines;

/// An event's fields as JSON values, without the `log` bridge's own.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if !field.name().starts_with("log.") {
            self.0.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        let mut fields = Fields::default();
        event.record(&mut fields);
        // The event's fields first, then the schema's own keys, which a field of the same
        // name cannot replace.
        let mut line = std::mem::take(&mut fields.0);
        line.insert("timestamp".into(), Value::from(time));
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer that keeps what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(emit: impl FnOnce()) -> Vec<serde_json::Value> {
        let out = Captured::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn a_bridged_log_record_has_the_same_schema_and_no_build_paths() {
        let got = lines(|| {
            // What the `log` bridge makes of pingora's `info!("Server starting")`.
            let record = log::Record::builder()
                .args(format_args!("Server starting"))
                .level(log::Level::Info)
                .target("pingora_core::server")
                .module_path(Some("pingora_core::server"))
                .file(Some(
                    "/root/.cargo/registry/src/x/pingora-core/src/server/mod.rs",
                ))
                .line(Some(643))
                .build();
            tracing_log::format_trace(&record).unwrap();
            tracing::info!(target: "crossgate::access", status = 200u16, path = "/x");
        });
        assert_eq!(got.len(), 2, "{got:?}");
        let pingora = got[0].as_object().unwrap();
        let keys: Vec<&str> = pingora.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["level", "message", "target", "timestamp"],
            "{pingora:?}"
        );
        assert_eq!(pingora["message"], "Server starting");
        assert_eq!(pingora["target"], "pingora_core::server");
        assert_eq!(pingora["level"], "INFO");
        assert!(!got[0].to_string().contains("/root/.cargo"), "{}", got[0]);
        let access = &got[1];
        assert_eq!(access["status"], 200);
        assert_eq!(access["path"], "/x");
        assert_eq!(access["target"], "crossgate::access");
    }
}
