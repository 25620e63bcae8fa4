//! The store's lease around a run: one run per connection, whether a daemon or a one-shot
//! `scimsync reconcile` starts it.
//!
//! [`take`] takes the lease (or says who holds it), marks the runs a dead holder left
//! `running` as abandoned, and renews the lease in the background every third of its time to
//! live. When a renewal finds the lease taken by someone else, or cannot reach the store for
//! long enough that the lease may have expired, the run's cancellation token is cancelled with
//! the reason: the run starts no new operation and ends `interrupted`, saying why.

use crate::clock::now;
use crate::run::StopReason;
use scimsync_core::Timestamp;
use scimsync_core::ports::{LeaseHolder, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

/// Told of each renewal of a lease: `true` when it was renewed, `false` when the store failed
/// (for `/readyz`: a renewal that keeps failing).
pub type RenewalHook = Arc<dyn Fn(bool) + Send + Sync>;

/// The default time to live of a lease (renewed every third of it while the run lasts).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(120);

/// The lease of a connection, held by this process while a run lasts.
#[derive(Debug)]
pub struct HeldLease<St: Store + 'static> {
    store: Arc<St>,
    connection: String,
    holder: String,
    cancel: CancellationToken,
    reason: StopReason,
    stop_renewing: CancellationToken,
    renewer: JoinHandle<()>,
}

/// The lease could not be taken: someone else holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseBusy {
    /// Who holds it, since when and until when (`None`: released in the meantime).
    pub holder: Option<LeaseHolder>,
}

impl std::fmt::Display for LeaseBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.holder {
            Some(h) => write!(
                f,
                "held by {} since {} (until {} unless renewed)",
                h.holder, h.acquired_at, h.expires_at
            ),
            None => f.write_str("held by another run (released since)"),
        }
    }
}

/// Takes the lease of `connection` for `holder`. On success the runs left `running` by a dead
/// holder are marked abandoned, and the lease is renewed until [`HeldLease::release`]; the
/// returned lease's [`HeldLease::cancel`] (a child of `parent`) is cancelled when the lease is
/// lost.
pub async fn take<St: Store + 'static>(
    store: &Arc<St>,
    connection: &str,
    holder: &str,
    ttl: Duration,
    parent: &CancellationToken,
) -> Result<Result<HeldLease<St>, LeaseBusy>, St::Error> {
    take_watched(store, connection, holder, ttl, parent, None).await
}

/// [`take`], telling `hook` of each renewal.
pub async fn take_watched<St: Store + 'static>(
    store: &Arc<St>,
    connection: &str,
    holder: &str,
    ttl: Duration,
    parent: &CancellationToken,
    hook: Option<RenewalHook>,
) -> Result<Result<HeldLease<St>, LeaseBusy>, St::Error> {
    let taken_at = now();
    if !store
        .acquire_lease(connection, holder, taken_at, ttl)
        .await?
    {
        let holder = store.lease_holder(connection).await?;
        return Ok(Err(LeaseBusy { holder }));
    }
    store
        .abandon_runs(
            connection,
            taken_at,
            taken_at,
            "abandoned: the process running it stopped without finishing (its lease expired)",
        )
        .await?;
    let cancel = parent.child_token();
    let reason = StopReason::default();
    let stop_renewing = CancellationToken::new();
    let renewer = tokio::spawn(renew(
        Arc::clone(store),
        connection.to_owned(),
        holder.to_owned(),
        ttl,
        taken_at,
        cancel.clone(),
        reason.clone(),
        stop_renewing.clone(),
        hook,
    ));
    Ok(Ok(HeldLease {
        store: Arc::clone(store),
        connection: connection.to_owned(),
        holder: holder.to_owned(),
        cancel,
        reason,
        stop_renewing,
        renewer,
    }))
}

#[allow(clippy::too_many_arguments)]
async fn renew<St: Store + 'static>(
    store: Arc<St>,
    connection: String,
    holder: String,
    ttl: Duration,
    taken_at: Timestamp,
    cancel: CancellationToken,
    reason: StopReason,
    stop: CancellationToken,
    hook: Option<RenewalHook>,
) {
    let mut renewed_at = taken_at;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(ttl / 3) => {}
        }
        let at = now();
        let renewed = store.acquire_lease(&connection, &holder, at, ttl).await;
        if let Some(hook) = &hook {
            hook(renewed.is_ok());
        }
        let lost = match renewed {
            Ok(true) => {
                renewed_at = at;
                None
            }
            Ok(false) => {
                let by = match store.lease_holder(&connection).await {
                    Ok(Some(h)) => format!(" by {}", h.holder),
                    _ => String::new(),
                };
                Some(format!(
                    "the lease of connection {connection} was taken{by} (this run could not renew it in time)"
                ))
            }
            Err(e) => {
                let silent_ms = at.millis().saturating_sub(renewed_at.millis());
                let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
                warn!(connection = %connection, error = %crate::run::chain(&e), "Renewing the lease failed.");
                // Past two thirds of the time to live without a renewal, the lease may expire
                // before the next try: stop while it still holds.
                (silent_ms.saturating_mul(3) >= ttl_ms.saturating_mul(2)).then(|| {
                    format!(
                        "the lease of connection {connection} could not be renewed for {}s (the store failed: {})",
                        silent_ms / 1000,
                        crate::run::chain(&e)
                    )
                })
            }
        };
        if let Some(why) = lost {
            error!(connection = %connection, reason = %why, "Lease lost: the run stops applying.");
            reason.set(why);
            cancel.cancel();
            return;
        }
    }
}

impl<St: Store + 'static> HeldLease<St> {
    /// Cancelled on shutdown (the parent) or when the lease is lost: give it to the run.
    pub fn cancel(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Why the run was stopped, when the lease was lost: give it to the run.
    pub fn reason(&self) -> StopReason {
        self.reason.clone()
    }

    /// Whether the lease was lost during the run.
    pub fn lost(&self) -> Option<String> {
        self.reason.get().map(str::to_owned)
    }

    /// Stops renewing and releases the lease (a failed release is logged: it expires by itself).
    pub async fn release(self) {
        self.stop_renewing.cancel();
        let _ = self.renewer.await;
        if self.reason.get().is_some() {
            return;
        }
        if let Err(e) = self
            .store
            .release_lease(&self.connection, &self.holder)
            .await
        {
            warn!(connection = %self.connection, error = %crate::run::chain(&e), "Releasing the lease failed; it expires by itself.");
        }
    }
}
