//! Bearer tokens. Writes (uploads, deletes) need one when any is configured; reads too when
//! reads are private. Tokens are kept as SHA-256 digests and compared in constant time, so
//! neither the comparison's timing nor a memory dump or a log line gives one away.

use std::path::Path;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::Problem;
use super::AppState;

/// The accepted tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.digests.len())
    }
}

impl Tokens {
    /// Tokens from a comma- or whitespace-separated list and from a file with one token per
    /// line (`#` starts a comment), as `GEOFLOW_API_TOKENS` and `GEOFLOW_API_TOKENS_FILE` give
    /// them. A token shorter than 16 characters is refused: it could be guessed.
    pub fn load(list: Option<&str>, file: Option<&Path>) -> anyhow::Result<Tokens> {
        let mut tokens: Vec<String> = list
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading the API tokens file {}", file.display()))?;
            tokens.extend(
                text.lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim())
                    .filter(|t| !t.is_empty())
                    .map(String::from),
            );
        }
        if let Some(n) = tokens.iter().position(|t| t.len() < 16) {
            anyhow::bail!("API token #{} is shorter than 16 characters; use long random tokens", n + 1);
        }
        Ok(Tokens { digests: tokens.iter().map(|t| digest(t.as_bytes())).collect() })
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `token` is one of ours. Every configured token is compared, whatever matches.
    pub fn accepts(&self, token: &str) -> bool {
        let candidate = digest(token.as_bytes());
        self.digests.iter().fold(subtle::Choice::from(0), |found, d| found | d.ct_eq(&candidate)).into()
    }

    /// Checks a request's `Authorization: Bearer` header.
    fn check(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let challenge = |error: &'static str| {
            HeaderValue::from_str(&format!("Bearer realm=\"geoflow\", error=\"{error}\""))
                .unwrap_or(HeaderValue::from_static("Bearer"))
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized("this request needs a bearer token (Authorization: Bearer <token>)")
                .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"geoflow\"")));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match token {
            Some(token) if self.accepts(token) => Ok(()),
            Some(_) => Err(unauthorized("the bearer token is not valid")
                .with_header(header::WWW_AUTHENTICATE, challenge("invalid_token"))),
            None => Err(unauthorized("the Authorization header must be `Bearer <token>`")
                .with_header(header::WWW_AUTHENTICATE, challenge("invalid_request"))),
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

/// Middleware for routes that change data: a token is needed when any is configured.
pub async fn require_write(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, Problem> {
    if !state.config.tokens.is_empty() {
        state.config.tokens.check(request.headers())?;
    }
    Ok(next.run(request).await)
}

/// Middleware for routes that read data: a token is needed when reads are private.
pub async fn require_read(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, Problem> {
    if state.config.private_reads {
        state.config.tokens.check(request.headers())?;
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_a_list_and_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# ops\nfile-token-0123456789 # rotated 2026-11\n\n").unwrap();
        let tokens = Tokens::load(Some("list-token-0123456789, other-token-0123456789"), Some(&file)).unwrap();
        assert!(tokens.accepts("list-token-0123456789"));
        assert!(tokens.accepts("other-token-0123456789"));
        assert!(tokens.accepts("file-token-0123456789"));
        assert!(!tokens.accepts("file-token-012345678"));
        assert!(!tokens.accepts(""));
        assert!(!format!("{tokens:?}").contains("token-0123"));
        assert!(Tokens::load(Some("short"), None).unwrap_err().to_string().contains("16 characters"));
        assert!(Tokens::load(None, None).unwrap().is_empty());
    }

    #[test]
    fn bearer_headers_are_checked() {
        let tokens = Tokens::load(Some("secret-token-0123456789"), None).unwrap();
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            h
        };
        assert!(tokens.check(&with("Bearer secret-token-0123456789")).is_ok());
        assert!(tokens.check(&with("bearer secret-token-0123456789")).is_ok());
        for bad in ["Bearer wrong-token-0123456789", "Basic c2VjcmV0", "secret-token-0123456789"] {
            let problem = tokens.check(&with(bad)).unwrap_err();
            assert_eq!(problem.status(), StatusCode::UNAUTHORIZED, "{bad}");
            assert!(!problem.to_string().contains("secret-token"), "{problem}");
        }
        assert_eq!(tokens.check(&HeaderMap::new()).unwrap_err().status(), StatusCode::UNAUTHORIZED);
    }
}
