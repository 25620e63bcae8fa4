//! Fault knobs: short pages, 429 bursts, 5xx bursts, latency, and dataset edits scheduled
//! between pages of a users read.

use std::sync::Arc;
use std::time::Duration;

use crate::generator::DuoDataset;

use super::Shared;

/// A dataset edit run after a given list page.
pub(crate) type ScheduledEdit = Box<dyn FnOnce(&mut DuoDataset) + Send>;

/// The full lists whose pages can trigger a scheduled edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PagedList {
    /// `GET /admin/v1/users` without filters.
    Users,
    /// `GET /admin/v1/groups` without filters.
    Groups,
}

/// The knobs' current settings.
#[derive(Default)]
pub(crate) struct KnobState {
    /// Most rows any list page returns, below the asked `limit`.
    pub(crate) short_page: Option<usize>,
    /// Requests still to be answered 429.
    pub(crate) rate_limited: u32,
    /// Requests still to be answered with `fail_status`.
    pub(crate) failing: u32,
    pub(crate) fail_status: u16,
    /// Delay before every answer.
    pub(crate) latency: Duration,
    /// Full users-list pages served so far.
    pub(crate) users_pages_served: usize,
    /// Full groups-list pages served so far.
    pub(crate) groups_pages_served: usize,
    /// Edits to run once that list's pages served reach the number.
    pub(crate) scheduled: Vec<(PagedList, usize, ScheduledEdit)>,
}

impl std::fmt::Debug for KnobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnobState")
            .field("short_page", &self.short_page)
            .field("rate_limited", &self.rate_limited)
            .field("failing", &self.failing)
            .field("fail_status", &self.fail_status)
            .field("latency", &self.latency)
            .field("users_pages_served", &self.users_pages_served)
            .field("groups_pages_served", &self.groups_pages_served)
            .field("scheduled", &self.scheduled.len())
            .finish()
    }
}

/// Turns faults on and off on a running [`DuoSim`](super::DuoSim). Cheap to clone; changes
/// apply to the next request.
#[derive(Clone)]
pub struct DuoKnobs {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for DuoKnobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DuoKnobs")
            .field(&*self.shared.knobs())
            .finish()
    }
}

impl DuoKnobs {
    /// Every list page returns at most `rows` rows (at least 1), whatever `limit` asked, with
    /// `next_offset` still correct: readers must follow `next_offset`, not count rows.
    pub fn short_pages(&self, rows: usize) -> &Self {
        self.shared.knobs().short_page = Some(rows.max(1));
        self
    }

    /// Pages hold as many rows as `limit` asks (up to the endpoint's maximum) again.
    pub fn full_pages(&self) -> &Self {
        self.shared.knobs().short_page = None;
        self
    }

    /// The next `count` requests (after signature checks) get HTTP 429 with code 42901 and
    /// no `Retry-After`, as Duo does.
    pub fn rate_limit_next(&self, count: u32) -> &Self {
        self.shared.knobs().rate_limited = count;
        self
    }

    /// The next `count` requests (after signature checks and any 429s) get `status`
    /// (500..=599; anything else becomes 500) with code `status * 100 + 1`, e.g. 50001.
    pub fn fail_next(&self, count: u32, status: u16) -> &Self {
        let mut knobs = self.shared.knobs();
        knobs.failing = count;
        knobs.fail_status = if (500..=599).contains(&status) {
            status
        } else {
            500
        };
        self
    }

    /// Every answer waits `delay` first (tokio time, so paused-time tests stay instant).
    pub fn latency(&self, delay: Duration) -> &Self {
        self.shared.knobs().latency = delay;
        self
    }

    /// Runs `edit` on the dataset right after the `page`-th full `GET /admin/v1/users` page
    /// from now has been answered (1 = after the next page). Use it to insert a user at the
    /// front (offsets shift), rename or disable a user mid-read, and so on.
    pub fn edit_after_users_page(
        &self,
        page: usize,
        edit: impl FnOnce(&mut DuoDataset) + Send + 'static,
    ) -> &Self {
        let mut knobs = self.shared.knobs();
        let at = knobs.users_pages_served + page.max(1);
        knobs.scheduled.push((PagedList::Users, at, Box::new(edit)));
        self
    }

    /// Runs `edit` on the dataset right after the `page`-th full `GET /admin/v1/groups` page
    /// from now has been answered (1 = after the next page): a group renamed, added at the
    /// front or deleted mid-read.
    pub fn edit_after_groups_page(
        &self,
        page: usize,
        edit: impl FnOnce(&mut DuoDataset) + Send + 'static,
    ) -> &Self {
        let mut knobs = self.shared.knobs();
        let at = knobs.groups_pages_served + page.max(1);
        knobs
            .scheduled
            .push((PagedList::Groups, at, Box::new(edit)));
        self
    }

    /// Turns every fault off and drops scheduled edits.
    pub fn reset(&self) -> &Self {
        let mut knobs = self.shared.knobs();
        *knobs = KnobState {
            users_pages_served: knobs.users_pages_served,
            groups_pages_served: knobs.groups_pages_served,
            ..KnobState::default()
        };
        self
    }
}
