//! The Duo reader against the Duo emulator: paging, faults, signatures, scale.
#![allow(clippy::unwrap_used)]

use scimsync_core::ports::{Classify as _, Disposition, Source as _};
use scimsync_core::retry::Waits;
use scimsync_core::source::{DirectoryStatus, PhoneKind};
use scimsync_directory::{DirectoryError, DuoConfig, DuoEndpoint, DuoSource, SigVersion};
use scimsync_sim::duo::{DuoSim, DuoSimConfig};
use scimsync_sim::generator::{self, DuoDataset};
use secrecy::SecretString;
use std::time::Duration;

async fn sim(dataset: DuoDataset) -> DuoSim {
    DuoSim::start(DuoSimConfig::demo(), dataset).await.unwrap()
}

fn reader(sim: &DuoSim, secret: &str, version: SigVersion) -> DuoSource {
    DuoSource::new(DuoConfig {
        sig_version: version,
        backoff_base: Duration::from_millis(5),
        ..DuoConfig::new(
            DuoEndpoint::BaseUrl(url::Url::parse(&sim.base_url()).unwrap()),
            sim.integration_key().to_owned(),
            SecretString::from(secret.to_owned()),
        )
    })
    .unwrap()
}

/// A reader with Duo's own backoff (1 s doubling up to 32 s, 7 attempts) whose waits are
/// recorded in `waits` and not slept.
fn recorded(sim: &DuoSim, waits: &Waits) -> DuoSource {
    DuoSource::new(DuoConfig::new(
        DuoEndpoint::BaseUrl(url::Url::parse(&sim.base_url()).unwrap()),
        sim.integration_key().to_owned(),
        SecretString::from(sim.secret_key().to_owned()),
    ))
    .unwrap()
    .with_waits(waits.clone())
}

/// Asserts the n-th wait lies between half and all of `wholes[n]` seconds (the backoff's
/// jitter).
fn assert_backoff(waits: &[Duration], wholes: &[u64]) {
    assert_eq!(waits.len(), wholes.len(), "{waits:?}");
    for (n, (wait, whole)) in waits.iter().zip(wholes).enumerate() {
        let whole = Duration::from_secs(*whole);
        assert!(
            (whole / 2..=whole).contains(wait),
            "wait {}: {wait:?} not within {:?}..={whole:?} ({waits:?})",
            n + 1,
            whole / 2
        );
    }
}

#[tokio::test]
async fn reads_the_sample_into_the_core_model() {
    let duo = sim(generator::sample()).await;
    for version in [SigVersion::V5, SigVersion::V2Sha512, SigVersion::V2Sha1] {
        let snapshot = reader(&duo, duo.secret_key(), version)
            .read()
            .await
            .unwrap();
        assert_eq!(snapshot.users.len(), 25, "{version:?}");
        assert_eq!(snapshot.groups.len(), 6);
        let erin = snapshot
            .users
            .iter()
            .find(|u| u.username == "erin.evans")
            .unwrap();
        assert_eq!(erin.status, DirectoryStatus::Disabled);
        let kira = snapshot
            .users
            .iter()
            .find(|u| u.username == "kira.novak")
            .unwrap();
        assert_eq!(kira.status, DirectoryStatus::LockedOut);
        let quinn = snapshot
            .users
            .iter()
            .find(|u| u.username == "quinn.reyes")
            .unwrap();
        assert_eq!(quinn.status, DirectoryStatus::PendingDeletion);
        let alice = snapshot
            .users
            .iter()
            .find(|u| u.username == "alice.anderson")
            .unwrap();
        assert_eq!(
            alice.groups.len(),
            2,
            "memberships come from the user's groups"
        );
        let ingrid = snapshot
            .users
            .iter()
            .find(|u| u.username == "ingrid.larsen")
            .unwrap();
        assert_eq!(ingrid.email, None, "Duo's empty email is no email");
        assert!(
            snapshot
                .users
                .iter()
                .any(|u| u.phones.iter().any(|p| p.kind == PhoneKind::Mobile))
        );
        assert!(snapshot.users.iter().any(|u| !u.aliases.is_empty()));
        assert!(snapshot.users.iter().any(|u| !u.custom.is_empty()));
    }
}

#[tokio::test]
async fn follows_next_offset_through_short_pages() {
    let duo = sim(generator::sample()).await;
    duo.knobs().short_pages(7);
    let snapshot = reader(&duo, duo.secret_key(), SigVersion::V5)
        .read()
        .await
        .unwrap();
    assert_eq!(
        snapshot.users.len(),
        25,
        "every user despite pages shorter than asked"
    );
    assert_eq!(duo.count("/admin/v1/users"), 4, "ceil(25 / 7) pages");
}

#[tokio::test]
async fn absorbs_429_bursts_and_a_server_error() {
    let duo = sim(generator::sample()).await;
    duo.knobs().rate_limit_next(3);
    let waits = Waits::recording();
    let snapshot = recorded(&duo, &waits).read().await.unwrap();
    assert_eq!(snapshot.users.len(), 25);
    let limited = duo.request_log().iter().filter(|r| r.status == 429).count();
    assert_eq!(limited, 3);
    assert_backoff(&waits.asked(), &[1, 2, 4]);
    duo.clear_request_log();
    duo.knobs().short_pages(10);
    duo.knobs().fail_next(1, 503);
    let waits = Waits::recording();
    assert_eq!(recorded(&duo, &waits).read().await.unwrap().users.len(), 25);
    assert_backoff(&waits.asked(), &[1]);
    let users: Vec<_> = duo
        .request_log()
        .into_iter()
        .filter(|r| r.path == "/admin/v1/users")
        .collect();
    assert_eq!(users[0].status, 503, "the emulator served the 5xx");
    assert_eq!(users[1].status, 200);
    assert_eq!(
        users[0].param("offset"),
        users[1].param("offset"),
        "the failed page is asked again, not skipped"
    );
    assert_eq!(users.len(), 4, "one retry plus ceil(25 / 10) pages");
}

#[tokio::test]
async fn a_429_that_outlasts_the_attempts_carries_duos_code_and_is_retryable() {
    let duo = sim(generator::sample()).await;
    duo.knobs().rate_limit_next(100);
    let waits = Waits::recording();
    let err = DuoSource::new(DuoConfig {
        max_attempts: 3,
        ..DuoConfig::new(
            DuoEndpoint::BaseUrl(url::Url::parse(&duo.base_url()).unwrap()),
            duo.integration_key().to_owned(),
            SecretString::from(duo.secret_key().to_owned()),
        )
    })
    .unwrap()
    .with_waits(waits.clone())
    .read()
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            DirectoryError::Api {
                status: 429,
                code: 42901,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(matches!(err.disposition(), Disposition::Retryable { .. }));
    assert_eq!(duo.count("/admin/v1/users"), 3);
    assert_backoff(&waits.asked(), &[1, 2]);
}

#[tokio::test]
async fn a_read_dropped_during_backoff_stops_at_once() {
    let duo = sim(generator::sample()).await;
    duo.knobs().fail_next(50, 502);
    let slow = DuoSource::new(DuoConfig {
        backoff_base: Duration::from_secs(30),
        ..DuoConfig::new(
            DuoEndpoint::BaseUrl(url::Url::parse(&duo.base_url()).unwrap()),
            duo.integration_key().to_owned(),
            SecretString::from(duo.secret_key().to_owned()),
        )
    })
    .unwrap();
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_millis(300), slow.read()).await;
    assert!(outcome.is_err(), "the read was still backing off");
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::task::yield_now().await;
    assert_eq!(
        duo.count("/admin/v1/users"),
        1,
        "no request after the read was dropped"
    );
}

#[tokio::test]
async fn check_with_a_wrong_secret_key_names_the_keys_in_one_request() {
    let duo = sim(generator::sample()).await;
    let err = reader(
        &duo,
        "wrong-secret-key-0000000000000000000000",
        SigVersion::V5,
    )
    .check()
    .await
    .unwrap_err();
    assert!(matches!(err, DirectoryError::Signature { .. }), "{err:?}");
    assert!(err.to_string().contains("integration key"), "{err}");
    assert!(!format!("{err:?}").contains("wrong-secret"));
    assert!(matches!(err.disposition(), Disposition::Fatal));
    assert_eq!(duo.request_log().len(), 1);
    let ok = reader(&duo, duo.secret_key(), SigVersion::V5)
        .check()
        .await
        .unwrap();
    assert_eq!(ok.total_users, Some(25));
}

#[tokio::test]
async fn gives_up_after_the_attempts_and_says_what_failed() {
    let duo = sim(generator::sample()).await;
    duo.knobs().fail_next(50, 500);
    let waits = Waits::recording();
    let err = recorded(&duo, &waits).read().await.unwrap_err();
    assert!(err.is_retryable());
    assert!(err.to_string().contains("500"), "{err}");
    assert_eq!(
        duo.count("/admin/v1/users"),
        7,
        "Duo's client makes 7 attempts"
    );
    // Duo's client's waits: 1 s doubling up to 32 s, each with jitter.
    assert_backoff(&waits.asked(), &[1, 2, 4, 8, 16, 32]);
}

#[tokio::test]
async fn a_wrong_secret_key_says_which_keys_to_check() {
    let duo = sim(generator::sample()).await;
    let err = reader(
        &duo,
        "not-the-secret-key-of-this-application0",
        SigVersion::V5,
    )
    .read()
    .await
    .unwrap_err();
    assert!(
        matches!(err, DirectoryError::Signature { code: 40103, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("secret key") && text.contains("Grant read resource"),
        "{text}"
    );
    assert!(!text.contains("not-the-secret"), "the key is never shown");
    assert_eq!(
        duo.count("/admin/v1/users"),
        1,
        "a signature error is not retried"
    );
}

#[tokio::test]
async fn an_empty_directory_is_an_error_not_everyone_leaving() {
    let duo = sim(DuoDataset {
        users: Vec::new(),
        ..generator::sample()
    })
    .await;
    let err = reader(&duo, duo.secret_key(), SigVersion::V5)
        .read()
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Empty), "{err:?}");
}

#[tokio::test]
async fn a_user_renamed_between_pages_is_read_once() {
    let duo = sim(generator::generate(1_000, 20, 3)).await;
    let last = duo
        .dataset()
        .snapshot()
        .users
        .last()
        .unwrap()
        .user_id
        .clone();
    duo.knobs().edit_after_users_page(1, move |d| {
        if let Some(u) = d.users.iter_mut().find(|u| u.user_id == last) {
            u.username = "renamed.mid.read".into();
        }
    });
    let snapshot = reader(&duo, duo.secret_key(), SigVersion::V5)
        .read()
        .await
        .unwrap();
    assert_eq!(snapshot.users.len() + snapshot.unreadable.len(), 1_000);
    assert!(
        snapshot
            .users
            .iter()
            .any(|u| u.username == "renamed.mid.read")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_100000_users_takes_ceil_100000_over_300_pages() {
    let duo = sim(generator::generate(100_000, 2_000, 11)).await;
    let snapshot = reader(&duo, duo.secret_key(), SigVersion::V5)
        .read()
        .await
        .unwrap();
    assert_eq!(snapshot.users.len() + snapshot.unreadable.len(), 100_000);
    assert_eq!(duo.count("/admin/v1/users"), 100_000usize.div_ceil(300));
    assert_eq!(snapshot.groups.len(), 2_000);
}
