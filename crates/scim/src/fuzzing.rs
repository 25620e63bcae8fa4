//! The parsers of what a target answers, one function each, for the fuzz harness
//! (`cargo bench -p scimsync-tests --bench fuzz`). Each runs the code a run runs on the bytes
//! received, without the network: the body decoding of the transport, then the reader.

use crate::client::{PageEnd, Paging, take_page};
use crate::config::{Dialect, FederationIdPlacement};
use crate::discovery::{Fetched, capabilities};
use crate::error::ScimError;
use crate::resources::{AttrPath, group_from_json, user_from_json};
use crate::token::{HttpError, outcome};
use crate::transport::{decode_body, error_summary};
use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, TokenUrl};
use reqwest::StatusCode;
use std::collections::HashSet;

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
}

/// One page of a list answer (`/Users`), as paging takes it, then each resource read as a
/// user. Returns the users read.
pub fn list_response(body: &[u8]) -> Result<usize, ScimError> {
    let page = decode_body(StatusCode::OK, body, "fuzz")?;
    let federation = AttrPath::salesforce();
    let (mut start, mut seen, mut read) = (1, HashSet::new(), 0usize);
    let mut take = |v: &serde_json::Value| {
        read += usize::from(user_from_json(v, Some(&federation)).is_ok());
    };
    let mut paging = Paging {
        start: &mut start,
        seen: &mut seen,
        take: &mut take,
    };
    let end = take_page(&page, &mut paging, Some(100), false, "fuzz")?;
    // A second page: the same answer again (paging by startIndex over a server ignoring it).
    if end == PageEnd::More {
        take_page(&page, &mut paging, None, false, "fuzz")?;
    }
    Ok(read)
}

/// One user resource (a GET or a create's answer).
pub fn user(body: &[u8]) -> Result<(), ScimError> {
    let v = decode_body(StatusCode::OK, body, "fuzz")?;
    user_from_json(&v, Some(&AttrPath::salesforce())).map_err(|message| {
        ScimError::InvalidResponse {
            what: "fuzz".into(),
            message,
        }
    })?;
    Ok(())
}

/// One group resource.
pub fn group(body: &[u8]) -> Result<(), ScimError> {
    let v = decode_body(StatusCode::OK, body, "fuzz")?;
    group_from_json(&v).map_err(|message| ScimError::InvalidResponse {
        what: "fuzz".into(),
        message,
    })?;
    Ok(())
}

/// An error answer with `code` (4xx/5xx): its code and one-line detail.
pub fn error_body(code: u16, body: &[u8]) -> Result<(Option<String>, String), ScimError> {
    let v = decode_body(status(code), body, "fuzz")?;
    Ok(error_summary(&v))
}

/// Which discovery document is fuzzed (the other two are valid).
#[derive(Debug, Clone, Copy)]
pub enum Document {
    ServiceProviderConfig,
    ResourceTypes,
    Schemas,
}

fn fetched(bytes: &[u8]) -> Fetched {
    match decode_body(StatusCode::OK, bytes, "fuzz") {
        Ok(v) => Fetched::Body(v),
        Err(e) => Fetched::Missing(e.to_string()),
    }
}

/// The three discovery documents of a valid target, read once.
#[derive(Debug, Clone)]
pub struct Documents([Fetched; 3]);

impl Documents {
    /// `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas`, as answered.
    pub fn new(documents: [&[u8]; 3]) -> Self {
        Self(documents.map(fetched))
    }
}

/// Discovery with `body` as the `which` document and `valid`'s as the other two, in the
/// `variant` (modulo 3) of: Salesforce, generic, generic with a configured Federation ID path.
/// Returns the notes.
pub fn discovery(which: Document, body: &[u8], valid: &Documents, variant: u64) -> usize {
    let body = fetched(body);
    let mut docs: [&Fetched; 3] = [&valid.0[0], &valid.0[1], &valid.0[2]];
    docs[which as usize] = &body;
    let (dialect, placement) = match variant % 3 {
        0 => (Dialect::Salesforce, FederationIdPlacement::Auto),
        1 => (Dialect::Generic, FederationIdPlacement::Auto),
        _ => (
            Dialect::Generic,
            FederationIdPlacement::Path(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"
                    .to_owned(),
            ),
        ),
    };
    capabilities(dialect, &placement, docs[0], docs[1], docs[2])
        .notes
        .len()
}

/// The token endpoint's answer with status `code`, read by the `oauth2` crate as a run reads
/// it, then classified.
pub fn token_response(code: u16, body: &[u8]) -> Result<(), ScimError> {
    let url = TokenUrl::new("https://login.example.test/services/oauth2/token".to_owned())
        .map_err(|e| ScimError::Config(e.to_string()))?;
    let client = BasicClient::new(ClientId::new("fuzz".to_owned()))
        .set_client_secret(ClientSecret::new("fuzz".to_owned()))
        .set_token_uri(url);
    let body = body.to_vec();
    let answer = move |_request: oauth2::HttpRequest| -> Result<oauth2::HttpResponse, HttpError> {
        let mut out = oauth2::HttpResponse::new(body.clone());
        *out.status_mut() = status(code);
        out.headers_mut().insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        Ok(out)
    };
    let result = client.exchange_client_credentials().request(&answer);
    outcome(result, Dialect::Salesforce).map(|_| ())
}
