//! End-to-end stories: emulators → engine → emulators. The stories live in `tests/tests/`;
//! here is the setup they share: the store on either backend and the configurations that
//! point the real Duo reader and the real SCIM client at the emulators.

use scimsync_directory::{DuoConfig, DuoEndpoint};
use scimsync_scim::{Auth, ClientAuthMethod, Dialect, ScimConfig};
use scimsync_sim::duo::DuoSim;
use scimsync_sim::salesforce::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SalesforceSim};
use scimsync_store::SqlStore;
use secrecy::SecretString;
use std::time::Duration;

/// Where a story keeps its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh store: a SQLite file in `dir`, or a schema of its own (named `{schema_prefix}_…`)
/// in the PostgreSQL of `SCIMSYNC_TEST_POSTGRES_URL` (default the local test database).
/// `None` when PostgreSQL cannot be reached outside CI (the story is skipped, with a notice);
/// in CI that is a failure.
///
/// # Panics
/// When the SQLite store cannot be opened, or PostgreSQL is unreachable in CI.
pub async fn store(
    backend: Backend,
    dir: &tempfile::TempDir,
    schema_prefix: &str,
) -> Option<SqlStore> {
    match backend {
        Backend::Sqlite => Some(
            SqlStore::connect(&dir.path().join("store.db").to_string_lossy())
                .await
                .unwrap_or_else(|e| panic!("the SQLite store: {e}")),
        ),
        Backend::Postgres => {
            let base = std::env::var("SCIMSYNC_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!(
                "{base}{sep}schema={schema_prefix}_{:016x}",
                rand::random::<u64>()
            );
            match tokio::time::timeout(Duration::from_secs(5), SqlStore::connect(&url)).await {
                Ok(Ok(s)) => Some(s),
                other if std::env::var_os("CI").is_some() => {
                    panic!("PostgreSQL unreachable: {:?}", other.err())
                }
                _ => {
                    eprintln!("notice: PostgreSQL unreachable; skipping this story on PostgreSQL");
                    None
                }
            }
        }
    }
}

/// The Duo reader's configuration for the Duo emulator (defaults otherwise).
///
/// # Panics
/// When the emulator's URL does not parse (it always does).
pub fn duo_config(duo: &DuoSim) -> DuoConfig {
    DuoConfig::new(
        DuoEndpoint::BaseUrl(url::Url::parse(&duo.base_url()).unwrap_or_else(|e| panic!("{e}"))),
        duo.integration_key().to_owned(),
        SecretString::from(duo.secret_key().to_owned()),
    )
}

/// The SCIM client's configuration for the Salesforce emulator: its demo External Client App
/// by client credentials in the form body (defaults otherwise).
///
/// # Panics
/// When the emulator's URLs do not parse (they always do).
pub fn salesforce_scim_config(sf: &SalesforceSim) -> ScimConfig {
    let parse = |u: String| url::Url::parse(&u).unwrap_or_else(|e| panic!("{u}: {e}"));
    ScimConfig::new(
        parse(sf.base_url()),
        Auth::ClientCredentials {
            token_url: parse(sf.token_url()),
            client_id: DEMO_CLIENT_ID.to_owned(),
            client_secret: SecretString::from(DEMO_CLIENT_SECRET.to_owned()),
            method: ClientAuthMethod::Form,
        },
        Dialect::Salesforce,
    )
}
