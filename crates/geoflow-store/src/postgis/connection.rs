//! Connection strings (parsing, redaction, TLS modes) and the connection pool.

use std::str::FromStr;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::StoreError;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, without certificate checks; plain TCP otherwise.
    Prefer,
    /// TLS, without certificate checks (unless a CA bundle is given: then as `VerifyCa`).
    Require,
    /// TLS with a certificate signed by a trusted CA, for any host name.
    VerifyCa,
    /// TLS with a trusted certificate for the host connected to.
    VerifyFull,
}

impl SslMode {
    pub fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// What [`super::PostgisStore::connect`] needs from a connection string.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    pub root_cert: Option<String>,
    /// The connection string without its password, safe to log.
    pub location: String,
    pub password: Option<String>,
}

fn open_error(location: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Open { location: location.to_string(), reason: reason.into() }
}

impl Settings {
    /// Parses a `postgres://` URL or a `key=value` connection string. `sslmode` and
    /// `sslrootcert` are taken out and handled here (tokio-postgres knows only some modes).
    pub fn parse(conn: &str) -> Result<Settings, StoreError> {
        let location = redact(conn);
        let mut ssl_mode = SslMode::Prefer;
        let mut root_cert = None;
        let mut take = |key: &str, value: &str| -> Result<bool, StoreError> {
            match key {
                "sslmode" => {
                    ssl_mode = SslMode::parse(value).ok_or_else(|| {
                        open_error(
                            &location,
                            format!(
                                "unknown sslmode {value:?}: use disable, prefer, require, verify-ca or verify-full"
                            ),
                        )
                    })?;
                    Ok(true)
                }
                "sslrootcert" => {
                    root_cert = Some(value.to_string());
                    Ok(true)
                }
                _ => Ok(false),
            }
        };
        let rest = if is_url(conn) {
            let (base, query) = conn.split_once('?').unwrap_or((conn, ""));
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if !take(k, &percent_decode(v))? {
                    kept.push(pair);
                }
            }
            if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        } else {
            let mut kept = Vec::new();
            for (k, v, raw) in key_values(conn) {
                if !take(&k, &v)? {
                    kept.push(raw);
                }
            }
            kept.join(" ")
        };
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| open_error(&location, format!("invalid connection string: {}", describe_error(&e))))?;
        let password = config.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        if config.get_application_name().is_none() {
            config.application_name("geoflow");
        }
        Ok(Settings { config, ssl_mode, root_cert, location, password })
    }

    /// The rustls configuration that implements the sslmode.
    fn tls(&self) -> Result<ClientConfig, StoreError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| open_error(&self.location, format!("TLS setup: {e}")))?;
        let mut mode = self.ssl_mode;
        if mode == SslMode::Require && self.root_cert.is_some() {
            // libpq: require with a root certificate verifies like verify-ca.
            mode = SslMode::VerifyCa;
        }
        let config = match mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth(),
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let mut roots = RootCertStore::empty();
                match &self.root_cert {
                    Some(path) => {
                        let certs = CertificateDer::pem_file_iter(path)
                            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                            .map_err(|e| open_error(&self.location, format!("cannot read sslrootcert {path}: {e}")))?;
                        let (added, _) = roots.add_parsable_certificates(certs);
                        if added == 0 {
                            return Err(open_error(&self.location, format!("no certificate in sslrootcert {path}")));
                        }
                    }
                    None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                }
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| open_error(&self.location, format!("TLS setup: {e}")))?;
                if mode == SslMode::VerifyCa {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyHostName(webpki)))
                        .with_no_client_auth()
                } else {
                    builder.with_webpki_verifier(webpki).with_no_client_auth()
                }
            }
        };
        Ok(config)
    }
}

/// A pool of connections made as `settings` say.
pub fn pool(settings: Settings, size: usize) -> Result<Pool, StoreError> {
    let tls = MakeRustlsConnect::new(settings.tls()?);
    let manager = Manager::from_config(settings.config, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| open_error(&settings.location, format!("cannot build the connection pool: {e}")))
}

fn is_url(conn: &str) -> bool {
    conn.starts_with("postgres://") || conn.starts_with("postgresql://")
}

/// The connection string with its password removed (`user:secret@` becomes `user@`,
/// `password=…` pairs are dropped), safe to log.
pub fn redact(conn: &str) -> String {
    if is_url(conn) {
        let scheme_end = conn.find("://").map_or(0, |i| i + 3);
        let (base, query) = match conn.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (conn, None),
        };
        let mut out = String::with_capacity(conn.len());
        let rest = &base[scheme_end..];
        out.push_str(&base[..scheme_end]);
        match rest.rfind('@') {
            Some(at) => {
                let userinfo = &rest[..at];
                out.push_str(userinfo.split_once(':').map_or(userinfo, |(user, _)| user));
                out.push_str(&rest[at..]);
            }
            None => out.push_str(rest),
        }
        if let Some(q) = query {
            let kept: Vec<&str> = q.split('&').filter(|p| !p.starts_with("password=") && *p != "password").collect();
            if !kept.is_empty() {
                out.push('?');
                out.push_str(&kept.join("&"));
            }
        }
        out
    } else {
        key_values(conn)
            .into_iter()
            .filter(|(k, _, _)| k != "password")
            .map(|(_, _, raw)| raw)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The pairs of a `key=value` connection string: (key, unquoted value, raw text).
fn key_values(conn: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut chars = conn.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else { break };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '=').is_some() {
            while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
            if chars.next_if(|(_, c)| *c == '\'').is_some() {
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, e)) = chars.next() {
                                value.push(e);
                            }
                        }
                        '\'' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                    value.push(c);
                }
            }
        }
        let end = chars.peek().map_or(conn.len(), |(i, _)| *i);
        out.push((key, value, conn[start..end].trim_end().to_string()));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An error with its causes, one after another (tokio-postgres puts the server's message in
/// the source of its errors).
pub fn describe_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// `sslmode=prefer`/`require`: encrypted, but any certificate is accepted (as libpq does).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted CA; the host name is not checked.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://geo:s3cr%40t@db.example:5432/gis"), "postgres://geo@db.example:5432/gis");
        assert_eq!(
            redact("postgresql://geo@db/gis?password=hunter2&sslmode=require"),
            "postgresql://geo@db/gis?sslmode=require"
        );
        assert_eq!(redact("host=db user=geo password='a b\\'c' dbname=gis"), "host=db user=geo dbname=gis");
        assert_eq!(redact("postgres://db/gis"), "postgres://db/gis");
    }

    #[test]
    fn ssl_modes_are_taken_out() {
        let s = Settings::parse("postgres://u:p@localhost/db?sslmode=verify-full&sslrootcert=/tmp/ca.pem").unwrap();
        assert_eq!(s.ssl_mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert.as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(s.password.as_deref(), Some("p"));
        let s = Settings::parse("host=localhost user=u sslmode=verify-ca dbname=db").unwrap();
        assert_eq!(s.ssl_mode, SslMode::VerifyCa);
        assert_eq!(s.config.get_dbname(), Some("db"));
        let e = Settings::parse("postgres://u:topsecret@localhost/db?sslmode=bogus").unwrap_err().to_string();
        assert!(e.contains("bogus") && !e.contains("topsecret"), "{e}");
    }
}
