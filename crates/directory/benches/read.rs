//! Peak memory of reading a Duo directory: does it grow with the directory, or with twice it?
//!
//! `cargo bench -p scimsync-directory --bench read` (sizes from `SCIMSYNC_BENCH_USERS`,
//! default `20000,100000`). For each size it starts the emulator, resets the process's peak
//! resident size (`/proc/self/clear_refs`), reads the whole directory, and prints the peak
//! above the starting point next to the heap size of the finished snapshot (its structs plus
//! the capacity of every string and vector it owns). A reader that held the pages and the
//! model at once would peak near twice the snapshot.
#![allow(clippy::unwrap_used)]

use scimsync_core::attributes::text_heap;
use scimsync_core::ports::Source as _;
use scimsync_core::source::{DirectoryUser, SourceSnapshot};
use scimsync_core::{CompactString, SourceGroupId};
use scimsync_directory::{DuoConfig, DuoEndpoint, DuoSource};
use scimsync_sim::duo::{DuoSim, DuoSimConfig};
use scimsync_sim::generator;
use secrecy::SecretString;
use std::mem::size_of;

fn status_kb(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn opt(s: &Option<CompactString>) -> usize {
    s.as_ref().map_or(0, text_heap)
}

fn user_heap(u: &DirectoryUser) -> usize {
    text_heap(&u.id.0)
        + text_heap(&u.username)
        + opt(&u.email)
        + opt(&u.first_name)
        + opt(&u.last_name)
        + opt(&u.display_name)
        + u.phones.capacity() * size_of::<scimsync_core::source::Phone>()
        + u.phones
            .iter()
            .map(|p| text_heap(&p.number) + opt(&p.extension))
            .sum::<usize>()
        + u.aliases.capacity() * size_of::<CompactString>()
        + u.aliases.iter().map(text_heap).sum::<usize>()
        + u.custom.heap_size()
        + u.groups.capacity() * size_of::<SourceGroupId>()
        + u.groups.iter().map(|g| text_heap(&g.0)).sum::<usize>()
}

/// Bytes the snapshot owns on the heap.
fn heap(s: &SourceSnapshot) -> usize {
    s.users.capacity() * size_of::<DirectoryUser>()
        + s.users.iter().map(user_heap).sum::<usize>()
        + s.groups
            .iter()
            .map(|g| text_heap(&g.id.0) + text_heap(&g.name) + opt(&g.description))
            .sum::<usize>()
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SCIMSYNC_BENCH_USERS")
        .unwrap_or_else(|_| "20000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "users     pages  peak above start           snapshot heap              peak / snapshot"
    );
    for users in sizes {
        rt.block_on(async {
            let duo = DuoSim::start(
                DuoSimConfig::demo(),
                generator::generate(users, (users / 50).max(5), 5),
            )
            .await
            .unwrap();
            let reader = DuoSource::new(DuoConfig::new(
                DuoEndpoint::BaseUrl(url::Url::parse(&duo.base_url()).unwrap()),
                duo.integration_key().to_owned(),
                SecretString::from(duo.secret_key().to_owned()),
            ))
            .unwrap();
            // Warm up the connection pool and the emulator's first page.
            let _ = reader.check().await;
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let start = status_kb("VmRSS:");
            let snapshot = reader.read().await.unwrap();
            let peak = status_kb("VmHWM:").saturating_sub(start);
            let kept = (heap(&snapshot) / 1024) as u64;
            println!(
                "{users:>7}  {:>5}  {:>9} KiB ({:>4} B/user)  {:>9} KiB ({:>4} B/user)  {:.2}",
                duo.count("/admin/v1/users"),
                peak,
                peak * 1024 / users as u64,
                kept,
                kept * 1024 / users as u64,
                peak as f64 / kept.max(1) as f64
            );
            drop(snapshot);
        });
    }
}
