//! Convergence stories: the engine against both readings of the points Salesforce leaves
//! unconfirmed (the emulator's default reading, and the strict one with `/Entitlements` and
//! `/Roles` served, since governance needs them). Duo emulator → real Duo reader → engine →
//! real SCIM client → Salesforce emulator, with the store on SQLite (and PostgreSQL for the
//! main story).
//!
//! Run with `--no-capture` to see the measured request counts (`eprintln!`): the main story's
//! line `figures [...]` gives the requests of run 1, run 2 and run 10 for each reading.
#![allow(clippy::unwrap_used)]

use scimsync_core::links::{Links, member_attribute};
use scimsync_core::policy::{
    Governance, GroupRuleSpec, Policy, RuleSpec, Safety, Scope, SourceAttribute, TargetKind,
};
use scimsync_core::ports::Store as _;
use scimsync_directory::DuoSource;
use scimsync_engine::{Connection, RetryRefused, RunOptions, RunReport, reconcile_once};
use scimsync_scim::{ScimClient, ScimConfig};
use scimsync_sim::duo::{DuoSim, DuoSimConfig};
use scimsync_sim::generator::{self, DuoDataset, DuoGroup, DuoUser};
use scimsync_sim::salesforce::{LoggedRequest, Reading, SalesforceConfig, SalesforceSim, SimUser};
use scimsync_store::SqlStore;
use scimsync_tests::{Backend, duo_config, salesforce_scim_config, store};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const SALES: &str = "DGSAMPLE000000000001";
const CHATTER_FREE: &str = "Chatter Free User";

/// Which reading of the unconfirmed points the Salesforce emulator plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    /// `SalesforceConfig::demo()`: the reading the engine was written against.
    Demo,
    /// `Reading::strict()` with `/Entitlements` and `/Roles` served.
    Strict,
}

impl Flavor {
    fn reading(self) -> Reading {
        match self {
            Flavor::Demo => Reading::default(),
            Flavor::Strict => Reading {
                catalogue_endpoints: true,
                ..Reading::strict()
            },
        }
    }
    fn config(self, tweak: impl FnOnce(&mut Reading)) -> SalesforceConfig {
        let mut reading = self.reading();
        tweak(&mut reading);
        SalesforceConfig {
            reading,
            ..SalesforceConfig::demo()
        }
    }
}

struct World {
    duo: DuoSim,
    sf: SalesforceSim,
    conn: Connection<DuoSource, ScimClient>,
    store: SqlStore,
    _dir: tempfile::TempDir,
}

/// Requests the Salesforce emulator saw in a span of its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Requests {
    reads: usize,
    writes: usize,
    tokens: usize,
}

impl std::fmt::Display for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests ({} reads, {} writes, {} token)",
            self.reads + self.writes + self.tokens,
            self.reads,
            self.writes,
            self.tokens
        )
    }
}

fn is_write(r: &LoggedRequest) -> bool {
    r.path.starts_with("/services/scim/") && r.method != "GET"
}

/// The writes of `log` by method and resource, with their statuses, and how many carried
/// federationIdentifier: what a failed "nothing to write" assertion shows.
fn writes_summary(log: &[LoggedRequest]) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for r in log.iter().filter(|r| is_write(r)) {
        let resource = r
            .path
            .trim_start_matches("/services/scim/v2/")
            .split(['/', '?'])
            .next()
            .unwrap_or_default();
        let fed = if r.body.contains("federationIdentifier") {
            " carrying federationIdentifier"
        } else {
            ""
        };
        *by.entry(format!("{} {resource}{fed} -> {}", r.method, r.status))
            .or_default() += 1;
    }
    format!("{by:?}")
}

fn rule(profile: &str, sets: &[&str], role: Option<&str>) -> RuleSpec {
    RuleSpec {
        profile: profile.to_owned(),
        permission_sets: sets.iter().map(|s| (*s).to_owned()).collect(),
        role: role.map(str::to_owned),
    }
}

fn group_rule(group: &str, priority: u32, rule: RuleSpec) -> GroupRuleSpec {
    GroupRuleSpec {
        groups: vec![group.to_owned()],
        priority,
        rule,
    }
}

fn base_policy(scope: Scope, baseline: RuleSpec, group_rules: Vec<GroupRuleSpec>) -> Policy {
    let mut policy = Policy {
        target_kind: TargetKind::Salesforce,
        scope,
        governance: Governance {
            baseline: Some(baseline),
            group_rules,
            authoritative_permission_sets: false,
            profiles_without_groups: Vec::new(),
        },
        safety: Safety {
            max_deactivations: Some(50),
            max_deactivation_percent: Some(50.0),
        },
        ..Policy::default()
    };
    policy.mapping.title = Some(SourceAttribute::Custom("title".into()));
    policy
}

/// The stories.rs policy over the sample directory.
fn sample_policy() -> Policy {
    base_policy(
        Scope::Groups(
            [
                "Sales",
                "Support",
                "Engineering",
                "Sales Managers",
                "Contractors",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        ),
        rule("Standard User", &["Knowledge Author"], None),
        vec![
            group_rule(
                "Sales Managers",
                1,
                rule(
                    "Standard User",
                    &["Sales Cloud User", "Reports Builder"],
                    Some("VP Sales"),
                ),
            ),
            group_rule(
                "Sales",
                2,
                rule("Standard User", &["Sales Cloud User"], Some("Sales Rep")),
            ),
            group_rule(
                "Engineering",
                3,
                rule("System Administrator", &[], Some("Engineer")),
            ),
        ],
    )
}

/// Governance over a generated directory: profiles, permission sets and roles by department.
fn generated_policy() -> Policy {
    base_policy(
        Scope::All,
        rule("Standard User", &["Knowledge Author"], None),
        vec![
            group_rule(
                "Sales",
                1,
                rule(
                    "Standard User",
                    &["Sales Cloud User", "Reports Builder"],
                    Some("Sales Rep"),
                ),
            ),
            group_rule(
                "Support",
                2,
                rule(
                    "Standard User",
                    &["Service Cloud User"],
                    Some("Support Agent"),
                ),
            ),
            group_rule(
                "Engineering",
                3,
                rule("System Administrator", &["API Access"], Some("Engineer")),
            ),
            group_rule("Marketing", 4, rule("Marketing User", &[], None)),
        ],
    )
}

/// A SCIM client of the emulator, as a new process makes it.
fn client(sf: &SalesforceSim) -> ScimClient {
    ScimClient::new(ScimConfig {
        requests_per_second: 1_000,
        backoff_base: Duration::from_millis(10),
        ..salesforce_scim_config(sf)
    })
    .unwrap()
}

async fn world(
    backend: Backend,
    data: DuoDataset,
    sf: SalesforceConfig,
    policy: Policy,
) -> Option<World> {
    let dir = tempfile::tempdir().unwrap();
    let store = store(backend, &dir, "conv").await?;
    let duo = DuoSim::start(DuoSimConfig::demo(), data).await.unwrap();
    let sf = SalesforceSim::start(sf).await.unwrap();
    let source = DuoSource::new(duo_config(&duo)).unwrap();
    let target = client(&sf);
    Some(World {
        duo,
        sf,
        conn: Connection {
            name: "salesforce".into(),
            source,
            target,
            policy,
        },
        store,
        _dir: dir,
    })
}

impl World {
    async fn run(&self) -> RunReport {
        self.run_with(RunOptions::default()).await
    }
    async fn run_with(&self, opts: RunOptions) -> RunReport {
        reconcile_once(&self.conn, &self.store, &opts)
            .await
            .unwrap()
    }
    /// The length of the Salesforce emulator's request log: a mark to count from.
    fn mark(&self) -> usize {
        self.sf.inspect().request_log().len()
    }
    fn since(&self, mark: usize) -> Vec<LoggedRequest> {
        self.sf.inspect().request_log().split_off(mark)
    }
    fn requests_since(&self, mark: usize) -> Requests {
        let log = self.since(mark);
        Requests {
            reads: log
                .iter()
                .filter(|r| r.path.starts_with("/services/scim/") && r.method == "GET")
                .count(),
            writes: log.iter().filter(|r| is_write(r)).count(),
            tokens: log
                .iter()
                .filter(|r| r.path.starts_with("/services/oauth2/"))
                .count(),
        }
    }
    fn writes_since(&self, mark: usize) -> String {
        writes_summary(&self.since(mark))
    }
    /// Runs once and returns the report with the requests the run sent.
    async fn measured_run(&self) -> (RunReport, Requests) {
        let mark = self.mark();
        let report = self.run().await;
        (report, self.requests_since(mark))
    }
    async fn links(&self) -> Links {
        self.store.load_links("salesforce").await.unwrap()
    }
    fn duo_id(&self, username: &str) -> String {
        self.duo
            .dataset()
            .snapshot()
            .users
            .iter()
            .find(|u| u.username == username)
            .map(|u| u.user_id.clone())
            .unwrap()
    }
    fn sf_user(&self, user_name: &str) -> SimUser {
        self.sf
            .inspect()
            .user_by_name(user_name)
            .unwrap_or_else(|| panic!("{user_name} not on Salesforce"))
    }
    /// Salesforce accounts by externalId (the Duo user id).
    fn accounts(&self) -> BTreeMap<String, SimUser> {
        self.sf
            .inspect()
            .users()
            .into_iter()
            .filter_map(|u| u.external_id.clone().map(|e| (e, u)))
            .collect()
    }
    /// The Salesforce ids of the Duo members of `group_id` that have an active account.
    fn active_members_of(&self, group_id: &str) -> BTreeSet<String> {
        let accounts = self.accounts();
        self.duo
            .dataset()
            .snapshot()
            .users
            .iter()
            .filter(|u| u.groups.iter().any(|g| g == group_id))
            .filter_map(|u| accounts.get(&u.user_id))
            .filter(|a| a.active)
            .map(|a| a.id.clone())
            .collect()
    }
    fn sf_members(&self, name: &str) -> BTreeSet<String> {
        self.sf
            .inspect()
            .group_by_name(name)
            .unwrap_or_else(|| panic!("group {name} not on Salesforce"))
            .members
            .into_iter()
            .collect()
    }
    async fn finish(self) {
        let _ = self.store.close_and_drop_schema().await;
    }
}

/// The sample directory under the stories.rs policy, against `flavor`'s reading as it is.
async fn sample_world(backend: Backend, flavor: Flavor) -> Option<World> {
    world(
        backend,
        generator::sample(),
        flavor.config(|_| {}),
        sample_policy(),
    )
    .await
}

/// Duo groups that are on Salesforce (by name).
fn provisioned_groups(w: &World, data: &DuoDataset) -> Vec<DuoGroup> {
    let names: BTreeSet<String> =
        w.sf.inspect()
            .groups()
            .into_iter()
            .map(|g| g.display_name)
            .collect();
    data.groups
        .iter()
        .filter(|g| names.contains(&g.name))
        .cloned()
        .collect()
}

/// Duo groups that a policy can name and that reach Salesforce: active, name within 40.
fn usable_groups(data: &DuoDataset) -> Vec<&DuoGroup> {
    data.groups
        .iter()
        .filter(|g| g.status == "active" && g.name.len() <= 40)
        .collect()
}

fn members_in_duo(data: &DuoDataset, group_id: &str) -> usize {
    data.users
        .iter()
        .filter(|u| u.groups.iter().any(|g| g == group_id))
        .count()
}

// ---------------------------------------------------------------------------------------
// 1. Initial sync, then quiet runs.

async fn initial_sync_then_quiet_runs(backend: Backend, flavor: Flavor, users: usize) {
    let data = generator::generate(users, 20, 20_250_101);
    for name in ["Sales", "Support", "Engineering", "Marketing"] {
        assert!(
            usable_groups(&data).iter().any(|g| g.name == name),
            "the generated directory has a usable group {name}"
        );
    }
    let Some(w) = world(backend, data, flavor.config(|_| {}), generated_policy()).await else {
        return;
    };
    let started = Instant::now();
    let (first, run1) = w.measured_run().await;
    let run1_time = started.elapsed();
    assert_eq!(first.failed, 0, "{:?} {:?}", first.message, first.status);
    assert!(first.plan.rejected.len() >= 5, "the planted bad records");

    // Converged as far as the target allows: every account the plan created is there, and
    // every usable group holds exactly its members with an active account.
    let accounts = w.accounts();
    let created = first
        .plan
        .operations
        .iter()
        .filter(|op| op.kind() == "create_user")
        .count();
    assert!(
        created > users * 8 / 10,
        "{created} accounts planned of {users}"
    );
    assert_eq!(
        accounts.len() + usize::try_from(first.refused).unwrap(),
        created,
        "every planned account is on Salesforce or held as refused"
    );
    let snapshot = w.duo.dataset().snapshot();
    let mut groups_checked = 0;
    for g in provisioned_groups(&w, &snapshot) {
        let expected = w.active_members_of(&g.group_id);
        assert_eq!(w.sf_members(&g.name), expected, "members of {}", g.name);
        groups_checked += 1;
    }
    assert!(groups_checked >= 15);
    let sales_rep = w.sf.catalogue_id("Sales Rep");
    let sales = snapshot.group_named("Sales").unwrap();
    let a_seller = snapshot
        .users
        .iter()
        .filter(|u| u.groups.contains(&sales.group_id))
        .find_map(|u| accounts.get(&u.user_id))
        .unwrap();
    assert_eq!(a_seller.role, sales_rep, "the Sales rule's role");
    assert!(
        accounts.values().any(|a| a.title.is_some()),
        "title is mapped"
    );

    // The second run, and the tenth: nothing to write, nothing refused.
    let mark = w.mark();
    let (second, run2) = w.measured_run().await;
    assert_eq!(
        run2.writes,
        0,
        "the second run writes nothing; it wrote {}",
        w.writes_since(mark)
    );
    assert!(
        second.plan.operations.is_empty(),
        "{:?}",
        second.plan.operations
    );
    assert_eq!(second.refused, 0);
    assert_eq!(second.failed, 0);
    let mut run10 = run2;
    let mut tenth = second;
    for _ in 3..=10 {
        let mark = w.mark();
        (tenth, run10) = w.measured_run().await;
        assert_eq!(
            run10.writes,
            0,
            "a quiet run writes nothing; it wrote {}",
            w.writes_since(mark)
        );
        assert_eq!(tenth.refused, 0);
    }
    assert!(tenth.plan.operations.is_empty());
    eprintln!(
        "figures [{flavor:?} reading, {backend:?}, {users} users]: run 1 {run1} in {:.1}s, {} accounts, {} refused; \
         run 2 {run2}; run 10 {run10}; held in run 10: {}",
        run1_time.as_secs_f64(),
        accounts.len(),
        first.refused,
        tenth.held
    );
    w.finish().await;
}

// ---------------------------------------------------------------------------------------
// 2. Members are not blocked by a refusing neighbour.

async fn members_not_blocked_by_a_refusing_neighbour(backend: Backend, flavor: Flavor) {
    let data = generator::generate(500, 10, 7);
    let usable = usable_groups(&data);
    // The Chatter Free rule: a usable group other than the big one.
    let mut by_size: Vec<&DuoGroup> = usable.clone();
    by_size.sort_by_key(|g| std::cmp::Reverse(members_in_duo(&data, &g.group_id)));
    let big = by_size[0].clone();
    let chatter = by_size[1].clone();
    assert!(members_in_duo(&data, &big.group_id) > 100);
    let policy = base_policy(
        Scope::All,
        rule("Standard User", &["Knowledge Author"], None),
        vec![group_rule(&chatter.name, 1, rule(CHATTER_FREE, &[], None))],
    );
    let Some(w) = world(backend, data, flavor.config(|_| {}), policy).await else {
        return;
    };
    let (first, run1) = w.measured_run().await;
    assert_eq!(first.failed, 0, "{:?}", first.message);
    let chatter_free = w.sf.catalogue_id(CHATTER_FREE).unwrap();
    let accounts = w.accounts();
    let refusing: BTreeSet<String> = accounts
        .values()
        .filter(|a| a.profile.as_deref() == Some(chatter_free.as_str()))
        .map(|a| a.id.clone())
        .collect();
    let in_big = w.active_members_of(&big.group_id);
    let refusing_in_big: BTreeSet<String> = in_big.intersection(&refusing).cloned().collect();
    assert!(
        !refusing_in_big.is_empty(),
        "some members of {} have the profile without groups",
        big.name
    );
    let expected: BTreeSet<String> = in_big.difference(&refusing).cloned().collect();
    let got = w.sf_members(&big.name);
    assert_eq!(
        got, expected,
        "every member but the refusing ones is in {}",
        big.name
    );
    assert!(got.len() > 90, "{} members added", got.len());

    // Each refusing membership (in any group) is held under the user and the group.
    let snapshot = w.duo.dataset().snapshot();
    let by_sf_id: BTreeMap<&str, &str> = accounts
        .iter()
        .map(|(duo, a)| (a.id.as_str(), duo.as_str()))
        .collect();
    let mut wanted_refusals = BTreeSet::new();
    for g in provisioned_groups(&w, &snapshot) {
        for sf_id in w.active_members_of(&g.group_id).intersection(&refusing) {
            wanted_refusals.insert((
                by_sf_id[sf_id.as_str()].to_owned(),
                member_attribute(&g.group_id),
            ));
        }
        assert!(
            w.sf_members(&g.name).is_disjoint(&refusing),
            "no refusing member in {}",
            g.name
        );
    }
    let links = w.links().await;
    let held: BTreeSet<(String, String)> = links
        .refusals
        .iter()
        .filter(|r| r.attribute.starts_with("member:"))
        .map(|r| (r.source_id.clone(), r.attribute.clone()))
        .collect();
    match flavor {
        Flavor::Strict => {
            assert_eq!(
                held, wanted_refusals,
                "each refused membership is held, no other"
            );
            assert_eq!(
                first.refused,
                u64::try_from(wanted_refusals.len()).unwrap(),
                "each refusal counted once"
            );
            let chatter = w.sf.catalogue_id(CHATTER_FREE).unwrap();
            assert!(
                links.facts.profiles_without_groups.contains(&chatter),
                "every Chatter Free member was refused and none accepted: the profile is learned \
                 to forbid groups ({:?})",
                links.facts.profiles_without_groups
            );
        }
        Flavor::Demo => {
            // The catalogue says which profiles allow groups: nothing is sent to be refused.
            assert!(held.is_empty(), "{held:?}");
            assert_eq!(first.refused, 0);
        }
    }

    let mark = w.mark();
    let (second, run2) = w.measured_run().await;
    assert_eq!(
        run2.writes,
        0,
        "the next run sends nothing for them; it wrote {}",
        w.writes_since(mark)
    );
    assert_eq!(second.refused, 0);
    assert!(
        second.plan.operations.is_empty(),
        "{:?}",
        second.plan.operations
    );
    eprintln!(
        "refusing neighbour [{flavor:?}, {backend:?}]: group {} of {} members, {} refusing in it, \
         {} memberships forbidden in all; run 1 {run1}, refused {}; run 2 {run2}, held {}, facts {:?}",
        big.name,
        in_big.len(),
        refusing_in_big.len(),
        wanted_refusals.len(),
        first.refused,
        second.held,
        links.facts.profiles_without_groups
    );
    w.finish().await;
}

// ---------------------------------------------------------------------------------------
// 3. The batch cap.

/// Users of `data` that the target will take as they are: active, a plain unique email.
fn plain_users(data: &DuoDataset) -> Vec<String> {
    let mut seen = BTreeSet::new();
    data.users
        .iter()
        .filter(|u| {
            u.status == "active"
                && u.email == format!("{}@example.com", u.username)
                && u.email.len() <= 40
                && u.realname.len() <= 40
        })
        .filter(|u| seen.insert(u.email.clone()))
        .map(|u| u.user_id.clone())
        .collect()
}

const CAPPED: &str = "DGCAPPEDGROUP0000001";

/// The member ids in each group PATCH of `log`.
fn member_patches(log: &[LoggedRequest], group: &str) -> Vec<(usize, u16)> {
    log.iter()
        .filter(|r| r.method == "PATCH" && r.path.contains(&format!("/Groups/{group}")))
        .map(|r| (r.body.matches("\"005").count(), r.status))
        .collect()
}

async fn a_capped_batch_size_is_learned(backend: Backend, flavor: Flavor) {
    let mut data = generator::generate(600, 5, 11);
    data.groups.push(DuoGroup {
        group_id: CAPPED.to_owned(),
        name: "Capped".to_owned(),
        desc: "200 members".to_owned(),
        status: "active".to_owned(),
    });
    let plain = plain_users(&data);
    assert!(plain.len() >= 320, "{}", plain.len());
    for u in data.users.iter_mut() {
        if plain[..200].contains(&u.user_id) {
            u.groups.push(CAPPED.to_owned());
        }
    }
    let policy = base_policy(
        Scope::Groups(vec!["Capped".into()]),
        rule("Standard User", &[], None),
        Vec::new(),
    );
    let sf = flavor.config(|r| r.max_members_per_patch = Some(50));
    let Some(w) = world(backend, data, sf, policy).await else {
        return;
    };
    assert_eq!(w.conn.policy.member_batch_size, 100, "over the cap");
    let mark = w.mark();
    let first = w.run().await;
    assert_eq!(first.failed, 0, "{:?}", first.message);
    assert_eq!(
        first.refused,
        0,
        "a size refusal is not a held refusal: {:?}",
        w.links().await.refusals.first()
    );
    let gid = w.sf.inspect().group_by_name("Capped").unwrap().id;
    assert_eq!(
        w.sf_members("Capped").len(),
        200,
        "all members in the first run"
    );
    let patches1 = member_patches(&w.since(mark), &gid);
    let learned = w.links().await.facts.member_batch_size;
    assert!(
        learned.is_some_and(|s| (1..=50).contains(&s)),
        "the learned size: {learned:?}"
    );
    let learned = learned.unwrap();

    // 120 more members: batches no larger than what was learned, none refused.
    w.duo.dataset().edit(|d| {
        for u in d.users.iter_mut() {
            if plain[200..320].contains(&u.user_id) {
                u.groups.push(CAPPED.to_owned());
            }
        }
    });
    let mark = w.mark();
    let second = w.run().await;
    assert_eq!(second.failed, 0, "{:?}", second.message);
    let refusals = w.links().await.refusals;
    assert!(
        !refusals
            .iter()
            .any(|r| r.attribute.starts_with("member:") || r.reason.contains("LIMIT_EXCEEDED")),
        "no membership refused: {refusals:?}"
    );
    assert_eq!(w.sf_members("Capped").len(), 320);
    let patches2 = member_patches(&w.since(mark), &gid);
    assert!(!patches2.is_empty());
    for (size, status) in &patches2 {
        assert!(
            *size <= learned,
            "a batch of {size} over the learned {learned}"
        );
        assert_eq!(*status, 200, "no LIMIT_EXCEEDED");
    }
    let mark = w.mark();
    let (_, run3) = w.measured_run().await;
    assert!(
        member_patches(&w.since(mark), &gid).is_empty(),
        "nothing left to add"
    );
    eprintln!(
        "batch cap [{flavor:?}, {backend:?}]: run 1 member PATCHes (members, status) {patches1:?}; \
         learned {learned}; run 2 {patches2:?} (refused {}); run 3 {run3}: {}",
        second.refused,
        w.writes_since(mark)
    );
    w.finish().await;
}

// ---------------------------------------------------------------------------------------
// 4. A mononym.

async fn a_mononym_gets_a_family_name(backend: Backend, flavor: Flavor) {
    let mut data = generator::sample();
    data.users.push(DuoUser {
        user_id: "DUMONONYM00000000001".to_owned(),
        username: "cher".to_owned(),
        email: "cher@example.com".to_owned(),
        realname: "Cher".to_owned(),
        status: "active".to_owned(),
        groups: vec![SALES.to_owned()],
        created: 1_600_000_000,
        is_enrolled: true,
        ..DuoUser::default()
    });
    let Some(w) = world(backend, data, flavor.config(|_| {}), sample_policy()).await else {
        return;
    };
    let first = w.run().await;
    assert_eq!(first.failed, 0, "{:?}", first.message);
    let cher = w.sf_user("cher@example.com");
    assert_eq!(cher.family_name.as_deref(), Some("Cher"), "{cher:?}");
    assert!(cher.active);
    assert!(
        w.sf_members("Sales").contains(&cher.id),
        "and a member of Sales"
    );
    let mark = w.mark();
    let (_, run2) = w.measured_run().await;
    assert_eq!(run2.writes, 0, "run 2 wrote {}", w.writes_since(mark));
    eprintln!(
        "mononym [{flavor:?}, {backend:?}]: familyName {:?} givenName {:?}; run 2 {run2}",
        cher.family_name, cher.given_name
    );
    w.finish().await;
}

// ---------------------------------------------------------------------------------------
// 5. A userName taken in another org.

fn posts_of(log: &[LoggedRequest], user_name: &str) -> usize {
    log.iter()
        .filter(|r| {
            r.method == "POST" && r.path.starts_with("/services/scim/v2/Users") && {
                r.body.contains(&format!("\"{user_name}\""))
            }
        })
        .count()
}

async fn a_username_taken_elsewhere_is_held(backend: Backend, flavor: Flavor) {
    const BOB: &str = "bob.baker@example.com";
    let sf = flavor.config(|r| {
        r.taken_usernames.insert(BOB.to_owned());
    });
    let mut policy = sample_policy();
    // Salesforce's answer says "… in this or another Salesforce organization": with
    // `organization` mapped, that word must not be taken for a refusal of the attribute.
    policy.mapping.organization = Some(SourceAttribute::DisplayName);
    let Some(w) = world(backend, generator::sample(), sf, policy).await else {
        return;
    };
    let first = w.run().await;
    assert_eq!(first.failed, 0, "{:?}", first.message);
    assert_eq!(first.refused, 1, "bob's creation, refused once");
    assert!(w.sf.inspect().user_by_name(BOB).is_none());
    assert!(
        w.sf.inspect()
            .user_by_name("alice.anderson@example.com")
            .is_some(),
        "the others are created"
    );
    let log = w.sf.inspect().request_log();
    assert_eq!(posts_of(&log, BOB), 1, "one POST, no retry of a 409");
    let refused = log
        .iter()
        .find(|r| r.method == "POST" && r.body.contains(BOB))
        .unwrap();
    assert_eq!(refused.status, 409);

    let links = w.links().await;
    let held = links
        .refusals
        .iter()
        .find(|r| r.source_id == w.duo_id("bob.baker"))
        .unwrap_or_else(|| panic!("bob held: {:?}", links.refusals));
    assert_eq!(held.attribute, "userName");
    let entries = w
        .store
        .query_activity(&scimsync_core::activity::ActivityQuery {
            run_id: Some(first.run_id),
            op: Some("refuse".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let entry = entries
        .iter()
        .find(|e| e.name == BOB)
        .unwrap_or_else(|| panic!("the refusal is logged: {entries:?}"));
    eprintln!(
        "taken userName [{flavor:?}, {backend:?}]: logged {:?}",
        entry.detail
    );
    // The fix the operator needs: map userName from another attribute (mapping.user_name) or
    // give it a suffix. The target's own text ("use a unique username") does not say how.
    let detail = entry.detail.to_lowercase();
    assert!(
        detail.contains("user_name") || detail.contains("suffix") || detail.contains("map"),
        "the message tells the fix: {}",
        entry.detail
    );

    let mark = w.mark();
    let second = w.run().await;
    assert_eq!(second.refused, 0);
    assert!(second.held >= 1, "held, not sent again: {second:?}");
    assert_eq!(
        posts_of(&w.since(mark), BOB),
        0,
        "run 2 does not POST bob again"
    );
    assert_eq!(
        w.requests_since(mark).writes,
        0,
        "run 2 wrote {}",
        w.writes_since(mark)
    );

    let mark = w.mark();
    let third = w
        .run_with(RunOptions {
            retry_refused: Some(RetryRefused::All),
            ..RunOptions::default()
        })
        .await;
    assert_eq!(
        posts_of(&w.since(mark), BOB),
        1,
        "--retry-refused sends it again"
    );
    assert_eq!(third.refused, 1, "still taken: refused and held again");
    w.finish().await;
}

// ---------------------------------------------------------------------------------------
// 6. The Federation ID.

fn federation_patches(log: &[LoggedRequest]) -> usize {
    log.iter()
        .filter(|r| r.method == "PATCH" && r.body.contains("federationIdentifier"))
        .count()
}

async fn an_email_change_lands_whatever_the_federation_id(backend: Backend, flavor: Flavor) {
    let Some(w) = sample_world(backend, flavor).await else {
        return;
    };
    let mark = w.mark();
    let first = w.run().await;
    assert_eq!(first.failed, 0, "{:?}", first.message);
    let fed1 = federation_patches(&w.since(mark));
    let carol = w.sf_user("carol.chen@example.com");
    match flavor {
        Flavor::Demo => assert_eq!(
            carol.federation_id.as_deref(),
            Some("carol.chen@example.com")
        ),
        Flavor::Strict => assert_eq!(carol.federation_id, None, "no extension in this org"),
    }

    let mark = w.mark();
    let second = w.run().await;
    let log2 = w.since(mark);
    assert_eq!(
        federation_patches(&log2),
        0,
        "no federationIdentifier PATCH in run 2: {}",
        writes_summary(&log2)
    );
    assert_eq!(log2.iter().filter(|r| is_write(r)).count(), 0);
    assert_eq!(second.refused, 0);

    w.duo
        .dataset()
        .set_user_email(&w.duo_id("carol.chen"), "carol.chen@new.example.com")
        .unwrap();
    let mark = w.mark();
    let third = w.run().await;
    let log3 = w.since(mark);
    assert_eq!(third.failed, 0, "{:?}", third.message);
    let carol = w.sf_user("carol.chen@new.example.com");
    assert_eq!(
        carol.pending_email.as_deref(),
        Some("carol.chen@new.example.com"),
        "the new address reached Salesforce (held there until verified)"
    );
    assert_eq!(w.sf.inspect().verification_emails_sent(), 1);
    let fed3 = federation_patches(&log3);
    if flavor == Flavor::Strict {
        assert_eq!(carol.federation_id, None);
    } else {
        assert_eq!(
            carol.federation_id.as_deref(),
            Some("carol.chen@new.example.com")
        );
    }
    let mark = w.mark();
    let (_, run4) = w.measured_run().await;
    assert_eq!(run4.writes, 0, "run 4 wrote {}", w.writes_since(mark));
    eprintln!(
        "federation id [{flavor:?}, {backend:?}]: federationIdentifier PATCHes run 1 {fed1}, run 3 {fed3}; \
         run 3 writes {}, refused {}; run 4 {run4}",
        log3.iter().filter(|r| is_write(r)).count(),
        third.refused
    );
    w.finish().await;
}

// ---------------------------------------------------------------------------------------
// 7. How the target can be asked for some objects, once learned, outlives the client.

/// The targeted reads of `log` whose filter joins clauses with `or`, with the status answered.
fn or_filters(log: &[LoggedRequest]) -> Vec<u16> {
    log.iter()
        .filter(|r| r.method == "GET" && r.path.contains("filter="))
        .filter(|r| r.path.contains("%20or%20") || r.path.contains("+or+"))
        .map(|r| r.status)
        .collect()
}

/// Gives two users the family name `last` in Duo and runs: the report, with the requests the
/// run sent; it must have failed nothing.
async fn rename_two_and_run(w: &World, last: &str) -> (RunReport, Vec<LoggedRequest>) {
    for u in ["alice.anderson", "carol.chen"] {
        w.duo
            .dataset()
            .set_user_names(&w.duo_id(u), "Renamed", last)
            .unwrap();
    }
    let mark = w.mark();
    let report = w.run().await;
    assert_eq!(report.failed, 0, "{:?}", report.message);
    (report, w.since(mark))
}

async fn the_read_mode_learned_outlives_the_client(backend: Backend, flavor: Flavor) {
    let Some(mut w) = sample_world(backend, flavor).await else {
        return;
    };
    let first = w.run().await;
    assert_eq!(first.failed, 0, "{:?}", first.message);

    // An incremental run reads the two changed accounts back with one filter.
    let (second, log2) = rename_two_and_run(&w, "Once").await;
    assert_eq!(
        second.read.map(|r| r.to_string()).as_deref(),
        Some("incremental")
    );
    let learned = w.links().await.facts.learned_reads;
    match flavor {
        Flavor::Demo => {
            assert_eq!(or_filters(&log2), [200], "one `or` filter, answered");
            assert_eq!(learned, None, "nothing to learn");
        }
        Flavor::Strict => {
            assert_eq!(or_filters(&log2), [400], "one `or` filter, refused");
            assert_eq!(learned.as_deref(), Some("single"), "kept in the facts");
        }
    }

    // Another process: a new client follows what was learned, so it asks nothing refused.
    w.conn.target = client(&w.sf);
    let (_, log3) = rename_two_and_run(&w, "Twice").await;
    assert!(
        log3.iter().all(|r| r.status != 400),
        "nothing refused: {:?}",
        log3.iter().map(|r| (&r.path, r.status)).collect::<Vec<_>>()
    );
    match flavor {
        Flavor::Demo => assert_eq!(or_filters(&log3), [200]),
        Flavor::Strict => assert_eq!(or_filters(&log3), Vec::<u16>::new()),
    }
    assert_eq!(
        w.sf_user("alice.anderson@example.com")
            .family_name
            .as_deref(),
        Some("Twice"),
        "the change landed"
    );

    // A new discovery forgets it: the target is asked as it declares again, once.
    let mark = w.mark();
    let fourth = w
        .run_with(RunOptions {
            rediscover: true,
            ..RunOptions::default()
        })
        .await;
    assert_eq!(fourth.failed, 0, "{:?}", fourth.message);
    assert!(
        or_filters(&w.since(mark)).is_empty(),
        "nothing changed, nothing read"
    );
    assert_eq!(w.links().await.facts.learned_reads, None, "forgotten");
    eprintln!(
        "read mode [{flavor:?}, {backend:?}]: run 2 `or` filters {:?}, learned {learned:?}; run 3 (new client) `or` filters {:?}",
        or_filters(&log2),
        or_filters(&log3)
    );
    w.finish().await;
}

// ---------------------------------------------------------------------------------------

macro_rules! stories {
    ($backend:ident: $($story:ident),* $(,)?) => {
        $(
            mod $story {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn demo_reading() {
                    super::super::$story(super::super::Backend::$backend, super::super::Flavor::Demo).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn strict_reading() {
                    super::super::$story(super::super::Backend::$backend, super::super::Flavor::Strict).await;
                }
            }
        )*
    };
}

/// Users in the main story (about 25 s a reading in a debug build on 2 cores).
const USERS: usize = 3_000;

async fn initial_sync(backend: Backend, flavor: Flavor) {
    initial_sync_then_quiet_runs(backend, flavor, USERS).await;
}

mod sqlite {
    stories!(Sqlite:
        initial_sync,
        members_not_blocked_by_a_refusing_neighbour,
        a_capped_batch_size_is_learned,
        a_mononym_gets_a_family_name,
        a_username_taken_elsewhere_is_held,
        an_email_change_lands_whatever_the_federation_id,
        the_read_mode_learned_outlives_the_client,
    );
}

mod postgres {
    stories!(Postgres: initial_sync);
}
