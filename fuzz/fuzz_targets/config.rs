//! The config loader on any bytes: an error with a location, or rules; never a panic.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crossgate::config::{parse_yaml, Loaded};
use crossgate::rules::{compile_with, Resolved};
use crossgate::tls::Certified;
use libfuzzer_sys::fuzz_target;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{CryptoProvider, PrivateKeyDer};

/// The certificate every HTTPS listener gets: made once, in memory, never served.
fn cert() -> &'static Certified {
    static CERT: OnceLock<Certified> = OnceLock::new();
    CERT.get_or_init(|| {
        pingora::tls::install_default_crypto_provider();
        let made = rcgen::generate_simple_self_signed(vec!["fuzz.invalid".to_owned()])
            .expect("a self-signed certificate");
        let key = PrivateKeyDer::try_from(made.key_pair.serialize_der()).expect("a PKCS#8 key");
        let signing = CryptoProvider::get_default()
            .expect("installed above")
            .key_provider
            .load_private_key(key)
            .expect("ring loads the key rcgen made");
        Arc::new(CertifiedKey::new(vec![made.cert.der().clone()], signing))
    })
}

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
    let loaded = Loaded {
        path: path.to_owned(),
        source: source.to_owned(),
        config,
    };
    // Compile is pure: given what resolving would have found, without the network or the file
    // system (names at a documentation address, one certificate, CA files empty), it runs on
    // every file.
    let resolved = Resolved::offline(&loaded, Some(cert()));
    if let Err(e) = compile_with(&loaded, &resolved) {
        let shown = e.to_string();
        assert!(shown.starts_with("fuzz.yaml"), "{shown}");
    }
});
