//! The config loader on any bytes: an error with a location, or rules; never a panic.
#![no_main]

use std::net::SocketAddr;
use std::path::Path;

use crossgate::config::{parse_yaml, Loaded};
use crossgate::rules::compile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.yaml");
    let config = match parse_yaml(path, source) {
        Ok(c) => c,
        Err(e) => {
            // The message is rendered (with its line lookup) as `crossgate check` would.
            let shown = e.to_string();
            assert!(shown.starts_with("fuzz.yaml"), "{shown}");
            return;
        }
    };
    // Compiling resolves server names and reads CA files: keep the fuzzer off the network and
    // the file system, and compile everything else.
    let offline = config.upstreams.values().all(|u| {
        u.servers.iter().all(|s| s.parse::<SocketAddr>().is_ok())
            && u.tls.as_ref().is_none_or(|t| t.ca_file.is_none())
    });
    if !offline {
        return;
    }
    let loaded = Loaded {
        path: path.to_owned(),
        source: source.to_owned(),
        config,
    };
    if let Err(e) = compile(&loaded) {
        let shown = e.to_string();
        assert!(shown.starts_with("fuzz.yaml"), "{shown}");
    }
});
