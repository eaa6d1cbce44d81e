//! TLS from PEM files, the same for MQTT and DICOM: a CA file as the only roots, a certificate
//! chain and its private key, rustls with the ring provider (no C build). Every problem names the
//! file and what it is for, so an installer knows which one to fix.

use std::path::{Path, PathBuf};
use std::sync::Arc;
pub use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS: {0}")]
    Config(String),
}

fn bad(what: &'static str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::File {
        what,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| bad(what, path, e.to_string()))
}

/// The PEM certificates of `path` (at least one).
pub fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(what, path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(what, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The PEM private key of `path`.
pub fn private_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(what, path)?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| bad(what, path, format!("no PEM private key: {e}")))
}

/// The CA file's certificates as a root store.
pub fn roots(ca_file: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates("CA file", ca_file)? {
        roots
            .add(cert)
            .map_err(|e| bad("CA file", ca_file, format!("unusable certificate: {e}")))?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client: the server must present a certificate signed by `ca_file`; `client` is the
/// certificate and key for mutual TLS.
pub fn client_config(
    ca_file: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca_file)?);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = certificates("client certificate", cert)?;
            builder
                .with_client_auth_cert(chain, private_key("client key", key)?)
                .map_err(|e| {
                    bad(
                        "client key",
                        key,
                        format!("does not fit the certificate: {e}"),
                    )
                })
        }
    }
}

/// A server presenting `cert`/`key`; with `client_ca`, every client must present a certificate
/// signed by it (mutual TLS).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider(),
            )
            .build()
            .map_err(|e| bad("client CA file", ca, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(certificates("certificate", cert)?, private_key("key", key)?)
        .map_err(|e| bad("key", key, format!("does not fit the certificate: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_problem_names_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, b"not pem").expect("write");
        let e = server_config(&junk, &junk, None).expect_err("junk");
        assert!(
            e.to_string().contains("junk.pem") && e.to_string().contains("certificate"),
            "{e}"
        );
        let e = client_config(&dir.path().join("missing.pem"), None).expect_err("missing");
        assert!(
            e.to_string().starts_with("CA file") && e.to_string().contains("missing.pem"),
            "{e}"
        );
    }
}
