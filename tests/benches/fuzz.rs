//! Fuzzing on the stable toolchain: every parser of what scimsync reads from outside — Duo's
//! pages and error envelope, the SCIM list, user, group and error bodies, the three discovery
//! documents, the OAuth2 token answer, and the configuration file — fed mutated copies of a
//! seed corpus of valid documents (`tests/fuzz-corpus/`), each run under `catch_unwind`.
//!
//! ```sh
//! cargo bench -p scimsync-tests --bench fuzz                    # 1,000,000 inputs per target
//! SCIMSYNC_FUZZ_EXECS=20000 cargo bench -p scimsync-tests --bench fuzz -- scim_user duo_users
//! ```
//!
//! `SCIMSYNC_FUZZ_EXECS` sets the inputs per target (default 1,000,000), `SCIMSYNC_FUZZ_SEED`
//! the seed (default fixed, so a run is repeatable); arguments that do not start with `-`
//! choose targets by name. One `key=value` line per target; for each distinct panic site, the
//! first input that reached it is written to `target/fuzz-panics/` and named on a line
//! `panic target=… site=… input=…`. The exit code is 1 when anything panicked.
//!
//! The mutator is deterministic: byte and bit flips, inserts, deletes, duplicated ranges,
//! splices between corpus entries, and token swaps aware of JSON and TOML (a value replaced by
//! a huge number, a deep nesting, a value of another type, a control character, a long or
//! multi-byte string; a key replaced by another the parsers know).

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use scimsync_directory::fuzzing as duo;
use scimsync_scim::fuzzing as scim;

/// A small, fast, seeded generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The syntax a target's inputs are written in, for the token swaps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Json,
    Toml,
}

const BYTES: &[u8] = b"\0\x01\x1b\x7f\x80\xc3\xff\"'\\{}[]:,=.\n\r\t #-+0919eE";

const JSON_VALUES: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1.5",
    "-0",
    "1e999999",
    "-1e999999",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "340282366920938463463374607431768211456",
    "4294967296",
    "\"\"",
    "\" \"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\u001b[31mred\"",
    "\"a\\nb\\r\\tc\"",
    "\"😀🇫🇷é\"",
    "\"urné😀x\"",
    "\"é\"",
    "\"true\"",
    "\"FALSE\"",
    "\"42\"",
    "\"-1\"",
    "\"999999999999999999999\"",
    "\"urn:\"",
    "\"urn:ietf:params:scim:schemas:core:2.0:User:\"",
    "\"<html><title>x</title>\"",
    "\"<title>\"",
    "\"CODE:\"",
    "\"A:é\"",
    "[]",
    "{}",
    "[null]",
    "[{}]",
    "[[]]",
    "{\"value\":null}",
    "{\"supported\":\"yes\"}",
];

const JSON_KEYS: &[&str] = &[
    "id",
    "userName",
    "displayName",
    "name",
    "givenName",
    "familyName",
    "active",
    "emails",
    "value",
    "type",
    "primary",
    "members",
    "Resources",
    "resources",
    "totalResults",
    "startIndex",
    "itemsPerPage",
    "detail",
    "scimType",
    "errorCode",
    "message",
    "status",
    "stat",
    "response",
    "metadata",
    "next_offset",
    "code",
    "message_detail",
    "user_id",
    "username",
    "groups",
    "group_id",
    "phones",
    "aliases",
    "custom_attributes",
    "groups_allowed",
    "patch",
    "filter",
    "etag",
    "maxResults",
    "supported",
    "attributes",
    "subAttributes",
    "mutability",
    "required",
    "schema",
    "schemaExtensions",
    "endpoint",
    "access_token",
    "token_type",
    "expires_in",
    "error",
    "error_description",
    "urn:salesforce:schemas:extension:1.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
];

const TOML_VALUES: &[&str] = &[
    "0",
    "-1",
    "1.5",
    "nan",
    "inf",
    "-inf",
    "1e999",
    "9223372036854775807",
    "99999999999999999999",
    "true",
    "\"\"",
    "\" \"",
    "\"\\u0000\"",
    "\"\\u001b[2J\"",
    "\"😀🇫🇷é\"",
    "\"urné😀x\"",
    "\"urn:é\"",
    "\"urn:\"",
    "\"off\"",
    "\"auto\"",
    "\"0.0.0.0:8080\"",
    "\"[::]:0\"",
    "\"http://127.0.0.1:1/x\"",
    "\"https://[::1]/\"",
    "\"https://é.test/\"",
    "\"https://x.test/a b\"",
    "\"* * * * * *\"",
    "\"0 0 0 31 2 *\"",
    "\"60 60 24 32 13 8\"",
    "\"sqlite://\"",
    "\"sqlite::memory:\"",
    "\"postgres://\"",
    "\"..\"",
    "\"/\"",
    "\"custom.\"",
    "\"alias99\"",
    "\"name.\"",
    "'literal'",
    "\"\"\"multi\nline\"\"\"",
    "[]",
    "[[]]",
    "[1, \"a\"]",
    "{}",
    "{ a = 1 }",
    "1979-05-27T07:32:00Z",
];

const TOML_KEYS: &[&str] = &[
    "name",
    "kind",
    "schedule",
    "url",
    "listen",
    "token",
    "token_env",
    "token_file",
    "max_connections",
    "header_timeout_seconds",
    "api_host",
    "integration_key",
    "secret_key",
    "secret_key_env",
    "secret_key_file",
    "sig_version",
    "page_size",
    "sso_integration_key",
    "path",
    "base_url",
    "token_url",
    "client_id",
    "client_secret",
    "client_secret_env",
    "client_auth",
    "bearer_token",
    "bearer_token_file",
    "requests_per_second",
    "max_concurrency",
    "timeout_seconds",
    "member_batch_size",
    "federation_id",
    "groups",
    "sso_access",
    "all",
    "exclude_groups",
    "userName",
    "nickName",
    "title",
    "workPhone",
    "manager",
    "name_split",
    "user_name_suffix",
    "profile",
    "permission_sets",
    "role",
    "priority",
    "profiles_without_groups",
    "max_deactivations",
    "max_deactivation_percent",
];

/// Where a value starts at or after `from`: after a `:` (JSON), `=` (TOML), `,` or `[`.
fn value_at(input: &[u8], from: usize, syntax: Syntax) -> Option<(usize, usize)> {
    let sep = |b: u8| match syntax {
        Syntax::Json => b == b':' || b == b',' || b == b'[',
        Syntax::Toml => b == b'=' || b == b',' || b == b'[',
    };
    let mut i = from;
    while i < input.len() && !sep(input[i]) {
        i += 1;
    }
    i += 1;
    while i < input.len() && matches!(input[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    if i >= input.len() {
        return None;
    }
    let start = i;
    let end = match input[i] {
        q @ (b'"' | b'\'') => {
            let mut j = i + 1;
            while j < input.len() && input[j] != q {
                j += if input[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(input.len())
        }
        open @ (b'{' | b'[') => {
            let close = if open == b'{' { b'}' } else { b']' };
            let mut depth = 0usize;
            let mut j = i;
            while j < input.len() {
                if input[j] == open {
                    depth += 1;
                } else if input[j] == close {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                j += 1;
            }
            (j + 1).min(input.len())
        }
        _ => {
            let mut j = i;
            while j < input.len() && !matches!(input[j], b',' | b'}' | b']' | b'\n' | b' ') {
                j += 1;
            }
            j
        }
    };
    Some((start, end))
}

/// Where a key starts at or after `from`: a `"` followed by `":` (JSON), or a line's first word
/// before ` =` (TOML).
fn key_at(input: &[u8], from: usize, syntax: Syntax) -> Option<(usize, usize)> {
    match syntax {
        Syntax::Json => {
            let mut i = from;
            while i < input.len() {
                if input[i] == b'"' {
                    let mut j = i + 1;
                    while j < input.len() && input[j] != b'"' {
                        j += 1;
                    }
                    if input.get(j + 1) == Some(&b':') {
                        return Some((i + 1, j));
                    }
                    i = j;
                }
                i += 1;
            }
            None
        }
        Syntax::Toml => {
            let mut i = from;
            while i < input.len() {
                if input[i] == b'\n' {
                    let start = i + 1;
                    let mut j = start;
                    while j < input.len() && (input[j].is_ascii_alphanumeric() || input[j] == b'_')
                    {
                        j += 1;
                    }
                    if j > start && input.get(j) == Some(&b' ') {
                        return Some((start, j));
                    }
                }
                i += 1;
            }
            None
        }
    }
}

fn nested(depth: usize, syntax: Syntax) -> Vec<u8> {
    match syntax {
        Syntax::Json => {
            let (open, close): (&[u8], &[u8]) = if depth.is_multiple_of(2) {
                (b"[", b"]")
            } else {
                (b"{\"a\":", b"}")
            };
            let mut v = Vec::new();
            for _ in 0..depth {
                v.extend_from_slice(open);
            }
            v.extend_from_slice(b"1");
            for _ in 0..depth {
                v.extend_from_slice(close);
            }
            v
        }
        Syntax::Toml => {
            let mut v = Vec::new();
            for _ in 0..depth {
                v.extend_from_slice(b"{a=");
            }
            v.extend_from_slice(b"1");
            v.extend(std::iter::repeat_n(b'}', depth));
            v
        }
    }
}

/// One mutation of `input` in place.
fn mutate_once(input: &mut Vec<u8>, corpus: &[Vec<u8>], syntax: Syntax, rng: &mut Rng) {
    let len = input.len();
    match rng.below(13) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = *rng.pick(BYTES);
        }
        2 if len > 0 => {
            let i = rng.below(len);
            input[i] = rng.next() as u8;
        }
        3 => {
            let i = rng.below(len + 1);
            let n = 1 + rng.below(8);
            for _ in 0..n {
                let b = if rng.below(2) == 0 {
                    *rng.pick(BYTES)
                } else {
                    rng.next() as u8
                };
                input.insert(i.min(input.len()), b);
            }
        }
        4 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(64));
            input.drain(i..i + n);
        }
        5 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(64));
            let piece = input[i..i + n].to_vec();
            let at = rng.below(input.len() + 1);
            input.splice(at..at, piece);
        }
        6 => {
            // Splice: this input's head, another's tail.
            let other = rng.pick(corpus);
            if other.is_empty() {
                return;
            }
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        7..=9 => {
            // A value replaced by a hostile one.
            let Some((start, end)) = value_at(input, rng.below(len + 1), syntax) else {
                return;
            };
            let with: Vec<u8> = match rng.below(6) {
                0 => nested(1 + rng.below(300), syntax),
                1 => {
                    let mut s = b"\"".to_vec();
                    let pieces: [&[u8]; 3] = [b"x", "é".as_bytes(), "😀".as_bytes()];
                    let piece = *rng.pick(&pieces);
                    for _ in 0..1 + rng.below(5000) {
                        s.extend_from_slice(piece);
                    }
                    s.push(b'"');
                    s
                }
                _ => match syntax {
                    Syntax::Json => rng.pick(JSON_VALUES).as_bytes().to_vec(),
                    Syntax::Toml => rng.pick(TOML_VALUES).as_bytes().to_vec(),
                },
            };
            input.splice(start..end, with);
        }
        10 | 11 => {
            // A key replaced by another the parsers know.
            let Some((start, end)) = key_at(input, rng.below(len + 1), syntax) else {
                return;
            };
            let with = match syntax {
                Syntax::Json => rng.pick(JSON_KEYS),
                Syntax::Toml => rng.pick(TOML_KEYS),
            };
            input.splice(start..end, with.bytes());
        }
        _ if len > 0 => {
            // A control or multi-byte character inside the text.
            let i = rng.below(len + 1);
            let pieces: [&[u8]; 7] = [
                b"\x00",
                b"\x1b[31m",
                b"\\u0000",
                b"\\ud83d",
                "é".as_bytes(),
                "😀".as_bytes(),
                b"\xe2\x82",
            ];
            let piece = *rng.pick(&pieces);
            input.splice(i..i, piece.iter().copied());
        }
        _ => {}
    }
}

/// An input: a corpus entry with one to eight mutations stacked.
fn mutated(corpus: &[Vec<u8>], syntax: Syntax, rng: &mut Rng) -> Vec<u8> {
    let mut input = rng.pick(corpus).clone();
    for _ in 0..1 + rng.below(8) {
        mutate_once(&mut input, corpus, syntax, rng);
    }
    input.truncate(1 << 20);
    input
}

type Run = Box<dyn Fn(&[u8], u64)>;

struct Target {
    name: &'static str,
    syntax: Syntax,
    corpus: Vec<Vec<u8>>,
    /// Runs one input (`n` is the execution number, to vary a status code or a choice).
    run: Run,
}

fn corpus(names: &[&str]) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus");
    names
        .iter()
        .map(|n| {
            let path = if n.starts_with('/') {
                PathBuf::from(n)
            } else if n.starts_with("../") {
                Path::new(env!("CARGO_MANIFEST_DIR")).join(n)
            } else {
                dir.join(n)
            };
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

const ERROR_STATUSES: &[u16] = &[400, 401, 403, 404, 409, 412, 429, 500, 503];

fn targets() -> Vec<Target> {
    let valid = corpus(&[
        "scim_spc.json",
        "scim_resource_types.json",
        "scim_schemas.json",
    ]);
    let valid = std::rc::Rc::new(scim::Documents::new([&valid[0], &valid[1], &valid[2]]));
    let discovery = move |which: scim::Document| -> Run {
        let valid = valid.clone();
        Box::new(move |b: &[u8], n| {
            scim::discovery(which, b, &valid, n);
        })
    };
    let duo_pages = ["duo_users.json", "duo_users_last.json", "duo_groups.json"];
    let duo_errors = [
        "duo_error_400.json",
        "duo_error_401.json",
        "duo_error_429.json",
    ];
    let config_seeds = [
        "../config/example.toml",
        "../config/compose.toml",
        "config_variant.toml",
    ];
    vec![
        Target {
            name: "duo_users",
            syntax: Syntax::Json,
            corpus: corpus(&duo_pages),
            run: Box::new(|b, _| {
                let _ = duo::users_page(200, b);
            }),
        },
        Target {
            name: "duo_groups",
            syntax: Syntax::Json,
            corpus: corpus(&duo_pages),
            run: Box::new(|b, _| {
                let _ = duo::groups_page(200, b);
            }),
        },
        Target {
            name: "duo_error",
            syntax: Syntax::Json,
            corpus: corpus(&duo_errors),
            run: Box::new(|b, n| {
                let status = ERROR_STATUSES[n as usize % ERROR_STATUSES.len()];
                let _ = duo::users_page(status, b);
            }),
        },
        Target {
            name: "duo_integration",
            syntax: Syntax::Json,
            corpus: corpus(&["duo_integration.json", "duo_error_401.json"]),
            run: Box::new(|b, _| {
                let _ = duo::integration(200, b);
            }),
        },
        Target {
            name: "scim_list",
            syntax: Syntax::Json,
            corpus: corpus(&["scim_list.json", "scim_list_empty.json", "scim_user.json"]),
            run: Box::new(|b, _| {
                let _ = scim::list_response(b);
            }),
        },
        Target {
            name: "scim_user",
            syntax: Syntax::Json,
            corpus: corpus(&["scim_user.json", "scim_list.json"]),
            run: Box::new(|b, _| {
                let _ = scim::user(b);
            }),
        },
        Target {
            name: "scim_group",
            syntax: Syntax::Json,
            corpus: corpus(&["scim_group.json", "scim_user.json"]),
            run: Box::new(|b, _| {
                let _ = scim::group(b);
            }),
        },
        Target {
            name: "scim_error",
            syntax: Syntax::Json,
            corpus: corpus(&[
                "scim_error_sf.json",
                "scim_error_rfc.json",
                "scim_error_rest.json",
                "scim_error_html.html",
            ]),
            run: Box::new(|b, n| {
                let status = ERROR_STATUSES[n as usize % ERROR_STATUSES.len()];
                let _ = scim::error_body(status, b);
            }),
        },
        Target {
            name: "scim_service_provider_config",
            syntax: Syntax::Json,
            corpus: corpus(&["scim_spc.json", "scim_spcs_list.json"]),
            run: discovery(scim::Document::ServiceProviderConfig),
        },
        Target {
            name: "scim_resource_types",
            syntax: Syntax::Json,
            corpus: corpus(&["scim_resource_types.json"]),
            run: discovery(scim::Document::ResourceTypes),
        },
        Target {
            name: "scim_schemas",
            syntax: Syntax::Json,
            corpus: corpus(&["scim_schemas.json"]),
            run: discovery(scim::Document::Schemas),
        },
        Target {
            name: "oauth2_token",
            syntax: Syntax::Json,
            corpus: corpus(&[
                "token_ok.json",
                "token_error.json",
                "token_error_client.json",
            ]),
            run: Box::new(|b, n| {
                let status = if n % 3 == 0 { 400 } else { 200 };
                let _ = scim::token_response(status, b);
            }),
        },
        Target {
            name: "config",
            syntax: Syntax::Toml,
            corpus: corpus(&config_seeds),
            run: Box::new(|b, _| {
                // As `scimsync check` reads a file: its text (lossy, as read_to_string would
                // refuse non-UTF-8 before parsing), every variable set, every secret file read.
                let text = String::from_utf8_lossy(b);
                let _ = scimsync::config::parse_with(
                    &text,
                    Path::new("/etc/scimsync/scimsync.toml"),
                    &|_| Some("fuzz-secret".to_owned()),
                    &|_| Ok("fuzz-secret\n".to_owned()),
                );
            }),
        },
    ]
}

/// Where the last panic happened (`file:line`) and its message, recorded by the hook.
static LAST_PANIC: Mutex<Option<(String, String)>> = Mutex::new(None);

fn main() {
    let execs: u64 = std::env::var("SCIMSYNC_FUZZ_EXECS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = std::env::var("SCIMSYNC_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5C1D_5EED);
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    std::panic::set_hook(Box::new(|info| {
        let site = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "?".to_owned());
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some((site, message));
    }));
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("fuzz-panics");
    let mut any_panic = false;
    for target in targets() {
        if !chosen.is_empty() && !chosen.iter().any(|c| c == target.name) {
            continue;
        }
        let mut rng = Rng(seed ^ fnv(target.name));
        let mut panics = 0u64;
        let mut sites: BTreeMap<String, (u64, String, Vec<u8>)> = BTreeMap::new();
        let mut bytes = 0u64;
        let started = Instant::now();
        for n in 0..execs {
            // The seeds themselves first, unchanged.
            let input = match target.corpus.get(n as usize) {
                Some(seed) => seed.clone(),
                None => mutated(&target.corpus, target.syntax, &mut rng),
            };
            bytes += input.len() as u64;
            let run = &target.run;
            if catch_unwind(AssertUnwindSafe(|| run(&input, n))).is_err() {
                panics += 1;
                let (site, message) = LAST_PANIC
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .unwrap_or_else(|| ("?".to_owned(), String::new()));
                sites
                    .entry(site)
                    .or_insert_with(|| (0, message, input.clone()))
                    .0 += 1;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "target={} executions={execs} panics={panics} panic_sites={} seconds={seconds:.1} execs_per_second={:.0} mean_input_bytes={} seed={seed}",
            target.name,
            sites.len(),
            execs as f64 / seconds.max(1e-9),
            bytes / execs.max(1),
        );
        for (i, (site, (count, message, input))) in sites.iter().enumerate() {
            any_panic = true;
            let _ = std::fs::create_dir_all(&out_dir);
            let file = out_dir.join(format!("{}-{i}", target.name));
            let _ = std::fs::write(&file, input);
            println!(
                "panic target={} site={site} count={count} input={} message={:?}",
                target.name,
                file.display(),
                message.chars().take(300).collect::<String>()
            );
        }
    }
    if any_panic {
        std::process::exit(1);
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
