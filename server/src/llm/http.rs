//! The HTTP client builder shared by the LLM client and the model download. Besides
//! the bundled Mozilla roots it trusts the system's certificate bundle
//! (`SSL_CERT_FILE`, or the distribution's usual path), so a company proxy's or an
//! internal LLM server's CA works as it does for curl.

use std::path::PathBuf;

const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

pub fn client_builder() -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder();
    let bundle = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .find(|path| path.is_file());
    if let Some(path) = bundle {
        match std::fs::read(&path).map(|pem| reqwest::Certificate::from_pem_bundle(&pem)) {
            Ok(Ok(certificates)) => {
                for certificate in certificates {
                    builder = builder.add_root_certificate(certificate);
                }
            }
            Ok(Err(e)) => tracing::warn!(path = %path.display(), error = %e, "cannot parse the system certificate bundle"),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot read the system certificate bundle"),
        }
    }
    builder
}
