//! `scimsync demo` and `scimsync sim`: the emulators on loopback, and a guided run against them.

use crate::config::Settings;
use crate::{SimArgs, load_settings, output, wiring};
use anyhow::Context as _;
use scimsync_core::activity::{ActivityQuery, Trigger};
use scimsync_core::ports::Store as _;
use scimsync_engine::{RunOptions, reconcile_once};
use scimsync_sim::duo::{DuoSim, DuoSimConfig};
use scimsync_sim::generator::{self, DuoDataset};
use scimsync_sim::salesforce::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SalesforceConfig, SalesforceSim,
};
use scimsync_store::SqlStore;
use std::path::Path;

const SALES: &str = "DGSAMPLE000000000001";
const SALES_MANAGERS: &str = "DGSAMPLE000000000004";

/// The demo configuration, pointing at emulators on the given URLs.
pub fn demo_config(
    duo_base_url: &str,
    sf_token_url: &str,
    sf_base_url: &str,
    store_url: &str,
) -> String {
    format!(
        r#"# Written by `scimsync demo`: a connection from the Duo emulator to the Salesforce emulator.
[store]
url = "{store_url}"

[[connections]]
name = "salesforce"
schedule = "0 */15 * * * *"

[connections.source]
kind = "duo"
base_url = "{duo_base_url}"
integration_key = "{ikey}"
secret_key_file = "duo_secret_key"

[connections.target]
kind = "salesforce"
base_url = "{sf_base_url}"
token_url = "{sf_token_url}"
client_id = "{DEMO_CLIENT_ID}"
client_secret_file = "salesforce_client_secret"

[connections.scope]
groups = ["Sales", "Support", "Engineering", "Sales Managers", "Contractors", "Customer Success Enablement and Onboarding EMEA"]

[connections.mapping]
title = "custom.title"
department = "custom.department"
workPhone = "phone"

[connections.governance.baseline]
profile = "Standard User"
permission_sets = ["Knowledge Author"]

[[connections.governance.group_rules]]
groups = ["Sales Managers"]
priority = 1
profile = "Standard User"
permission_sets = ["Sales Cloud User", "Reports Builder"]
role = "VP Sales"

[[connections.governance.group_rules]]
groups = ["Sales"]
priority = 2
profile = "Standard User"
permission_sets = ["Sales Cloud User"]
role = "Sales Rep"

[[connections.governance.group_rules]]
groups = ["Engineering"]
priority = 3
profile = "System Administrator"
role = "Engineer"

[connections.safety]
max_deactivations = 5
max_deactivation_percent = 20
"#,
        ikey = DuoSimConfig::demo().integration_key,
    )
}

fn write_secret(path: &Path, value: &str) -> anyhow::Result<()> {
    std::fs::write(path, value).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn heading(text: &str) {
    println!("\n=== {text}");
}

async fn run_once(
    settings: &Settings,
    store: &SqlStore,
    dry_run: bool,
) -> anyhow::Result<scimsync_engine::RunReport> {
    let conn = wiring::connection(&settings.connections[0])?;
    let opts = RunOptions {
        trigger: Trigger::Manual,
        dry_run,
        explain: dry_run,
        ..RunOptions::default()
    };
    Ok(reconcile_once(&conn, store, &opts).await?)
}

fn summary(report: &scimsync_engine::RunReport) {
    println!(
        "run {}: {:?} — {} applied, {} failed, {} rejected, {} skipped",
        report.run_id,
        report.status,
        report.applied,
        report.failed,
        report.rejected,
        report.skipped
    );
}

/// The guided demo.
pub async fn run(dir: &Path) -> anyhow::Result<u8> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let store_path = dir.join("store.db");
    for f in ["store.db", "store.db-wal", "store.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let duo = DuoSim::start(DuoSimConfig::demo(), generator::sample()).await?;
    let sf = SalesforceSim::start(SalesforceConfig::demo()).await?;
    write_secret(&dir.join("duo_secret_key"), duo.secret_key())?;
    write_secret(&dir.join("salesforce_client_secret"), DEMO_CLIENT_SECRET)?;
    let config_path = dir.join("scimsync.toml");
    std::fs::write(
        &config_path,
        demo_config(
            &duo.base_url(),
            &sf.token_url(),
            &sf.base_url(),
            &format!("sqlite://{}", store_path.display()),
        ),
    )?;
    println!("Duo Admin API emulator:   {}", duo.base_url());
    println!("Salesforce emulator:      {}", sf.base_url());
    println!("Configuration:            {}", config_path.display());

    let settings = load_settings(&config_path)?;
    let store = SqlStore::connect(&settings.store_url).await?;

    heading("1. The plan (dry run): what the first reconcile will do");
    let plan = run_once(&settings, &store, true).await?;
    print!("{}", plan.plan.to_table_with(&plan.labels));

    heading("2. Reconcile");
    let first = run_once(&settings, &store, false).await?;
    summary(&first);
    println!(
        "Salesforce now holds {} users and {} groups.",
        sf.inspect().users().len(),
        sf.inspect().groups().len()
    );

    heading("3. A second reconcile changes nothing");
    let writes = sf.inspect().writes();
    let second = run_once(&settings, &store, false).await?;
    summary(&second);
    println!(
        "writes sent to Salesforce: {}",
        sf.inspect().writes() - writes
    );

    heading("4. The directory changes");
    let data = duo.dataset();
    let alice = user_id(&data.snapshot(), "alice.anderson");
    let bob = user_id(&data.snapshot(), "bob.baker");
    let carol = user_id(&data.snapshot(), "carol.chen");
    let frank = user_id(&data.snapshot(), "frank.fischer");
    data.set_user_names(&carol, "Carol", "Chen-Whitfield")?;
    println!("- Carol Chen is now Carol Chen-Whitfield (a rename)");
    data.move_user(&bob, SALES, SALES_MANAGERS)?;
    println!(
        "- Bob Baker moves from Sales to Sales Managers (a new rule: role VP Sales, Reports Builder)"
    );
    data.disable_user(&frank)?;
    println!("- Frank Fischer is disabled in Duo");
    data.set_user_email(&alice, "alice.anderson@new.example.com")?;
    println!("- Alice Anderson's email changes (Salesforce holds it until she verifies it)");

    heading("5. Reconcile again");
    let plan = run_once(&settings, &store, true).await?;
    print!("{}", plan.plan.to_table_with(&plan.labels));
    let third = run_once(&settings, &store, false).await?;
    summary(&third);
    println!(
        "verification emails sent by Salesforce: {}",
        sf.inspect().verification_emails_sent()
    );

    heading("6. The activity log of that run");
    let entries = store
        .query_activity(&ActivityQuery {
            run_id: Some(third.run_id),
            ..ActivityQuery::default()
        })
        .await?;
    print!(
        "{}",
        output::activity(&entries, output::Format::Table, true)
    );
    println!(
        "\nTry: scimsync activity --config {} --user bob.baker",
        config_path.display()
    );
    println!("     scimsync runs --config {}", config_path.display());
    Ok(0)
}

fn user_id(data: &DuoDataset, username: &str) -> String {
    data.users
        .iter()
        .find(|u| u.username == username)
        .map(|u| u.user_id.clone())
        .unwrap_or_default()
}

/// `scimsync sim`: both emulators in the foreground.
pub async fn sim(args: SimArgs) -> anyhow::Result<u8> {
    let dataset = match (&args.directory, args.generate) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            DuoDataset::from_json(&text)
                .with_context(|| format!("{} is not a Duo dataset", path.display()))?
        }
        (None, Some(n)) => generator::generate(n, (n / 50).max(5), 42),
        (None, None) => generator::sample(),
    };
    let duo = DuoSim::start(
        DuoSimConfig {
            port: args.duo_port,
            ..DuoSimConfig::demo()
        },
        dataset,
    )
    .await?;
    let sf = SalesforceSim::start(SalesforceConfig {
        port: args.salesforce_port,
        ..SalesforceConfig::demo()
    })
    .await?;
    println!("Duo Admin API emulator");
    println!("  base_url        = \"{}\"", duo.base_url());
    println!("  integration_key = \"{}\"", duo.integration_key());
    println!(
        "  secret key      : {} (an emulator's, not a real one)",
        duo.secret_key()
    );
    println!("Salesforce emulator");
    println!("  base_url        = \"{}\"", sf.base_url());
    println!("  token_url       = \"{}\"", sf.token_url());
    println!("  client_id       = \"{DEMO_CLIENT_ID}\"");
    println!("  client secret   : {DEMO_CLIENT_SECRET} (an emulator's, not a real one)");
    println!("Press Ctrl-C to stop.");
    crate::shutdown_token().cancelled().await;
    Ok(0)
}
