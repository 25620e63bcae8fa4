//! Duo directory datasets: the types the Duo emulator serves, a small hand-written demo
//! directory ([`sample`]) and a deterministic generator of large synthetic ones ([`generate`]).
//!
//! Generated directories look like real ones (names from built-in lists, `first.last`
//! usernames, departments, phones, aliases) and deliberately carry the records a provisioning
//! engine must survive: duplicate emails, missing and malformed emails, addresses and group
//! names over Salesforce's 40-character limits, and every Duo user status.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

mod names;
mod rng;
mod sample;

pub use sample::sample;

use rng::SplitMix64;

/// A Duo account's users, groups and integrations, as the emulator serves them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoDataset {
    /// Users in the order `GET /admin/v1/users` pages through them.
    pub users: Vec<DuoUser>,
    /// Groups in the order `GET /admin/v1/groups` pages through them.
    pub groups: Vec<DuoGroup>,
    /// Integrations (applications), with the groups allowed to use each.
    #[serde(default)]
    pub integrations: Vec<DuoIntegration>,
}

/// One Duo user (the fields of the fact sheet §6 that scimsync reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoUser {
    /// `DU` + 18 characters `[A-Z0-9]`.
    pub user_id: String,
    pub username: String,
    /// May be empty or malformed: Duo does not validate it.
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub realname: String,
    /// Duo's spelling: `active`, `bypass`, `disabled`, `locked out`, `pending deletion`.
    pub status: String,
    #[serde(default)]
    pub phones: Vec<DuoPhone>,
    /// `alias1` .. `alias8` to the alias; only the set ones.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    #[serde(default)]
    pub custom_attributes: BTreeMap<String, String>,
    /// Ids of the groups the user is in (at most 100, Duo's limit).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds; `None` when the user never logged in.
    pub last_login: Option<i64>,
    pub is_enrolled: bool,
    #[serde(default)]
    pub notes: String,
}

/// One of a user's phones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoPhone {
    /// `DP` + 18 characters.
    pub phone_id: String,
    /// E.164, e.g. `+15555550100`.
    pub number: String,
    /// `Mobile`, `Landline` or `Unknown`.
    pub r#type: String,
    #[serde(default)]
    pub extension: String,
    #[serde(default)]
    pub name: String,
    /// e.g. `Apple iOS`, `Google Android`, `Unknown`.
    #[serde(default)]
    pub platform: String,
    #[serde(default)]
    pub activated: bool,
}

/// One Duo group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoGroup {
    /// `DG` + 18 characters.
    pub group_id: String,
    pub name: String,
    pub desc: String,
    /// `active`, `bypass` or `disabled`.
    pub status: String,
}

/// A Duo integration (an application protected by Duo), with the groups allowed to use it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoIntegration {
    /// `DI` + 18 characters.
    pub integration_key: String,
    pub name: String,
    /// Group ids; empty means every user may use it.
    #[serde(default)]
    pub groups_allowed: Vec<String>,
}

/// Reading a dataset from JSON failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the Duo dataset JSON")]
pub struct ReadDatasetError(#[from] serde_json::Error);

impl DuoDataset {
    /// The dataset as pretty JSON (the format [`DuoDataset::from_json`] reads).
    pub fn to_json(&self) -> String {
        // Invariant: every field is a string, number, bool, list or string-keyed map, which
        // serde_json always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses a dataset written by [`DuoDataset::to_json`] (or by hand).
    pub fn from_json(json: &str) -> Result<Self, ReadDatasetError> {
        Ok(serde_json::from_str(json)?)
    }

    /// The user with this id.
    pub fn user(&self, user_id: &str) -> Option<&DuoUser> {
        self.users.iter().find(|u| u.user_id == user_id)
    }

    /// The group with this name (first match).
    pub fn group_named(&self, name: &str) -> Option<&DuoGroup> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// Base of the `created` timestamps (2020-09-13).
const EPOCH_BASE: i64 = 1_600_000_000;
/// Duo's limit on groups per user.
pub const MAX_GROUPS_PER_USER: usize = 100;

/// Generates a synthetic directory of `users` users and `groups` groups; the same `seed`
/// always gives the same dataset.
///
/// Roughly 90 % of users are active (the rest bypass, disabled, locked out or pending
/// deletion); each is in 1–5 groups. About 0.2–0.3 % each (at least one each once there are
/// 20 users) have an email duplicated from another user, a missing email, an email without
/// `@`, an email over 40 characters, or a real name over 40 characters; about 1 % of groups
/// (at least one once there are 5) have a name over 40 characters.
pub fn generate(users: usize, groups: usize, seed: u64) -> DuoDataset {
    let mut rng = SplitMix64::new(seed);
    let groups = generate_groups(&mut rng, groups);
    let mut taken: HashMap<String, u32> = HashMap::with_capacity(users);
    let mut out = Vec::with_capacity(users);
    for index in 0..users {
        out.push(generate_user(&mut rng, index, &mut taken, &groups));
    }
    if users >= 20 {
        add_bad_records(&mut rng, &mut out);
    }
    let integrations = vec![DuoIntegration {
        integration_key: make_id("DI", &mut rng, 0),
        name: "Salesforce SSO".to_owned(),
        groups_allowed: groups.iter().take(5).map(|g| g.group_id.clone()).collect(),
    }];
    DuoDataset {
        users: out,
        groups,
        integrations,
    }
}

/// An id of the Duo shape: `prefix` + 18 characters `[A-Z0-9]`, unique per `index`.
fn make_id(prefix: &str, rng: &mut SplitMix64, index: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut id = String::with_capacity(20);
    id.push_str(prefix);
    for _ in 0..10 {
        id.push(char::from(ALPHABET[rng.below(36)]));
    }
    // The last 8 characters encode the index, so ids never collide.
    let mut digits = [b'0'; 8];
    let mut rest = index;
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[26 + rest % 10];
        rest /= 10;
    }
    id.extend(digits.iter().map(|&b| char::from(b)));
    id
}

fn generate_groups(rng: &mut SplitMix64, count: usize) -> Vec<DuoGroup> {
    let mut out = Vec::with_capacity(count);
    let long_every = if count >= 5 { (count / 100).max(1) } else { 0 };
    let long_at: Vec<usize> = (0..long_every).map(|_| rng.below(count)).collect();
    for index in 0..count {
        let dept = names::DEPARTMENTS[index % names::DEPARTMENTS.len()];
        let round = index / names::DEPARTMENTS.len();
        let name = if round == 0 {
            dept.to_owned()
        } else {
            let team = names::TEAMS[(round - 1) % names::TEAMS.len()];
            let lap = (round - 1) / names::TEAMS.len();
            if lap == 0 {
                format!("{dept} {team}")
            } else {
                format!("{dept} {team} {}", lap + 1)
            }
        };
        let name = if long_at.contains(&index) {
            format!("{name} - Regional Operations and Planning Committee")
        } else {
            name
        };
        let status = match rng.below(100) {
            0 => "disabled",
            1 => "bypass",
            _ => "active",
        };
        out.push(DuoGroup {
            group_id: make_id("DG", rng, index),
            desc: format!("{name} team"),
            name,
            status: status.to_owned(),
        });
    }
    out
}

fn generate_user(
    rng: &mut SplitMix64,
    index: usize,
    taken: &mut HashMap<String, u32>,
    groups: &[DuoGroup],
) -> DuoUser {
    let first = names::FIRST[rng.below(names::FIRST.len())];
    let last = names::LAST[rng.below(names::LAST.len())];
    let base = format!(
        "{}.{}",
        first.to_lowercase(),
        last.to_lowercase().replace(' ', "")
    );
    let seen = taken.entry(base.clone()).or_insert(0);
    *seen += 1;
    let username = if *seen == 1 {
        base
    } else {
        format!("{base}{seen}")
    };
    let status = match rng.below(100) {
        0..90 => "active",
        90..93 => "bypass",
        93..97 => "disabled",
        97..99 => "locked out",
        _ => "pending deletion",
    };
    let user_id = make_id("DU", rng, index);
    let phones = (0..1 + rng.below(3))
        .map(|n| {
            let mobile = n == 0 || rng.below(3) == 0;
            DuoPhone {
                phone_id: make_id("DP", rng, index * 4 + n),
                number: format!("+1555{:07}", rng.below(10_000_000)),
                r#type: if mobile { "Mobile" } else { "Landline" }.to_owned(),
                extension: String::new(),
                name: String::new(),
                platform: if mobile {
                    ["Apple iOS", "Google Android"][rng.below(2)]
                } else {
                    "Unknown"
                }
                .to_owned(),
                activated: mobile && rng.below(4) != 0,
            }
        })
        .collect();
    let mut aliases = BTreeMap::new();
    if rng.below(5) == 0 {
        aliases.insert(
            "alias1".to_owned(),
            format!("{}{}", &first[..1], last).to_lowercase(),
        );
        if rng.below(3) == 0 {
            aliases.insert("alias2".to_owned(), format!("e{index:06}"));
        }
    }
    let mut custom_attributes = BTreeMap::new();
    let dept = names::DEPARTMENTS[rng.below(names::DEPARTMENTS.len())];
    if rng.below(10) != 0 {
        custom_attributes.insert("department".to_owned(), dept.to_owned());
        custom_attributes.insert("employee_id".to_owned(), format!("E{:06}", index + 1));
        custom_attributes.insert(
            "cost_center".to_owned(),
            format!("CC-{}", 100 + rng.below(900)),
        );
        custom_attributes.insert(
            "title".to_owned(),
            names::TITLES[rng.below(names::TITLES.len())].to_owned(),
        );
    }
    let mut member_of = Vec::new();
    if !groups.is_empty() {
        let wanted = (1 + rng.below(5))
            .min(groups.len())
            .min(MAX_GROUPS_PER_USER);
        while member_of.len() < wanted {
            let id = &groups[rng.below(groups.len())].group_id;
            if !member_of.contains(id) {
                member_of.push(id.clone());
            }
        }
    }
    let created = EPOCH_BASE + i64::try_from(rng.below(150_000_000)).unwrap_or(0);
    let is_enrolled = status != "pending deletion" && rng.below(10) != 0;
    let last_login = (is_enrolled && rng.below(5) != 0)
        .then(|| created + i64::try_from(rng.below(30_000_000)).unwrap_or(0));
    DuoUser {
        user_id,
        email: format!("{username}@example.com"),
        username,
        firstname: first.to_owned(),
        lastname: last.to_owned(),
        realname: format!("{first} {last}"),
        status: status.to_owned(),
        phones,
        aliases,
        custom_attributes,
        groups: member_of,
        created,
        last_login,
        is_enrolled,
        notes: String::new(),
    }
}

/// The kinds of bad record [`generate`] plants.
#[derive(Clone, Copy)]
enum Defect {
    DuplicateEmail,
    MissingEmail,
    MalformedEmail,
    LongEmail,
    LongRealname,
}

fn add_bad_records(rng: &mut SplitMix64, users: &mut [DuoUser]) {
    let n = users.len();
    let per_kind = (n / 400).max(1);
    let mut bad = vec![false; n];
    for kind in [
        Defect::DuplicateEmail,
        Defect::MissingEmail,
        Defect::MalformedEmail,
        Defect::LongEmail,
        Defect::LongRealname,
    ] {
        let mut placed = 0;
        while placed < per_kind {
            let at = rng.below(n);
            if bad[at] {
                continue;
            }
            bad[at] = true;
            placed += 1;
            match kind {
                Defect::DuplicateEmail => {
                    let other = (at + 1 + rng.below(n - 1)) % n;
                    users[at].email = users[other].email.clone();
                }
                Defect::MissingEmail => users[at].email.clear(),
                Defect::MalformedEmail => {
                    users[at].email = format!("{} at example.com", users[at].username);
                }
                Defect::LongEmail => {
                    users[at].email = format!(
                        "{}.from.the.international.office@subsidiary.example.com",
                        users[at].username
                    );
                }
                Defect::LongRealname => {
                    let user = &mut users[at];
                    user.firstname = format!("{} Alexandria Maximiliana", user.firstname);
                    user.realname = format!("{} {}-Fitzgerald", user.firstname, user.lastname);
                    user.lastname = format!("{}-Fitzgerald", user.lastname);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_duo_shape_and_are_unique() {
        let data = generate(2_000, 50, 7);
        let mut seen = std::collections::HashSet::new();
        for user in &data.users {
            assert_eq!(user.user_id.len(), 20, "{}", user.user_id);
            assert!(user.user_id.starts_with("DU"));
            assert!(
                user.user_id
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            );
            assert!(seen.insert(user.user_id.clone()));
        }
        let usernames: std::collections::HashSet<_> =
            data.users.iter().map(|u| &u.username).collect();
        assert_eq!(
            usernames.len(),
            data.users.len(),
            "usernames must be unique"
        );
    }

    #[test]
    fn tiny_inputs_do_not_panic() {
        for (u, g) in [(0, 0), (1, 0), (0, 1), (3, 1), (20, 0), (25, 5)] {
            let data = generate(u, g, 1);
            assert_eq!((data.users.len(), data.groups.len()), (u, g));
        }
    }
}
