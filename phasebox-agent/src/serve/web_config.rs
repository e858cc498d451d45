//! `--web.config.file`: the web configuration of Prometheus's exporter toolkit (as
//! node_exporter reads it). TLS with a certificate and key, and basic auth users with bcrypt
//! hashes; what the toolkit offers beyond that is refused by name, never ignored.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use phasebox_core::sysnames::describe_io;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde::Deserialize;
use tokio_rustls::rustls::{self, ServerConfig, version};

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

/// `tls_server_config`: the certificate and key, and the TLS versions allowed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
}

/// What the server does with the file: TLS, and the users basic auth lets in.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<Arc<ServerConfig>>,
    /// User name → bcrypt hash; empty: no basic auth.
    pub users: BTreeMap<String, String>,
}

/// Reads `path`; every problem is one sentence naming the file.
pub fn load(path: &Path) -> anyhow::Result<WebConfig> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the web config file {shown}: {}",
            describe_io(&e)
        )
    })?;
    parse(&text, path.parent().unwrap_or(Path::new(".")))
        .map_err(|e| anyhow::anyhow!("the web config file {shown} is not usable: {e}"))
}

/// The config in `text`, its relative paths taken from `dir` (the file's directory).
fn parse(text: &str, dir: &Path) -> Result<WebConfig, String> {
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        serde_yaml::from_str(text).map_err(|e| e.to_string())?
    };
    for (user, hash) in &file.basic_auth_users {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(format!("the password of {user:?} is not a bcrypt hash"));
        }
    }
    let tls = file.tls_server_config.map(|t| tls(&t, dir)).transpose()?;
    Ok(WebConfig {
        tls: tls.map(Arc::new),
        users: file.basic_auth_users,
    })
}

fn tls(t: &TlsFile, dir: &Path) -> Result<ServerConfig, String> {
    match t.client_auth_type.as_deref() {
        None | Some("NoClientCert") => {}
        Some(other) => return Err(format!("client_auth_type {other} is not supported")),
    }
    let versions = versions(t.min_version.as_deref(), t.max_version.as_deref())?;
    let cert_file = dir.join(&t.cert_file);
    let key_file = dir.join(&t.key_file);
    let certs = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            format!(
                "cannot read the certificate {}: {}",
                cert_file.display(),
                pem_error(e)
            )
        })?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| {
        format!(
            "cannot read the key {}: {}",
            key_file.display(),
            pem_error(e)
        )
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not make a TLS server: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A PEM file's problem in words (an I/O error without its errno).
fn pem_error(e: rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => describe_io(&io),
        other => other.to_string(),
    }
}

/// rustls over ring, which builds without cmake (aws-lc needs it); ring has no post-quantum
/// key exchange, for which rustls marks its provider deprecated.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS versions from `min_version` to `max_version` (TLS12 and TLS13; the toolkit's
/// default minimum is TLS12).
fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |v: Option<&str>, default: u8| match v {
        None => Ok(default),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(other) => Err(format!(
            "TLS version {other} is not supported (TLS12 or TLS13)"
        )),
    };
    let (lo, hi) = (rank(min, 12)?, rank(max, 13)?);
    let all = [(12, &version::TLS12), (13, &version::TLS13)];
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|(n, _)| (lo..=hi).contains(n))
        .map(|(_, v)| v)
        .collect();
    if chosen.is_empty() {
        return Err("min_version is above max_version".to_string());
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, Path::new("/nonexistent"))
            .err()
            .expect("refused")
    }

    #[test]
    fn users_and_no_tls() {
        let c = parse(
            "basic_auth_users:\n  alice: $2y$10$Oi6ZbVhJPhkUA/ahmpmnc.ROTE/WiRu3oXTL/dTf9gyLn1RcDJ9yS\n",
            Path::new("."),
        )
        .unwrap();
        assert!(c.tls.is_none());
        assert_eq!(c.users.len(), 1);
        assert!(parse("", Path::new(".")).unwrap().users.is_empty());
    }

    #[test]
    fn what_cannot_be_used_is_named() {
        assert!(err("basic_auth_users:\n  bob: secret\n").contains("not a bcrypt hash"));
        assert!(
            err("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n")
                .contains("cipher_suites")
        );
        assert!(
            err("tls_server_config:\n  cert_file: a.crt\n  key_file: b\n")
                .contains("cannot read the certificate /nonexistent/a.crt")
        );
        assert!(
            err("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n")
                .contains("not supported")
        );
        assert!(
            err("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n")
                .contains("TLS10")
        );
        assert!(err("- a list\n").contains("invalid type"));
    }
}
