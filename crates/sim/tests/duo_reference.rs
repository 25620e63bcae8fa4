//! Duo's own Python client (PyPI `duo-client` 5.7.0) against the emulator: it signs v5,
//! v2-SHA512 and v2-SHA1, follows `next_offset` through short pages and retries a 429.
//!
//! Ignored by default because it needs that package:
//! `python3 -m venv /tmp/duo && /tmp/duo/bin/pip install duo-client==5.7.0`, then
//! `DUO_REFERENCE_PYTHON=/tmp/duo/bin/python cargo nextest run -p scimsync-sim --run-ignored all duo_python`.

use std::collections::BTreeSet;
use std::process::Command;

use scimsync_sim::duo::{DuoSim, DuoSimConfig};
use scimsync_sim::generator::generate;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Duo's Python client; see the file's docs"]
async fn duo_python_client_reads_the_emulator() {
    let python = std::env::var("DUO_REFERENCE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    // The Python client signs the bare host but sends `Host: 127.0.0.1:PORT`.
    let config = DuoSimConfig {
        api_host: Some("127.0.0.1".to_owned()),
        ..DuoSimConfig::demo()
    };
    let sim = DuoSim::start(config, generate(1_234, 130, 9))
        .await
        .unwrap();
    sim.knobs().short_pages(37).rate_limit_next(1);
    let port = sim.base_url().rsplit(':').next().unwrap().to_owned();
    let (ikey, skey) = (
        sim.integration_key().to_owned(),
        sim.secret_key().to_owned(),
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/duo_reference.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("DUO_HOST", "127.0.0.1")
            .env("DUO_PORT", port)
            .env("DUO_IKEY", ikey)
            .env("DUO_SKEY", skey)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for scheme in ["v5-sha512", "v2-sha512", "v2-sha1"] {
        let line = stdout.lines().find(|l| l.starts_with(scheme)).unwrap();
        assert!(line.contains("users=1234 groups=130"), "{line}");
    }
    let statuses: BTreeSet<u16> = sim.request_log().iter().map(|r| r.status).collect();
    assert_eq!(statuses, BTreeSet::from([200, 429]));
}
