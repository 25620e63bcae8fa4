//! The synthetic directory generator and the hand-written sample: determinism, realism and
//! the planted bad records a provisioning engine must survive.

use std::collections::{HashMap, HashSet};

use scimsync_sim::generator::{DuoDataset, generate, sample};

#[test]
fn the_same_seed_gives_the_same_directory_and_another_seed_another() {
    let a = generate(5_000, 120, 42);
    assert_eq!(a, generate(5_000, 120, 42));
    let b = generate(5_000, 120, 43);
    assert_ne!(a.users[0].username, b.users[0].username);
    assert_eq!(DuoDataset::from_json(&a.to_json()).unwrap(), a);
}

#[test]
fn generated_directories_carry_every_kind_of_bad_record() {
    let data = generate(20_000, 400, 7);
    let users = &data.users;
    let missing = users.iter().filter(|u| u.email.is_empty()).count();
    let malformed = users
        .iter()
        .filter(|u| !u.email.is_empty() && !u.email.contains('@'))
        .count();
    let long_email = users.iter().filter(|u| u.email.len() > 40).count();
    let long_name = users.iter().filter(|u| u.realname.len() > 40).count();
    let mut by_email: HashMap<&str, usize> = HashMap::new();
    for user in users.iter().filter(|u| !u.email.is_empty()) {
        *by_email.entry(&user.email).or_default() += 1;
    }
    let duplicated = by_email.values().filter(|&&n| n > 1).count();
    let long_groups = data.groups.iter().filter(|g| g.name.len() > 40).count();
    for (what, count) in [
        ("missing emails", missing),
        ("malformed emails", malformed),
        ("emails over 40 characters", long_email),
        ("real names over 40 characters", long_name),
        ("duplicated emails", duplicated),
        ("group names over 40 characters", long_groups),
    ] {
        assert!(count > 0, "no {what}");
        assert!(
            count < users.len() / 50,
            "{count} {what}: bad records should be a few"
        );
    }

    let statuses: HashSet<&str> = users.iter().map(|u| u.status.as_str()).collect();
    for status in [
        "active",
        "bypass",
        "disabled",
        "locked out",
        "pending deletion",
    ] {
        assert!(statuses.contains(status), "no {status} user");
    }
    let active = users.iter().filter(|u| u.status == "active").count();
    assert!(active > users.len() * 8 / 10, "mostly active, got {active}");

    let group_ids: HashSet<&str> = data.groups.iter().map(|g| g.group_id.as_str()).collect();
    let group_names: HashSet<&str> = data.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        group_names.len(),
        data.groups.len(),
        "group names are unique"
    );
    for user in users {
        assert!(
            (1..=5).contains(&user.groups.len()),
            "{} groups",
            user.groups.len()
        );
        assert!(user.groups.iter().all(|g| group_ids.contains(g.as_str())));
        assert!((1..=3).contains(&user.phones.len()));
        assert!(
            user.phones
                .iter()
                .all(|p| ["Mobile", "Landline"].contains(&p.r#type.as_str()))
        );
    }
    let usernames: HashSet<&str> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(usernames.len(), users.len(), "usernames are unique");
    assert!(
        users.iter().any(|u| u.username.ends_with(char::is_numeric)),
        "collisions numbered"
    );
    assert!(users.iter().any(|u| !u.aliases.is_empty()));
    let with_attributes = users
        .iter()
        .filter(|u| u.custom_attributes.contains_key("department"))
        .count();
    assert!(with_attributes > users.len() / 2);
    let first = &users[0];
    assert_eq!(
        first.realname,
        format!("{} {}", first.firstname, first.lastname)
    );
}

#[test]
fn the_sample_holds_the_demo_cases() {
    let data = sample();
    assert_eq!(data.users.len(), 25);
    for name in [
        "Sales",
        "Support",
        "Engineering",
        "Sales Managers",
        "Contractors",
    ] {
        assert!(data.group_named(name).is_some(), "no group {name}");
    }
    assert!(data.groups.iter().any(|g| g.name.len() > 40));
    let status_of = |username: &str| {
        data.users
            .iter()
            .find(|u| u.username == username)
            .map(|u| u.status.as_str())
    };
    assert_eq!(status_of("david.diaz"), Some("bypass"));
    assert_eq!(status_of("erin.evans"), Some("disabled"));
    assert!(data.users.iter().any(|u| u.email.is_empty()));
    assert!(
        data.users
            .iter()
            .any(|u| u.phones.iter().any(|p| p.r#type == "Mobile"))
    );
    assert!(data.users.iter().any(|u| u.email.len() > 40));
    assert_eq!(DuoDataset::from_json(&data.to_json()).unwrap(), data);
}
