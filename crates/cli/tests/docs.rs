//! The documentation stays true: every test `docs/architecture.md`'s rule index names exists,
//! and the README links only to files in the repository.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`, build output aside.
fn sources(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && !name.starts_with("target-") {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The backquoted names of the rule index's "shown by" column that name a test or a test
/// module: paths (`planner::tests::x`) and snake_case names of three words or more.
fn tests_named(architecture: &str) -> Vec<String> {
    let start = architecture
        .find("## Where each rule lives")
        .expect("the rule index");
    let index = &architecture[start..];
    let end = index[3..].find("\n## ").map_or(index.len(), |e| e + 3);
    let mut names = Vec::new();
    for row in index[..end].lines().filter(|l| l.starts_with('|')) {
        let shown_by = row.trim_end_matches('|').rsplit('|').next().unwrap_or("");
        for (i, part) in shown_by.split('`').enumerate() {
            let is_test_like =
                part.contains("::") || part.matches('_').count() >= 2 && !part.contains(' ');
            if i % 2 == 1 && is_test_like {
                names.push(part.to_owned());
            }
        }
    }
    names
}

#[test]
fn every_test_the_rule_index_names_exists() {
    let architecture = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let names = tests_named(&architecture);
    assert!(names.len() >= 15, "the index names tests: {names:?}");
    let mut code = Vec::new();
    for dir in ["crates", "tests"] {
        sources(&root().join(dir), &mut code);
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| {
            let last = name.rsplit("::").next().unwrap_or(name);
            !code.iter().any(|file| {
                file.contains(&format!("fn {last}("))
                    || file.contains(&format!("mod {last} "))
                    || file.contains(&format!("mod {last};"))
                    // Stories run per backend by a macro list their names alone.
                    || file.contains(&format!("    {last},\n"))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/architecture.md names tests that do not exist: {missing:?}"
    );
}

#[test]
fn the_index_reader_finds_paths_and_names() {
    let doc = "## Where each rule lives\n| a | b | `x::tests::one_two` , `three_four_five`, `engine` |\n## Next\n| `not_this_one_here` |";
    assert_eq!(tests_named(doc), ["x::tests::one_two", "three_four_five"]);
}

#[test]
fn the_readme_links_only_to_files_in_the_repository() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut checked = 0;
    for (i, _) in readme.match_indices("](") {
        let rest = &readme[i + 2..];
        let target = &rest[..rest.find(')').unwrap()];
        if target.starts_with('#') {
            continue;
        }
        assert!(
            !target.contains("://") && !target.starts_with("mailto:"),
            "the README links outside the repository: {target}"
        );
        let file = target.split('#').next().unwrap();
        assert!(
            root().join(file).exists(),
            "the README links to {target}, which is not in the repository"
        );
        checked += 1;
    }
    assert!(checked > 0, "the README links to files");
}
