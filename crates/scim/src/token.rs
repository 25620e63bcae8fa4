//! OAuth2 client credentials with the `oauth2` crate over our own reqwest client, and the one
//! token all requests share.

use crate::config::{Auth, ClientAuthMethod, Dialect};
use crate::error::{ScimError, TokenFailure};
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AuthType, ClientId, ClientSecret, RequestTokenError, StandardErrorResponse, TokenResponse,
    TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::info;

/// A token and the generation it belongs to (to refresh once per 401 wave, not per request).
#[derive(Clone)]
pub(crate) struct Token {
    pub value: Arc<SecretString>,
    pub generation: u64,
    /// When it was obtained: a 401 is a permission problem only for a token this fresh.
    pub obtained: Instant,
}

/// Most bytes a token answer may have.
const MAX_TOKEN_BODY: usize = 1024 * 1024;

pub(crate) struct TokenSource {
    auth: Auth,
    /// Whose words the hints of token errors use.
    dialect: Dialect,
    http: reqwest::Client,
    current: Mutex<Option<Token>>,
    pub fetched: AtomicU64,
    /// The retry waits, whose virtual time a token's age counts when they are recorded.
    pub waits: scimsync_core::retry::Waits,
}

/// A failed token request before OAuth2 parsing: a transport failure (no status) or an answer
/// of 429 or 5xx, both passing conditions worth retrying. The body is never kept.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct HttpError {
    message: String,
    status: Option<u16>,
    retry_after: Option<std::time::Duration>,
    /// Not worth retrying (a redirect, an oversized answer).
    fatal: bool,
}

impl HttpError {
    fn transport(message: String) -> Self {
        Self {
            message,
            status: None,
            retry_after: None,
            fatal: false,
        }
    }
}

impl TokenSource {
    pub fn new(auth: Auth, dialect: Dialect, http: reqwest::Client) -> Self {
        Self {
            auth,
            dialect,
            http,
            current: Mutex::new(None),
            fetched: AtomicU64::new(0),
            waits: scimsync_core::retry::Waits::default(),
        }
    }

    /// The cached token, fetching one if there is none.
    pub async fn get(&self) -> Result<Token, ScimError> {
        let mut slot = self.current.lock().await;
        if let Some(t) = &*slot {
            return Ok(t.clone());
        }
        let t = self.fetch(0).await?;
        *slot = Some(t.clone());
        Ok(t)
    }

    /// Replaces the token of `stale_generation` with a new one; concurrent callers holding the
    /// same stale token share one fetch.
    pub async fn refresh(&self, stale_generation: u64) -> Result<Token, ScimError> {
        let mut slot = self.current.lock().await;
        if let Some(t) = &*slot
            && t.generation != stale_generation
        {
            return Ok(t.clone());
        }
        let t = self.fetch(stale_generation + 1).await?;
        *slot = Some(t.clone());
        Ok(t)
    }

    async fn fetch(&self, generation: u64) -> Result<Token, ScimError> {
        let (token_url, client_id, secret, method) = match &self.auth {
            Auth::Bearer(token) => {
                return Ok(Token {
                    value: Arc::new(token.clone()),
                    generation,
                    obtained: Instant::now() + self.waits.skipped(),
                });
            }
            Auth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                method,
            } => (token_url, client_id, client_secret, method),
        };
        let token_url = TokenUrl::new(token_url.to_string())
            .map_err(|e| ScimError::Config(format!("token URL: {e}")))?;
        let client = BasicClient::new(ClientId::new(client_id.clone()))
            .set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()))
            .set_token_uri(token_url)
            .set_auth_type(match method {
                ClientAuthMethod::Form => AuthType::RequestBody,
                ClientAuthMethod::Basic => AuthType::BasicAuth,
            });
        let http = self.http.clone();
        let send = move |req: oauth2::HttpRequest| {
            let http = http.clone();
            async move {
                let (parts, body) = req.into_parts();
                let url = parts.uri.to_string();
                let mut builder = http.request(parts.method, url).body(body);
                for (name, value) in &parts.headers {
                    builder = builder.header(name, value);
                }
                let resp = builder
                    .send()
                    .await
                    .map_err(|e| HttpError::transport(http_failure(&e)))?;
                let status = resp.status();
                let headers = resp.headers().clone();
                if status.is_redirection() {
                    // The client secret is never sent to wherever a redirect points.
                    let to_host = crate::transport::redirect_host(
                        resp.url(),
                        headers
                            .get(reqwest::header::LOCATION)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default(),
                    );
                    return Err(HttpError {
                        message: format!(
                            "the token endpoint answered with a redirect ({}) to {to_host}; not followed, so the client secret is not sent there: check token_url",
                            status.as_u16()
                        ),
                        status: None,
                        retry_after: None,
                        fatal: true,
                    });
                }
                if status.is_server_error() || status.as_u16() == 429 {
                    return Err(HttpError {
                        message: format!("the token endpoint answered {}", status.as_u16()),
                        status: Some(status.as_u16()),
                        retry_after: headers
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(crate::transport::parse_retry_after),
                        fatal: false,
                    });
                }
                let bytes = crate::transport::read_capped(resp, MAX_TOKEN_BODY)
                    .await
                    .map_err(|e| match e {
                        crate::transport::CapError::Read(e) => {
                            HttpError::transport(http_failure(&e))
                        }
                        crate::transport::CapError::TooLarge(seen) => HttpError {
                            fatal: true,
                            ..HttpError::transport(format!(
                                "the token answer is larger than {MAX_TOKEN_BODY} bytes (at least {seen})"
                            ))
                        },
                    })?;
                let mut out = oauth2::HttpResponse::new(bytes);
                *out.status_mut() = status;
                *out.headers_mut() = headers;
                Ok::<_, HttpError>(out)
            }
        };
        let result = client
            .exchange_client_credentials()
            .request_async(&send)
            .await;
        let value = outcome(result, self.dialect)?;
        self.fetched.fetch_add(1, Ordering::Relaxed);
        info!(generation, "Access token fetched.");
        Ok(Token {
            value: Arc::new(value),
            generation,
            obtained: Instant::now() + self.waits.skipped(),
        })
    }
}

/// What the token endpoint's answer (as the `oauth2` crate read it) means: the access token,
/// or the error, classified.
pub(crate) fn outcome(
    result: Result<BasicTokenResponse, RequestTokenError<HttpError, BasicErrorResponse>>,
    dialect: Dialect,
) -> Result<SecretString, ScimError> {
    match result {
        Ok(resp) => Ok(SecretString::from(resp.access_token().secret().to_owned())),
        Err(RequestTokenError::ServerResponse(err)) => Err(classify(&err, dialect)),
        Err(RequestTokenError::Request(HttpError {
            message,
            fatal: true,
            ..
        })) => Err(ScimError::TokenTransport { message }),
        // Passing conditions: retryable like the same failures of SCIM calls.
        Err(RequestTokenError::Request(HttpError {
            message,
            status: Some(429),
            retry_after,
            ..
        })) => {
            let _ = message;
            Err(ScimError::RateLimited { retry_after })
        }
        Err(RequestTokenError::Request(HttpError {
            message,
            status: Some(status),
            retry_after,
            ..
        })) => Err(ScimError::Server {
            status,
            detail: message,
            retry_after,
        }),
        Err(RequestTokenError::Request(HttpError { message, .. })) => Err(ScimError::Transport {
            what: "the token request".into(),
            message,
        }),
        Err(RequestTokenError::Parse(e, _)) => Err(ScimError::TokenTransport {
            message: format!("the token response is not OAuth2 JSON: {e}"),
        }),
        Err(RequestTokenError::Other(m)) => Err(ScimError::TokenTransport { message: m }),
    }
}

fn classify(err: &StandardErrorResponse<BasicErrorResponseType>, dialect: Dialect) -> ScimError {
    let error = err.error().to_string();
    let description = err.error_description().cloned().unwrap_or_default();
    let lower = description.to_ascii_lowercase();
    let failure = match err.error() {
        BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
            TokenFailure::BadClient
        }
        BasicErrorResponseType::Extension(code)
            if code == "invalid_client_id" || code == "invalid_client_credentials" =>
        {
            TokenFailure::BadClient
        }
        BasicErrorResponseType::InvalidGrant if lower.contains("no client credentials user") => {
            TokenFailure::NoRunAsUser
        }
        BasicErrorResponseType::InvalidGrant if lower.contains("not supported on this domain") => {
            TokenFailure::WrongDomain
        }
        _ => TokenFailure::Other,
    };
    ScimError::Token {
        failure,
        error,
        description,
        dialect,
    }
}

/// A reqwest error's text: what kind of failure, the URL it concerns (scheme, host, port and
/// path: no query, which may carry names, and no credentials), then its causes.
pub(crate) fn http_failure(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the response was cut off or unreadable"
    } else if e.is_request() {
        "the request failed"
    } else {
        "HTTP error"
    };
    let mut out = kind.to_owned();
    if let Some(url) = e.url() {
        out.push_str(&format!(" ({})", shown_url(url)));
    }
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// `url` as messages show it: scheme, host, port and path only.
pub(crate) fn shown_url(url: &url::Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    shown
}
