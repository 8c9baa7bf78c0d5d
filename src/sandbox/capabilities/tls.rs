//! Which certificate authorities a plugin's outbound `https` trusts: the
//! public roots, plus those of the PEM file its manifest names (`ca_file`).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Root certificates a plugin trusts for `https` besides the public ones,
/// read from the PEM file its manifest names (`[http] ca_file`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedRoots(Vec<CertificateDer<'static>>);

impl TrustedRoots {
    /// Every certificate of `pem`, the contents of the PEM file `path` (read
    /// by the caller, which decides which files may be read). Fails, saying
    /// why, when it holds no certificate, or one that is not a usable
    /// certificate authority.
    pub fn from_pem(pem: &[u8], path: &Path) -> Result<Self, String> {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display()));
        }
        let mut store = rustls::RootCertStore::empty();
        for (i, certificate) in certificates.iter().enumerate() {
            store
                .add(certificate.clone())
                .map_err(|e| format!("certificate {} of {} cannot be trusted: {e}", i + 1, path.display()))?;
        }
        Ok(Self(certificates))
    }

    /// Whether there are none (the public roots only).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for TrustedRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedRoots({} certificates)", self.0.len())
    }
}

/// TLS settings for outbound requests: the Mozilla root certificates, plus
/// `extra` roots. Without extras, one shared configuration built once.
pub(crate) fn tls_config(extra: &TrustedRoots) -> Arc<rustls::ClientConfig> {
    static PUBLIC: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let build = |extra: &TrustedRoots| {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
        // Checked when the manifest was read (`TrustedRoots::from_pem`).
        roots.add_parsable_certificates(extra.0.iter().cloned());
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    };
    if extra.is_empty() { PUBLIC.get_or_init(|| build(extra)).clone() } else { build(extra) }
}
