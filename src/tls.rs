//! TLS, through pingora's `rustls` feature: downstream HTTPS listeners offering HTTP/2 by ALPN,
//! with certificates that are loaded when the config compiles (a bad file is a config error)
//! and swapped in on reload; and CA bundles for HTTPS upstreams.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use pingora::utils::tls::WrappedX509;

/// A certificate and its key, ready to serve.
pub type Certified = Arc<CertifiedKey>;

/// Loads a PEM certificate chain and private key.
pub fn load_certified(cert_path: &str, key_path: &str) -> Result<Certified, String> {
    pingora::tls::install_default_crypto_provider();
    let (certs, key) = pingora::tls::load_certs_and_key_files(cert_path, key_path)
        .map_err(|e| format!("cannot read {cert_path} or {key_path}: {e}"))?
        .ok_or_else(|| format!("{cert_path} holds no certificate or {key_path} no private key"))?;
    if certs.is_empty() {
        return Err(format!("{cert_path} holds no certificate"));
    }
    let provider = CryptoProvider::get_default().ok_or("no TLS crypto provider")?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("the key in {key_path} cannot be used: {e}"))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| {
        format!("the key in {key_path} does not belong to the certificate in {cert_path}: {e}")
    })?;
    Ok(Arc::new(certified))
}

/// The certificate of one listener; `store` replaces it for new handshakes.
pub struct SwappableCert(ArcSwap<CertifiedKey>);

impl SwappableCert {
    pub fn new(c: Certified) -> Arc<SwappableCert> {
        Arc::new(SwappableCert(ArcSwap::new(c)))
    }

    pub fn store(&self, c: Certified) {
        self.0.store(c);
    }
}

impl fmt::Debug for SwappableCert {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("SwappableCert")
    }
}

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Reads a PEM bundle of CA certificates for an upstream.
pub fn load_ca(path: &str) -> Result<Arc<[WrappedX509]>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut out = Vec::new();
    for p in x509_parser::pem::Pem::iter_from_buffer(&pem) {
        let p = p.map_err(|e| format!("{path} is not a PEM file: {e}"))?;
        if p.label != "CERTIFICATE" {
            continue;
        }
        // Checked here: pingora's wrapper panics on a certificate it cannot parse.
        x509_parser::parse_x509_certificate(&p.contents)
            .map_err(|e| format!("a certificate in {path} cannot be parsed: {e}"))?;
        out.push(WrappedX509::new(
            p.contents,
            pingora::utils::tls::parse_x509,
        ));
    }
    if out.is_empty() {
        return Err(format!("{path} holds no certificate"));
    }
    Ok(out.into())
}
