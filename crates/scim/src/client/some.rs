//! Targeted reads ([`Target::read_some`](scimsync_core::ports::Target::read_some)): the users
//! and groups a [`Lookup`] names, read by filter or by id instead of listing everything.
//!
//! How the target is asked depends on what it has shown it can do ([`TargetedReads`]):
//!
//! 1. [`TargetedReads::Or`]: `GET /Users?filter=id eq "a" or id eq "b" …`, at most
//!    [`MAX_CLAUSES`] clauses and [`MAX_FILTER_BYTES`] bytes of encoded filter a request, each
//!    answer paged through (`totalResults`) when the target pages it;
//! 2. [`TargetedReads::Single`]: one clause a request (the target refused `or`);
//! 3. [`TargetedReads::ById`]: `GET /Users/{id}` per id (404: absent) and, for userNames,
//!    externalIds and displayNames, one listing of the collection matched here (the target
//!    refuses or ignores filters, or declares none).
//!
//! Without `or`, a read of more than [`MAX_CLAUSES`] keys first asks for the collection's
//! `totalResults` and lists it whole when that takes fewer requests than one per key; without
//! filters, userNames and externalIds need the listing anyway, and it answers for the ids too.
//! Requests of one kind go several at a time (the configured concurrency), after the first
//! filter of each kind alone (a target that refuses or ignores it costs one request).
//!
//! Nothing the target answers is trusted: every resource must match a key asked for (id and
//! externalId exactly, userName case-insensitively, displayName exactly); a resource that
//! matches loosely (ignoring case) but not exactly is left out. Where the target shows it
//! cannot be asked so, the client changes mode, starts the read again and keeps the new mode
//! for the rest of its life ([`ScimClient::learned_targeted_reads`]); the engine keeps it in the
//! target facts until the next discovery and gives it back to the next run's client
//! ([`ScimClient::follow_targeted_reads`]), so a refusal costs one request a day at most:
//!
//! - a resource that matches no key asked even loosely shows that the target ignores filters
//!   (Canaille 0.3.6 answers every user to any filter): `ById`, after one page;
//! - a refusal of the filter (400, 422, 501): one mode down;
//! - an id an `or` filter left out is read by id (ids are rarely absent: users are not
//!   deleted); when it exists, the target evaluated only part of the filter: `Single` (the
//!   read keeps what the GET found).

use super::{PageEnd, Paging, ScimClient, kind_of, resource_path, take_page};
use crate::config::Dialect;
use crate::error::ScimError;
use crate::resources::{group_from_json, quote};
use futures::stream::{self, StreamExt as _};
use reqwest::Method;
use scimsync_core::TargetUserId;
use scimsync_core::ports::{Lookup, UserKeys};
use scimsync_core::target::{TargetGroup, TargetSnapshot, TargetUser};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use tracing::{info, warn};

/// The most clauses one filter joins with `or`.
pub const MAX_CLAUSES: usize = 50;

/// The most bytes a filter takes in the URL, percent-encoded (most servers take URLs of 8 KiB;
/// the rest of the URL stays well under the remainder).
pub const MAX_FILTER_BYTES: usize = 4096;

/// How the client reads only some objects of the target, as learned from its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetedReads {
    /// Filters with clauses joined by `or`.
    Or,
    /// One `eq` clause a request.
    Single,
    /// No filters: by id (`GET /{collection}/{id}`), other keys by listing.
    ById,
}

impl TargetedReads {
    /// The name kept in a store: `or`, `single`, `by_id`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Or => "or",
            Self::Single => "single",
            Self::ById => "by_id",
        }
    }

    /// The mode named `text` ([`TargetedReads::as_str`]).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "or" => Some(Self::Or),
            "single" => Some(Self::Single),
            "by_id" => Some(Self::ById),
            _ => None,
        }
    }

    pub(super) fn code(self) -> u8 {
        match self {
            Self::Or => 0,
            Self::Single => 1,
            Self::ById => 2,
        }
    }

    pub(super) fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Or,
            1 => Self::Single,
            _ => Self::ById,
        }
    }

    /// The next mode down.
    fn lower(self) -> Self {
        match self {
            Self::Or => Self::Single,
            Self::Single | Self::ById => Self::ById,
        }
    }
}

/// Why the client steps down when a filter joined by `or` left out an id that exists.
const PART_OF_OR: &str = "the target left out of a filter joined by or an object that exists";

/// How group members are listed by a generic target, as learned.
pub(super) const MEMBERS_UNKNOWN: u8 = 0;
pub(super) const MEMBERS_BY_ID: u8 = 1;
pub(super) const MEMBERS_BY_VALUE: u8 = 2;

/// A read that could not be done in the mode tried.
enum Step {
    /// The target refused the filter: one mode down, and start again.
    Lower(String),
    /// The target ignored the filter (answered what was not asked): no filters from now on
    /// ([`TargetedReads::ById`]), and start again.
    Ignored(String),
    Failed(ScimError),
}

impl From<ScimError> for Step {
    fn from(e: ScimError) -> Self {
        Step::Failed(e)
    }
}

/// A key of a user: which attribute, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserKey {
    Id,
    UserName,
    ExternalId,
}

impl UserKey {
    fn attribute(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::UserName => "userName",
            Self::ExternalId => "externalId",
        }
    }

    /// Whether `user` has exactly the value `asked` (userName ignoring case).
    fn exact(self, user: &TargetUser, asked: &str) -> bool {
        match self {
            Self::Id => user.id.as_str() == asked,
            Self::UserName => user.user_name.to_lowercase() == asked.to_lowercase(),
            Self::ExternalId => user.external_id.as_deref() == Some(asked),
        }
    }

    /// Whether `user` has the value `asked` ignoring case (a filter honoured, matched more
    /// loosely than asked).
    fn loose(self, user: &TargetUser, asked: &str) -> bool {
        let value = match self {
            Self::Id => Some(user.id.as_str()),
            Self::UserName => Some(user.user_name.as_str()),
            Self::ExternalId => user.external_id.as_deref(),
        };
        value.is_some_and(|v| v.to_lowercase() == asked.to_lowercase())
    }
}

/// `values` without repeats (`fold`ed values compared), in their order.
fn distinct(values: impl IntoIterator<Item = String>, fold: bool) -> Vec<String> {
    let mut seen = HashSet::new();
    values
        .into_iter()
        .filter(|v| seen.insert(if fold { v.to_lowercase() } else { v.clone() }))
        .collect()
}

/// `values` cut into filters `attribute eq "v1" or attribute eq "v2" …` of at most
/// `max_clauses` clauses and [`MAX_FILTER_BYTES`] encoded bytes each (a single clause
/// over that bound is a filter of its own); each with the values it asks for.
pub(crate) fn or_filters(
    attribute: &str,
    values: &[String],
    max_clauses: usize,
) -> Vec<(String, Vec<String>)> {
    let encoded = |text: &str| {
        url::form_urlencoded::byte_serialize(text.as_bytes())
            .map(str::len)
            .sum::<usize>()
    };
    let joint = encoded(" or ");
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut filter = String::new();
    let mut asked: Vec<String> = Vec::new();
    let mut bytes = 0usize;
    for value in values {
        let clause = format!("{attribute} eq {}", quote(value));
        let size = encoded(&clause);
        let full = !asked.is_empty()
            && (asked.len() >= max_clauses.max(1) || bytes + joint + size > MAX_FILTER_BYTES);
        if full {
            out.push((std::mem::take(&mut filter), std::mem::take(&mut asked)));
            bytes = 0;
        }
        if !asked.is_empty() {
            filter.push_str(" or ");
            bytes += joint;
        }
        filter.push_str(&clause);
        bytes += size;
        asked.push(value.clone());
    }
    if !asked.is_empty() {
        out.push((filter, asked));
    }
    out
}

impl ScimClient {
    /// How the client reads only some objects now: `Or` until the target shows otherwise
    /// (without filter support declared: `ById`).
    pub fn targeted_reads(&self) -> TargetedReads {
        let learned = TargetedReads::from_code(self.targeted.load(Ordering::Relaxed));
        if self.follow().filter {
            learned
        } else {
            TargetedReads::ById
        }
    }

    /// The mode this client stepped down to from the target's answers, or followed
    /// ([`ScimClient::follow_targeted_reads`]); `None` while it has not left `Or`. Unlike
    /// [`ScimClient::targeted_reads`], not what the declared capabilities imply.
    pub fn learned_targeted_reads(&self) -> Option<TargetedReads> {
        match TargetedReads::from_code(self.targeted.load(Ordering::Relaxed)) {
            TargetedReads::Or => None,
            learned => Some(learned),
        }
    }

    /// Follows a mode learned earlier (kept by the engine across runs): the client never goes
    /// back up to a mode the target has refused; a lower one is taken as it is.
    pub fn follow_targeted_reads(&self, mode: TargetedReads) {
        self.targeted.fetch_max(mode.code(), Ordering::Relaxed);
    }

    fn step_down(&self, from: TargetedReads, to: TargetedReads, why: &str) {
        if self
            .targeted
            .compare_exchange(from.code(), to.code(), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            warn!(
                from = from.as_str(),
                to = to.as_str(),
                why,
                "Targeted reads step down; the engine keeps the mode until the next discovery."
            );
        }
    }

    /// The users and groups `lookup` names; those not found are absent.
    pub async fn read_some(&self, lookup: &Lookup) -> Result<TargetSnapshot, ScimError> {
        let ids = distinct(lookup.user_ids.iter().map(|i| i.to_string()), false);
        let names = distinct(lookup.user_names.iter().cloned(), true);
        let external = distinct(lookup.external_ids.iter().cloned(), false);
        let users = self.users_by(&ids, &names, &external).await?;
        let group_ids = distinct(lookup.group_ids.iter().map(|i| i.to_string()), false);
        let group_names = distinct(lookup.group_names.iter().cloned(), false);
        let mut groups = self.groups_by(&group_ids, &group_names).await?;
        if !groups.is_empty() && self.transport.dialect == Dialect::Generic {
            self.members_to_ids(&users, &mut groups).await?;
        }
        info!(
            users = users.len(),
            groups = groups.len(),
            mode = self.targeted_reads().as_str(),
            "Target read (some objects)."
        );
        Ok(TargetSnapshot {
            users,
            groups,
            ..TargetSnapshot::default()
        })
    }

    /// Users by id, userName and externalId, each once.
    async fn users_by(
        &self,
        ids: &[String],
        names: &[String],
        external: &[String],
    ) -> Result<Vec<TargetUser>, ScimError> {
        if ids.is_empty() && names.is_empty() && external.is_empty() {
            return Ok(Vec::new());
        }
        loop {
            let mode = self.targeted_reads();
            match self.users_in(mode, ids, names, external).await {
                Ok(found) => {
                    let mut seen = HashSet::new();
                    return Ok(found
                        .into_iter()
                        .filter(|u| seen.insert(u.id.to_string()))
                        .collect());
                }
                Err(Step::Lower(why)) => self.step_down(mode, mode.lower(), &why),
                Err(Step::Ignored(why)) => self.step_down(mode, TargetedReads::ById, &why),
                Err(Step::Failed(e)) => return Err(e),
            }
        }
    }

    async fn users_in(
        &self,
        mode: TargetedReads,
        ids: &[String],
        names: &[String],
        external: &[String],
    ) -> Result<Vec<TargetUser>, Step> {
        // One request per key (no `or`): a listing is cheaper when it takes fewer pages, and
        // without filters one is needed anyway for userNames and externalIds.
        let singles = match mode {
            TargetedReads::Or => 0,
            TargetedReads::Single => ids.len() + names.len() + external.len(),
            TargetedReads::ById => ids.len(),
        };
        let must_list = mode == TargetedReads::ById && (!names.is_empty() || !external.is_empty());
        if must_list || self.listing_is_cheaper("Users", singles).await? {
            let asked = UserKeys::new(
                ids.iter().map(String::as_str),
                names.iter().map(String::as_str),
                external.iter().map(String::as_str),
            );
            return Ok(self
                .list_users()
                .await?
                .into_iter()
                .filter(|u| asked.asks_for(u))
                .collect());
        }
        let keys = [
            (UserKey::Id, ids),
            (UserKey::UserName, names),
            (UserKey::ExternalId, external),
        ];
        let mut found = Vec::new();
        if mode == TargetedReads::ById {
            found.extend(self.users_by_id(ids).await?);
            return Ok(found);
        }
        let clauses = if mode == TargetedReads::Or {
            MAX_CLAUSES.min(self.follow().page_size.max(1) as usize)
        } else {
            1
        };
        for (key, values) in keys {
            if mode == TargetedReads::Single && key == UserKey::Id {
                // One clause a request: a GET by id costs the same and needs no filter.
                found.extend(self.users_by_id(values).await?);
                continue;
            }
            let mut batches = or_filters(key.attribute(), values, clauses).into_iter();
            // The first filter alone: a target that refuses or ignores it costs one request,
            // not one for each filter in flight.
            if let Some((filter, asked)) = batches.next() {
                found.extend(self.filtered_users(key, &filter, &asked).await?);
            }
            let rest: Vec<Result<Vec<TargetUser>, Step>> =
                stream::iter(batches)
                    .map(|(filter, asked)| async move {
                        self.filtered_users(key, &filter, &asked).await
                    })
                    .buffered(self.concurrency)
                    .collect()
                    .await;
            for users in rest {
                found.extend(users?);
            }
            if key == UserKey::Id && mode == TargetedReads::Or {
                let recovered = self.absent_users(values, &found).await?;
                if !recovered.is_empty() {
                    self.step_down(mode, TargetedReads::Single, PART_OF_OR);
                    found.extend(recovered);
                }
            }
        }
        Ok(found)
    }

    /// Whether listing `collection` whole takes fewer requests than `singles` requests of one
    /// object each. Asked (one request for one resource, to read `totalResults`) only when
    /// `singles` is over [`MAX_CLAUSES`].
    async fn listing_is_cheaper(
        &self,
        collection: &str,
        singles: usize,
    ) -> Result<bool, ScimError> {
        if singles <= MAX_CLAUSES {
            return Ok(false);
        }
        let page = self
            .page(collection, None, 1, 1, &format!("counting {collection}"))
            .await?;
        let Some(total) = page.get("totalResults").and_then(Value::as_u64) else {
            return Ok(false);
        };
        let page_size = u64::from(self.follow().page_size.max(1));
        let pages = total.div_ceil(page_size).max(1);
        Ok(pages < singles as u64)
    }

    /// Of `ids`, those an `or` filter did not answer (`found`), read by id: an id is rarely
    /// absent (users are not deleted), and a target that evaluates only part of a filter
    /// joined by `or` must not make present users look absent.
    async fn absent_users(
        &self,
        ids: &[String],
        found: &[TargetUser],
    ) -> Result<Vec<TargetUser>, ScimError> {
        let have: HashSet<&str> = found.iter().map(|u| u.id.as_str()).collect();
        let absent: Vec<String> = ids
            .iter()
            .filter(|i| !have.contains(i.as_str()))
            .cloned()
            .collect();
        self.users_by_id(&absent).await
    }

    /// `GET /Users/{id}` for each id, several at a time; a 404 is an absent user.
    async fn users_by_id(&self, ids: &[String]) -> Result<Vec<TargetUser>, ScimError> {
        self.each_by_id(ids, |id| async move { self.user_by_id(&id).await })
            .await
    }

    /// `read` of each id, `concurrency` at a time, the objects found in the order asked.
    async fn each_by_id<T, F, Fut>(&self, ids: &[String], read: F) -> Result<Vec<T>, ScimError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, ScimError>>,
    {
        let answers: Vec<Result<Option<T>, ScimError>> = stream::iter(ids.iter().cloned())
            .map(read)
            .buffered(self.concurrency)
            .collect()
            .await;
        let mut out = Vec::with_capacity(ids.len());
        for answer in answers {
            out.extend(answer?);
        }
        Ok(out)
    }

    /// `GET /{collection}/{id}`: the body, or `None` on a 404.
    async fn get_by_id(
        &self,
        collection: &str,
        id: &str,
        what: &str,
    ) -> Result<Option<Value>, ScimError> {
        match self
            .call(Method::GET, &resource_path(collection, id)?, None, what)
            .await
        {
            Ok(answer) => Ok(Some(answer.body)),
            Err(ScimError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /Users/{id}`: the user, or `None` on a 404 (or when the target answers a user
    /// whose userName is the id asked, as Canaille does: no user has that id).
    async fn user_by_id(&self, id: &str) -> Result<Option<TargetUser>, ScimError> {
        let what = format!("reading user {id}");
        let Some(body) = self.get_by_id("Users", id, &what).await? else {
            return Ok(None);
        };
        let user = self
            .read_user(&body, self.federation().as_ref())
            .map_err(|message| ScimError::InvalidResponse {
                what: what.clone(),
                message,
            })?;
        if user.id.as_str() == id {
            Ok(Some(user))
        } else if user.user_name.eq_ignore_ascii_case(id) {
            Ok(None)
        } else {
            Err(ScimError::InvalidResponse {
                what,
                message: format!("the target answered user {} instead", user.id),
            })
        }
    }

    /// Every resource of `collection` matching `filter`, page by page; each page is handed to
    /// `check` before the next is asked for, so an ignored filter costs one page.
    async fn filtered(
        &self,
        collection: &str,
        filter: &str,
        what: &str,
        mut check: impl FnMut(&[Value]) -> Result<(), Step>,
    ) -> Result<Vec<Value>, Step> {
        let mut out = Vec::new();
        let mut seen: HashSet<Box<str>> = HashSet::new();
        let mut start = 1usize;
        let page_size = self.follow().page_size;
        for _ in 0..self.max_pages {
            let counted = self.count.load(Ordering::Relaxed) != super::COUNT_REFUSED;
            let page = match self
                .page(collection, Some(filter), start, page_size, what)
                .await
            {
                Ok(page) => page,
                Err(ScimError::Refused {
                    status: 400 | 422,
                    code,
                    ..
                }) => {
                    return Err(Step::Lower(format!(
                        "the target refused the filter ({})",
                        code.as_deref().unwrap_or("no code")
                    )));
                }
                Err(ScimError::Server { status: 501, .. }) => {
                    return Err(Step::Lower("the target does not implement filters".into()));
                }
                Err(e) => return Err(Step::Failed(e)),
            };
            let counted = counted && self.count.load(Ordering::Relaxed) == super::COUNT_WORKS;
            let before = out.len();
            let mut take = |resource: &Value| out.push(resource.clone());
            let end = take_page(
                &page,
                &mut Paging {
                    start: &mut start,
                    seen: &mut seen,
                    take: &mut take,
                },
                counted.then_some(page_size),
                true,
                what,
            )?;
            check(&out[before..])?;
            if end == PageEnd::Done {
                return Ok(out);
            }
        }
        Err(Step::Failed(ScimError::InvalidResponse {
            what: what.to_owned(),
            message: format!(
                "paging did not end after {} pages ({} resources)",
                self.max_pages,
                out.len()
            ),
        }))
    }

    /// The users a filter on `key` asking for `asked` answers, each checked against them.
    async fn filtered_users(
        &self,
        key: UserKey,
        filter: &str,
        asked: &[String],
    ) -> Result<Vec<TargetUser>, Step> {
        let what = format!(
            "reading users by {} ({} asked, the first {:?})",
            key.attribute(),
            asked.len(),
            asked.first().map(String::as_str).unwrap_or_default()
        );
        let federation = self.federation();
        let mut users = Vec::new();
        let mut index = 0usize;
        self.filtered("Users", filter, &what, |page| {
            for v in page {
                let user = self.read_user(v, federation.as_ref()).map_err(|message| {
                    ScimError::InvalidResponse {
                        what: what.clone(),
                        message: format!("Resources[{index}]: {message}"),
                    }
                })?;
                index += 1;
                if asked.iter().any(|a| key.exact(&user, a)) {
                    users.push(user);
                } else if !asked.iter().any(|a| key.loose(&user, a)) {
                    return Err(Step::Ignored(format!(
                        "the target answered a user not asked for to a filter on {}",
                        key.attribute()
                    )));
                }
            }
            Ok(())
        })
        .await?;
        Ok(users)
    }

    /// Groups by id and by displayName (exactly), each once.
    async fn groups_by(
        &self,
        ids: &[String],
        names: &[String],
    ) -> Result<Vec<TargetGroup>, ScimError> {
        if ids.is_empty() && names.is_empty() {
            return Ok(Vec::new());
        }
        loop {
            let mode = self.targeted_reads();
            match self.groups_in(mode, ids, names).await {
                Ok(found) => {
                    let mut seen = HashSet::new();
                    return Ok(found
                        .into_iter()
                        .filter(|g| seen.insert(g.id.to_string()))
                        .collect());
                }
                Err(Step::Lower(why)) => self.step_down(mode, mode.lower(), &why),
                Err(Step::Ignored(why)) => self.step_down(mode, TargetedReads::ById, &why),
                Err(Step::Failed(e)) => return Err(e),
            }
        }
    }

    async fn groups_in(
        &self,
        mode: TargetedReads,
        ids: &[String],
        names: &[String],
    ) -> Result<Vec<TargetGroup>, Step> {
        let mut found = Vec::new();
        match mode {
            TargetedReads::Or => {
                let clauses = MAX_CLAUSES.min(self.follow().page_size.max(1) as usize);
                for (filter, asked) in or_filters("id", ids, clauses) {
                    found.extend(self.filtered_groups(false, &filter, &asked).await?);
                }
                let have: HashSet<&str> =
                    found.iter().map(|g: &TargetGroup| g.id.as_str()).collect();
                let absent: Vec<String> = ids
                    .iter()
                    .filter(|i| !have.contains(i.as_str()))
                    .cloned()
                    .collect();
                let recovered = self.groups_by_id(&absent).await?;
                if !recovered.is_empty() {
                    self.step_down(mode, TargetedReads::Single, PART_OF_OR);
                    found.extend(recovered);
                }
                for (filter, asked) in or_filters("displayName", names, clauses) {
                    found.extend(self.filtered_groups(true, &filter, &asked).await?);
                }
            }
            TargetedReads::Single => {
                found.extend(self.groups_by_id(ids).await?);
                for (filter, asked) in or_filters("displayName", names, 1) {
                    found.extend(self.filtered_groups(true, &filter, &asked).await?);
                }
            }
            TargetedReads::ById if names.is_empty() => {
                found.extend(self.groups_by_id(ids).await?);
            }
            TargetedReads::ById => {
                // Names need the listing: it answers for the ids too.
                let names: HashSet<&str> = names.iter().map(String::as_str).collect();
                let ids: HashSet<&str> = ids.iter().map(String::as_str).collect();
                found.extend(self.list_groups().await?.into_iter().filter(|g| {
                    ids.contains(g.id.as_str()) || names.contains(g.display_name.as_str())
                }));
            }
        }
        Ok(found)
    }

    /// `GET /Groups/{id}` for each id, with its members, several at a time; a 404 is an
    /// absent group.
    async fn groups_by_id(&self, ids: &[String]) -> Result<Vec<TargetGroup>, ScimError> {
        self.each_by_id(ids, |id| async move { self.group_by_id(&id).await })
            .await
    }

    async fn group_by_id(&self, id: &str) -> Result<Option<TargetGroup>, ScimError> {
        let what = format!("reading group {id}");
        let Some(body) = self.get_by_id("Groups", id, &what).await? else {
            return Ok(None);
        };
        if !body.is_object() {
            return Err(ScimError::InvalidResponse {
                what,
                message: format!("the group read is {}, not an object", kind_of(&body)),
            });
        }
        let group = group_from_json(&body).map_err(|message| ScimError::InvalidResponse {
            what: what.clone(),
            message,
        })?;
        if group.id.as_str() != id {
            return Err(ScimError::InvalidResponse {
                what,
                message: format!("the target answered group {} instead", group.id),
            });
        }
        Ok(Some(group))
    }

    /// The groups a filter on id or displayName (`by_name`) answers, checked against `asked`.
    async fn filtered_groups(
        &self,
        by_name: bool,
        filter: &str,
        asked: &[String],
    ) -> Result<Vec<TargetGroup>, Step> {
        let attribute = if by_name { "displayName" } else { "id" };
        let what = format!(
            "reading groups by {attribute} ({} asked, the first {:?})",
            asked.len(),
            asked.first().map(String::as_str).unwrap_or_default()
        );
        let mut groups = Vec::new();
        let mut index = 0usize;
        self.filtered("Groups", filter, &what, |page| {
            for v in page {
                let group = group_from_json(v).map_err(|message| ScimError::InvalidResponse {
                    what: what.clone(),
                    message: format!("Resources[{index}]: {message}"),
                })?;
                index += 1;
                let value = if by_name {
                    group.display_name.as_str()
                } else {
                    group.id.as_str()
                };
                if asked.iter().any(|a| a == value) {
                    groups.push(group);
                } else if !asked
                    .iter()
                    .any(|a| a.to_lowercase() == value.to_lowercase())
                {
                    return Err(Step::Ignored(format!(
                        "the target answered a group not asked for to a filter on {attribute}"
                    )));
                }
            }
            Ok(())
        })
        .await?;
        Ok(groups)
    }

    /// Members listed by a value that is not a user id (servers that list members by
    /// userName, as Canaille does) are read as that user's id, as a whole read does. Values
    /// seen before are mapped from what the client learned; the others are looked up as users
    /// by id and by userName. Until the target is known to list members by id, one unknown
    /// value is looked up first: when it is a user's id, the target lists by id and nothing
    /// more is asked (now or later).
    async fn members_to_ids(
        &self,
        users: &[TargetUser],
        groups: &mut [TargetGroup],
    ) -> Result<(), ScimError> {
        let known_ids: HashSet<String> = users.iter().map(|u| u.id.to_string()).collect();
        let mut by_value: HashMap<String, String> = {
            let listed = self
                .member_values
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            listed
                .iter()
                .map(|(id, value)| (value.to_lowercase(), id.clone()))
                .collect()
        };
        for u in users.iter() {
            by_value
                .entry(u.user_name.as_str().to_lowercase())
                .or_insert_with(|| u.id.to_string());
        }
        let unknown = |by_value: &HashMap<String, String>| -> Vec<String> {
            let mut out: BTreeMap<String, String> = BTreeMap::new();
            for g in groups.iter() {
                for m in &g.members {
                    let v = m.as_str();
                    if !known_ids.contains(v) && !by_value.contains_key(&v.to_lowercase()) {
                        out.entry(v.to_lowercase()).or_insert_with(|| v.to_owned());
                    }
                }
            }
            out.into_values().collect()
        };
        let missing = unknown(&by_value);
        let listed = self.members_listed.load(Ordering::Relaxed);
        if listed != MEMBERS_BY_ID && !missing.is_empty() {
            let sample = &missing[..1];
            let sampled = listed == MEMBERS_UNKNOWN && self.targeted_reads() != TargetedReads::ById;
            let found = if listed == MEMBERS_BY_VALUE {
                self.users_by(&[], &missing, &[]).await?
            } else if sampled {
                self.users_by(sample, sample, &[]).await?
            } else {
                // Names are found by listing: one listing answers for every value.
                self.users_by(sample, &missing, &[]).await?
            };
            if listed == MEMBERS_UNKNOWN {
                let by_id = found.iter().any(|u| u.id.as_str() == sample[0]);
                self.members_listed.store(
                    if by_id {
                        MEMBERS_BY_ID
                    } else {
                        MEMBERS_BY_VALUE
                    },
                    Ordering::Relaxed,
                );
            }
            if self.members_listed.load(Ordering::Relaxed) == MEMBERS_BY_VALUE {
                self.learn_member_values(&found, &missing, &mut by_value);
                let rest = unknown(&by_value);
                if sampled && !rest.is_empty() {
                    let more = self.users_by(&[], &rest, &[]).await?;
                    self.learn_member_values(&more, &rest, &mut by_value);
                }
            }
        }
        // Every value read as an id is remembered (also those answered by the users read
        // alongside): a removal must name the member as the target lists it.
        let mut listed = self
            .member_values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for g in groups.iter_mut() {
            for m in &mut g.members {
                if known_ids.contains(m.as_str()) {
                    continue;
                }
                if let Some(id) = by_value.get(&m.as_str().to_lowercase()) {
                    listed.insert(id.clone(), m.to_string());
                    *m = TargetUserId::from(id.clone());
                }
            }
        }
        Ok(())
    }

    /// Remembers, of the users `found` for member values `values`, which value names which
    /// user (by userName), for removals and later reads.
    fn learn_member_values(
        &self,
        found: &[TargetUser],
        values: &[String],
        by_value: &mut HashMap<String, String>,
    ) {
        let mut listed = self
            .member_values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for v in values {
            if let Some(u) = found.iter().find(|u| u.user_name.eq_ignore_ascii_case(v)) {
                listed.insert(u.id.to_string(), v.clone());
                by_value.insert(v.to_lowercase(), u.id.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_cut_by_clauses_and_by_bytes_and_values_escaped() {
        let values: Vec<String> = (0..120).map(|i| format!("u{i}")).collect();
        let filters = or_filters("id", &values, 50);
        assert_eq!(
            filters.iter().map(|(_, a)| a.len()).collect::<Vec<_>>(),
            [50, 50, 20]
        );
        assert!(filters[0].0.starts_with(r#"id eq "u0" or id eq "u1" or "#));
        let long: Vec<String> = (0..50).map(|i| format!("{i}{}", "x".repeat(300))).collect();
        let filters = or_filters("userName", &long, 50);
        assert!(filters.len() > 1);
        for (f, _) in &filters {
            let bytes: usize = url::form_urlencoded::byte_serialize(f.as_bytes())
                .map(str::len)
                .sum();
            assert!(bytes <= MAX_FILTER_BYTES, "{bytes}");
        }
        let odd = vec![r#"a"b\c"#.to_owned()];
        assert_eq!(
            or_filters("userName", &odd, 50)[0].0,
            r#"userName eq "a\"b\\c""#
        );
    }

    #[test]
    fn modes_are_named_for_the_store_and_only_go_down() {
        for m in [
            TargetedReads::Or,
            TargetedReads::Single,
            TargetedReads::ById,
        ] {
            assert_eq!(TargetedReads::parse(m.as_str()), Some(m));
            assert_eq!(TargetedReads::from_code(m.code()), m);
        }
        assert_eq!(TargetedReads::Or.lower(), TargetedReads::Single);
        assert_eq!(TargetedReads::ById.lower(), TargetedReads::ById);
        assert_eq!(TargetedReads::parse("and"), None);
    }
}
