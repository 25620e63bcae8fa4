//! A small hand-written Duo directory for the demo and for readable tests.

use std::collections::BTreeMap;

use super::{DuoDataset, DuoGroup, DuoIntegration, DuoPhone, DuoUser};

/// Group names and descriptions of [`sample`], in id order.
const GROUPS: [(&str, &str); 6] = [
    ("Sales", "Field and inside sales"),
    ("Support", "Customer support"),
    ("Engineering", "Product engineering"),
    ("Sales Managers", "Sales leadership"),
    ("Contractors", "External contractors"),
    (
        "Customer Success Enablement and Onboarding EMEA",
        "A group name over Salesforce's 40-character limit",
    ),
];

fn group_id(n: usize) -> String {
    format!("DGSAMPLE{n:012}")
}

fn user_id(n: usize) -> String {
    format!("DUSAMPLE{n:012}")
}

/// One row of the sample: (first, last, status, email override, group numbers).
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [usize],
);

const USERS: [Row; 25] = [
    ("Alice", "Anderson", "active", None, &[1, 4]),
    ("Bob", "Baker", "active", None, &[1]),
    ("Carol", "Chen", "active", None, &[2]),
    ("David", "Diaz", "bypass", None, &[3]),
    ("Erin", "Evans", "disabled", None, &[1]),
    ("Frank", "Fischer", "active", None, &[3]),
    ("Grace", "Garcia", "active", None, &[2, 6]),
    ("Hiro", "Tanaka", "active", None, &[3]),
    ("Ingrid", "Larsen", "active", Some(""), &[2]),
    ("Jamal", "Johnson", "active", None, &[1, 4]),
    ("Kira", "Novak", "locked out", None, &[5]),
    ("Liam", "Murphy", "active", None, &[5, 3]),
    ("Maria", "Rossi", "active", None, &[1]),
    ("Noah", "Nguyen", "active", None, &[3]),
    ("Olivia", "Okafor", "active", None, &[2]),
    ("Priya", "Patel", "active", None, &[3, 6]),
    ("Quinn", "Reyes", "pending deletion", None, &[5]),
    ("Rosa", "Ramirez", "active", None, &[1]),
    (
        "Sven",
        "Nilsson",
        "active",
        Some("sven.nilsson.example.com"),
        &[2],
    ),
    ("Tara", "Singh", "active", None, &[3]),
    ("Uma", "Sharma", "active", None, &[]),
    ("Victor", "Moreau", "active", None, &[1, 4]),
    ("Wei", "Wang", "active", None, &[3]),
    ("Yuki", "Sato", "active", None, &[2, 3]),
    (
        "Zofia",
        "Kowalski",
        "active",
        Some("zofia.kowalski.contractor@partner-agency.example.com"),
        &[5],
    ),
];

/// A small demo directory: 25 users in 6 groups (`Sales`, `Support`, `Engineering`,
/// `Sales Managers`, `Contractors`, and one group whose name is over 40 characters).
///
/// It holds a bypass user (David Diaz), a disabled user (Erin Evans), a locked-out and a
/// pending-deletion user, a user with a missing email (Ingrid Larsen), one with a malformed
/// email (Sven Nilsson), one with an email over 40 characters (Zofia Kowalski), a user in no
/// group (Uma Sharma), users with mobile phones, aliases and custom attributes, and an
/// integration "Salesforce" allowing `Sales`, `Support` and `Sales Managers`.
pub fn sample() -> DuoDataset {
    let groups = GROUPS
        .iter()
        .enumerate()
        .map(|(i, (name, desc))| DuoGroup {
            group_id: group_id(i + 1),
            name: (*name).to_owned(),
            desc: (*desc).to_owned(),
            status: "active".to_owned(),
        })
        .collect();
    let users = USERS
        .iter()
        .enumerate()
        .map(|(i, (first, last, status, email, groups))| {
            let n = i + 1;
            let username = format!("{}.{}", first.to_lowercase(), last.to_lowercase());
            let phones = if n % 3 == 1 {
                vec![DuoPhone {
                    phone_id: format!("DPSAMPLE{n:012}"),
                    number: format!("+1555010{n:04}"),
                    r#type: "Mobile".to_owned(),
                    platform: "Apple iOS".to_owned(),
                    activated: true,
                    ..DuoPhone::default()
                }]
            } else if n % 3 == 2 {
                vec![DuoPhone {
                    phone_id: format!("DPSAMPLE{n:012}"),
                    number: format!("+1555020{n:04}"),
                    r#type: "Landline".to_owned(),
                    platform: "Unknown".to_owned(),
                    ..DuoPhone::default()
                }]
            } else {
                Vec::new()
            };
            let mut aliases = BTreeMap::new();
            if n % 4 == 0 {
                aliases.insert(
                    "alias1".to_owned(),
                    format!("{}{}", &first[..1], last).to_lowercase(),
                );
            }
            let mut custom_attributes = BTreeMap::new();
            if let Some(first_group) = groups.first() {
                custom_attributes.insert(
                    "department".to_owned(),
                    GROUPS[first_group - 1].0.to_owned(),
                );
            }
            custom_attributes.insert("employee_id".to_owned(), format!("E{n:06}"));
            DuoUser {
                user_id: user_id(n),
                email: email.map_or_else(|| format!("{username}@example.com"), str::to_owned),
                username,
                firstname: (*first).to_owned(),
                lastname: (*last).to_owned(),
                realname: format!("{first} {last}"),
                status: (*status).to_owned(),
                phones,
                aliases,
                custom_attributes,
                groups: groups.iter().map(|g| group_id(*g)).collect(),
                created: 1_700_000_000 + i64::try_from(n).unwrap_or(0) * 86_400,
                last_login: (n % 5 != 0)
                    .then_some(1_760_000_000 + i64::try_from(n).unwrap_or(0) * 3_600),
                is_enrolled: *status != "pending deletion",
                notes: String::new(),
            }
        })
        .collect();
    DuoDataset {
        users,
        groups,
        integrations: vec![DuoIntegration {
            integration_key: "DISAMPLE000000000001".to_owned(),
            name: "Salesforce".to_owned(),
            groups_allowed: vec![group_id(1), group_id(2), group_id(4)],
        }],
    }
}
