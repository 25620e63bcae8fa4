//! The daemon's web view in a real browser: the `scimsync` binary as a daemon on loopback
//! against the Duo and Salesforce emulators, driven by headless Chromium through chromedriver
//! (a small W3C WebDriver client over reqwest, below).
//!
//! Needs `chromedriver` on the PATH (Debian: `chromium` and `chromium-driver`) or its path in
//! `CHROMEDRIVER`. Without it the test says so and passes, unless `CI` is set, where it fails.
//! Screenshots go to `target/tmp/web-view/`; with `SCIMSYNC_WEB_SCREENSHOT_DOCS=1` the
//! connections page is also written to `docs/web-view.png` and one person's history to
//! `docs/web-view-why.png` (the README's pictures).
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use scimsync_sim::duo::{DuoSim, DuoSimConfig};
use scimsync_sim::generator;
use scimsync_sim::salesforce::{DEMO_CLIENT_SECRET, SalesforceConfig, SalesforceSim};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon's token in this test.
const TOKEN: &str = "web-view-test-token-4f1c";
/// Users disabled in the directory: over the demo's limit of 5 deactivations a run.
const DISABLED: usize = 6;
/// A name a directory could hold; the pages must show it as text.
const HOSTILE: &str = "<img src=x onerror=alert(1)>";
/// A host name for the daemon that is not loopback's (the browser and a client resolve it to
/// 127.0.0.1): pages asked for by this name need the token, as from another machine.
const REMOTE_HOST: &str = "scimsync.test";
/// The sample directory's Sales Managers group (group rule 1 of the demo configuration).
const SALES_MANAGERS: &str = "DGSAMPLE000000000004";

/// A child process killed when dropped (a failed assertion leaves nothing running).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver from `CHROMEDRIVER` or the PATH.
fn chromedriver() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMEDRIVER") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("chromedriver"))
            .find(|p| p.is_file())
    })
}

/// A W3C WebDriver session: the few commands this test needs.
struct Driver {
    http: reqwest::Client,
    session: String,
    base: String,
}

/// The key of a web element reference (W3C WebDriver).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Driver {
    async fn start(base: String, http: reqwest::Client) -> Self {
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1440,1000",
                             // A name that is not loopback's, served by the daemon on
                             // loopback: the pages need the token there (the Host rule).
                             format!("--host-resolver-rules=MAP {REMOTE_HOST} 127.0.0.1")]
                }
            }}
        });
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_owned();
        Self {
            http,
            session,
            base,
        }
    }

    /// A command's `value`, or the WebDriver error.
    async fn try_cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        if r["value"].get("error").is_some() {
            Err(r["value"].clone())
        } else {
            Ok(r["value"].clone())
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {}", e["message"]))
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v.as_array()
            .unwrap_or_else(|| panic!("elements {css:?}: {v}"))
            .iter()
            .map(|e| {
                e[ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("element {css:?}: {e}"))
                    .to_owned()
            })
            .collect()
    }

    async fn find(&self, css: &str) -> String {
        self.find_all(css)
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element matches {css:?}"))
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Clicks a link or button and waits for the page it leads to (its URL contains `to`).
    async fn click_to(&self, css: &str, to: &str) {
        self.click(css).await;
        let url = self.wait_url(to).await;
        assert!(url.contains(to), "clicking {css:?} led to {url}, not {to}");
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/clear"),
            Some(json!({})),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The text of the first element matching `css`, found again while a page that is
    /// being replaced (after a click) makes the element stale (at most 10 s).
    async fn text(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            let el = self.find(css).await;
            match self
                .try_cmd(reqwest::Method::GET, &format!("/element/{el}/text"), None)
                .await
            {
                Ok(v) => return v.as_str().unwrap_or_default().to_owned(),
                Err(e)
                    if e["error"] == "stale element reference"
                        && start.elapsed() < Duration::from_secs(10) =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("WebDriver text of {css:?}: {}", e["message"]),
            }
        }
    }

    /// A DOM property (`href` is the absolute URL).
    async fn property(&self, css: &str, name: &str) -> String {
        let el = self.find(css).await;
        self.cmd(
            reqwest::Method::GET,
            &format!("/element/{el}/property/{name}"),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits (at most 10 s) for the page's URL to contain `part`, and returns it.
    async fn wait_url(&self, part: &str) -> String {
        let start = Instant::now();
        loop {
            let url = self.url().await;
            if url.contains(part) || start.elapsed() > Duration::from_secs(10) {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Saves a PNG of the window.
    async fn screenshot(&self, path: &Path) {
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap();
    }

    async fn quit(&self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

/// Waits until `url` answers 200 (at most `within`).
async fn wait_up(http: &reqwest::Client, url: &str, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Ok(r) = http.get(url).send().await
            && r.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn scimsync(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(args)
        .current_dir(dir)
        .env_remove("SCIMSYNC_STORE_URL")
        .env_remove("SCIMSYNC_LISTEN")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_view_in_a_browser_filters_history_and_approves_held_deactivations() {
    let Some(driver_bin) = chromedriver() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromedriver is missing on CI: install chromium and chromium-driver (.ci/run does)"
        );
        eprintln!(
            "NOTICE: chromedriver not found (install chromium and chromium-driver, or set CHROMEDRIVER); \
             the browser test of the web view did not run"
        );
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-view");
    std::fs::create_dir_all(&shots).unwrap();

    // The emulators and a configuration with a token; the schedule never fires during the test.
    let duo = DuoSim::start(DuoSimConfig::demo(), generator::sample())
        .await
        .unwrap();
    let sf = SalesforceSim::start(SalesforceConfig::demo())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("duo_secret_key"), duo.secret_key()).unwrap();
    std::fs::write(
        dir.path().join("salesforce_client_secret"),
        DEMO_CLIENT_SECRET,
    )
    .unwrap();
    std::fs::write(dir.path().join("daemon_token"), format!("{TOKEN}\n")).unwrap();
    let config = dir.path().join("scimsync.toml");
    let store = format!("sqlite://{}", dir.path().join("store.db").display());
    let text =
        scimsync::demo::demo_config(&duo.base_url(), &sf.token_url(), &sf.base_url(), &store)
            .replace(
                "[store]",
                "[daemon]\ntoken_file = \"daemon_token\"\n\n[store]",
            )
            .replace(
                "schedule = \"0 */15 * * * *\"",
                "schedule = \"0 0 3 1 1 *\"",
            );
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap().to_owned();

    // A first sync, then the directory changes: several users disabled (over the guard's
    // limit) and one renamed to something hostile.
    let (c, d) = (config.clone(), dir.path().to_owned());
    let out = tokio::task::spawn_blocking(move || scimsync(&["reconcile", "--config", &c], &d))
        .await
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "first sync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let provisioned: Vec<_> = sf
        .inspect()
        .users()
        .into_iter()
        .filter(|u| u.active)
        .filter_map(|u| u.external_id)
        .collect();
    let data = duo.dataset();
    let users: Vec<_> = data
        .snapshot()
        .users
        .into_iter()
        .filter(|u| u.status == "active" && provisioned.contains(&u.user_id))
        .collect();
    assert!(users.len() > DISABLED + 1, "{} provisioned", users.len());
    let disabled: Vec<_> = users[..DISABLED].to_vec();
    for u in &disabled {
        data.disable_user(&u.user_id).unwrap();
    }
    let renamed = &users[DISABLED];
    data.set_user_names(&renamed.user_id, HOSTILE, "O'Brien & Co")
        .unwrap();

    // The daemon, and a run it starts: the guard holds the deactivations back.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _daemon = Child(
        Command::new(env!("CARGO_BIN_EXE_scimsync"))
            .args(["daemon", "--config", &config])
            .env("SCIMSYNC_LISTEN", format!("127.0.0.1:{port}"))
            .env_remove("SCIMSYNC_STORE_URL")
            .current_dir(dir.path())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    assert!(
        wait_up(&http, &format!("{base}/healthz"), Duration::from_secs(15)).await,
        "the daemon answers"
    );
    let r = http
        .post(format!("{base}/connections/salesforce/sync"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut guarded = false;
    for _ in 0..300 {
        let runs = http
            .get(format!("{base}/ui/runs?format=json"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if runs.contains("\"status\":\"guarded\"") {
            guarded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(guarded, "the daemon's run was guarded");
    let still_active = |sf: &SalesforceSim| {
        let users = sf.inspect().users();
        disabled
            .iter()
            .filter(|d| {
                users
                    .iter()
                    .any(|u| u.active && u.external_id.as_deref() == Some(d.user_id.as_str()))
            })
            .count()
    };
    assert_eq!(still_active(&sf), DISABLED, "held back, not deactivated");

    // The browser.
    let wd_port = free_port();
    let _chromedriver = Child(
        Command::new(&driver_bin)
            .arg(format!("--port={wd_port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let wd = format!("http://127.0.0.1:{wd_port}");
    assert!(
        wait_up(&http, &format!("{wd}/status"), Duration::from_secs(15)).await,
        "chromedriver answers"
    );
    let b = Driver::start(wd, http.clone()).await;

    // Connections: schedule, last run, lease, the held deactivations.
    b.goto(&format!("{base}/ui")).await;
    let card = b.text("#conn-salesforce").await;
    for expected in [
        "0 0 3 1 1 *",
        "next run",
        "guarded",
        "holding deactivations",
        "free",
    ] {
        assert!(card.contains(expected), "{expected:?} missing:\n{card}");
    }
    let held = b.find_all("table.held tbody tr").await;
    assert_eq!(held.len(), DISABLED, "every held deactivation is listed");
    b.screenshot(&shots.join("connections.png")).await;
    if std::env::var_os("SCIMSYNC_WEB_SCREENSHOT_DOCS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/web-view.png");
        std::fs::copy(shots.join("connections.png"), docs).unwrap();
    }

    // Runs.
    b.click_to("header nav a[href='/ui/runs']", "/ui/runs")
        .await;
    let runs = b.text("table.runs").await;
    assert!(
        runs.contains("guarded") && runs.contains("partial"),
        "{runs}"
    );
    b.screenshot(&shots.join("runs.png")).await;

    // Activity, filtered as `scimsync activity --op deactivate_user --outcome skipped`.
    b.click_to("header nav a[href='/ui/activity']", "/ui/activity")
        .await;
    let all = b.find_all("table.activity tbody tr").await.len();
    b.type_into("input[name=op]", "deactivate_user").await;
    b.click("select[name=outcome] option[value=skipped]").await;
    b.click_to("form.filters button[type=submit]", "op=deactivate_user")
        .await;
    let rows = b.find_all("table.activity tbody tr").await;
    assert_eq!(rows.len(), DISABLED, "only the held deactivations");
    assert!(all > rows.len());
    let shown = b.text("table.activity").await;
    assert!(shown.contains("held back by the guard"), "{shown}");
    b.screenshot(&shots.join("activity.png")).await;
    let csv_link = b.property("a.csv", "href").await;
    let csv = http
        .get(&csv_link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("id,at,connection,run,op,outcome,object,name,target_id,detail\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), DISABLED + 1, "{csv}");

    // The hostile name is shown as text, nowhere as markup.
    b.goto(&format!("{base}/ui/activity?op=update_user")).await;
    let shown = b.text("table.activity").await;
    assert!(shown.contains(HOSTILE), "{shown}");
    assert!(b.find_all("main img").await.is_empty(), "no injected image");

    // One person's history.
    b.goto(&format!(
        "{base}/ui/activity?op=deactivate_user&outcome=skipped"
    ))
    .await;
    b.click_to("table.activity a.user", "/ui/users/").await;
    let history = b.text("main").await;
    assert!(history.contains("History of"), "{history}");
    assert!(history.contains("create_user"), "{history}");
    assert!(history.contains("deactivate_user"), "{history}");
    b.screenshot(&shots.join("user.png")).await;
    // By the Duo username: the renamed user's history says what the account had, where the
    // new value comes from, and which rule chose the entitlements at creation.
    b.goto(&format!("{base}/ui/users/{}", renamed.username))
        .await;
    let history = b.text("table.activity").await;
    assert!(
        history.contains(&format!(
            "name.givenName: {} → {HOSTILE} ← firstname",
            renamed.firstname
        )) && history.contains("→ O'Brien & Co ← lastname"),
        "{history}"
    );
    assert!(history.contains("(by "), "the rule: {history}");
    assert!(b.find_all("main img").await.is_empty(), "no injected image");

    // The plan: deactivations with reasons, the guard's verdict, the fingerprint.
    b.goto(&format!("{base}/ui")).await;
    b.click_to("a.review", "/plan").await;
    let guard = b.text("div.guard").await;
    assert!(guard.contains("max_deactivations"), "{guard}");
    let plan = b.text("table.plan").await;
    assert_eq!(
        plan.matches("disabled in the directory").count(),
        DISABLED,
        "{plan}"
    );
    let fingerprint = b.text("code.fingerprint").await;
    assert_eq!(fingerprint.len(), 16, "{fingerprint}");
    b.screenshot(&shots.join("plan.png")).await;

    // Refused: a wrong token in the browser, no token at all, and a plan that is not the
    // current one.
    b.type_into("form.approve input[name=token]", "not-the-token")
        .await;
    b.click_to("form.approve button", "/approve").await;
    assert!(
        b.text("main")
            .await
            .contains("the token is missing or wrong")
    );
    b.screenshot(&shots.join("refused.png")).await;
    let r = http
        .post(format!("{base}/ui/connections/salesforce/approve"))
        .form(&[("plan", fingerprint.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no token, no approval");
    let r = http
        .post(format!("{base}/ui/connections/salesforce/approve"))
        .form(&[("plan", "0000000000000000"), ("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "another plan than the one made now");
    let page = r.text().await.unwrap();
    assert!(page.contains("Nothing was applied"), "{page}");
    assert!(page.contains(&fingerprint), "the new plan is shown: {page}");
    // A signed-in browser's plan page carries an approval code instead of asking for the
    // token; the code works only with the cookie, and the cookie only with the code.
    let r = http
        .post(format!("{base}/ui/sign-in"))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    let session = r.url().to_string();
    assert!(
        session.ends_with("/ui"),
        "signed in and sent to /ui: {session}"
    );
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .post(format!("{base}/ui/sign-in"))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = http
        .get(format!("{base}/ui/connections/salesforce/plan"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let code = page
        .split("name=\"code\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no approval code: {page}"))
        .to_owned();
    assert!(!page.contains("name=\"token\""), "no token asked: {page}");
    let approve = |cookie: Option<&str>, code: &str| {
        let mut req = no_redirect
            .post(format!("{base}/ui/connections/salesforce/approve"))
            .form(&[("plan", "0000000000000000"), ("code", code)]);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    assert_eq!(
        approve(None, &code).await.unwrap().status(),
        401,
        "no cookie"
    );
    assert_eq!(
        approve(Some(&session), "0123").await.unwrap().status(),
        401,
        "a wrong code"
    );
    assert_eq!(
        approve(Some(&session), &code).await.unwrap().status(),
        409,
        "cookie and code pass (and the stale plan is still refused)"
    );
    assert_eq!(still_active(&sf), DISABLED, "nothing applied yet");

    // Approved with the token: exactly the plan shown is applied.
    b.goto(&format!("{base}/ui/connections/salesforce/plan"))
        .await;
    assert_eq!(
        b.text("code.fingerprint").await,
        fingerprint,
        "a stable plan"
    );
    b.type_into("form.approve input[name=token]", TOKEN).await;
    b.click_to("form.approve button", "/approve").await;
    let done = b.text("main").await;
    assert!(done.contains("Approved plan"), "{done}");
    b.screenshot(&shots.join("approved.png")).await;
    assert_eq!(still_active(&sf), 0, "the held deactivations were applied");
    b.goto(&format!("{base}/ui")).await;
    assert!(b.text("dd.guard").await.contains("nothing held"));
    // A deactivated user's history, by Duo username: the deactivation names what changed,
    // the membership rows are there, and the creation names its rule, all by name.
    b.goto(&format!("{base}/ui/users/{}", disabled[0].username))
        .await;
    let history = b.text("table.activity").await;
    assert!(
        history.contains("disabled in the directory (status disabled)"),
        "{history}"
    );
    assert!(history.contains("remove_members"), "{history}");
    assert!(
        history.contains("by group rule") || history.contains("by the baseline rule"),
        "{history}"
    );
    assert!(
        !history.contains("00e") && !history.contains("0PS"),
        "catalogue names, not ids: {history}"
    );
    b.screenshot(&shots.join("user-why.png")).await;
    if std::env::var_os("SCIMSYNC_WEB_SCREENSHOT_DOCS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/web-view-why.png");
        std::fs::copy(shots.join("user-why.png"), docs).unwrap();
    }

    // Paging back through the log, five entries a page.
    b.goto(&format!("{base}/ui/activity?limit=5")).await;
    let newest = b.text("table.activity tbody tr td.num").await;
    b.click_to("a.older", "before=").await;
    assert_eq!(b.find_all("table.activity tbody tr").await.len(), 5);
    let older = b.text("table.activity tbody tr td.num").await;
    assert!(
        older.parse::<i64>().unwrap() < newest.parse::<i64>().unwrap() - 4,
        "{older} is on the page before {newest}"
    );
    assert!(!b.find_all("a.newest").await.is_empty());

    // A plan that explains itself: a user joins Sales Managers; the preview names the rule,
    // the group and the catalogue entries it chose.
    let joiner = users[DISABLED + 1..]
        .iter()
        .find(|u| !u.groups.iter().any(|g| g == SALES_MANAGERS))
        .unwrap();
    data.add_user_to_group(&joiner.user_id, SALES_MANAGERS)
        .unwrap();
    b.goto(&format!("{base}/ui/connections/salesforce/plan"))
        .await;
    let plan = b.text("table.plan").await;
    assert!(
        plan.contains("by group rule 1 (member of Sales Managers)"),
        "{plan}"
    );
    assert!(
        plan.contains("VP Sales"),
        "catalogue names, not ids: {plan}"
    );
    assert!(
        b.text("div.notice")
            .await
            .contains("Within the safety limits")
    );
    b.screenshot(&shots.join("plan-explained.png")).await;

    // Beyond loopback (another Host name), pages need the token: the browser is sent to the
    // sign-in form and back; a wrong token is refused; signing out ends it.
    let remote = format!("http://{REMOTE_HOST}:{port}");
    let person = format!("/ui/users/{}", disabled[1].username);
    b.goto(&format!("{remote}{person}")).await;
    assert!(b.wait_url("/ui/sign-in").await.contains("next="));
    b.type_into("form.sign-in input[name=token]", "not-the-token")
        .await;
    b.click_to("form.sign-in button", "/ui/sign-in").await;
    assert!(
        b.text("main")
            .await
            .contains("the token is missing or wrong")
    );
    b.type_into("form.sign-in input[name=token]", TOKEN).await;
    b.click_to("form.sign-in button", &person).await;
    let history = b.text("table.activity").await;
    assert!(history.contains("deactivate_user"), "{history}");
    b.screenshot(&shots.join("signed-in.png")).await;
    // Signed in, every page opens (the plan preview too).
    b.goto(&format!("{remote}/ui/connections/salesforce/plan"))
        .await;
    assert!(b.text("main").await.contains("Plan of salesforce"));
    b.goto(&format!("{remote}/ui/sign-in")).await;
    b.click_to("form.sign-out button", "/ui/sign-in").await;
    b.goto(&format!("{remote}{person}")).await;
    assert!(
        b.wait_url("/ui/sign-in").await.contains("/ui/sign-in"),
        "signed out"
    );

    // The cookie, as a client sees it: not the token, HttpOnly, SameSite=Strict, Secure only
    // behind an HTTPS proxy on loopback; alone, it approves nothing.
    let client = reqwest::Client::builder()
        .resolve(REMOTE_HOST, ([127, 0, 0, 1], port).into())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(format!("{remote}/ui/activity"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        303,
        "a page without the token is sent to sign in"
    );
    let sign_in = |proto: Option<&'static str>| {
        let mut req = client
            .post(format!("{remote}/ui/sign-in"))
            .form(&[("token", TOKEN), ("next", "/ui/activity")]);
        if let Some(p) = proto {
            req = req.header("x-forwarded-proto", p);
        }
        req.send()
    };
    let r = sign_in(None).await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains("Secure")
            && !cookie.contains(TOKEN),
        "{cookie}"
    );
    let r = sign_in(Some("https")).await.unwrap();
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .ends_with("; Secure")
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let r = client
        .get(format!("{remote}/ui/activity"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the cookie opens the pages");
    let r = client
        .post(format!("{remote}/ui/connections/salesforce/approve"))
        .header("cookie", &session)
        .form(&[("plan", fingerprint.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "a form from another site carries the cookie at best, never the approval code"
    );
    let r = client
        .get(format!("{remote}/ui/activity"))
        .header("cookie", "scimsync_session=not-a-session")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "a made-up cookie opens nothing");

    // Nothing secret on any page.
    for page in [
        "/ui",
        "/ui/runs",
        "/ui/activity",
        "/ui/connections/salesforce/plan",
        "/ui/sign-in",
    ] {
        let body = http
            .get(format!("{base}{page}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !body.contains(TOKEN) && !body.contains(DEMO_CLIENT_SECRET),
            "{page}"
        );
        assert!(!body.contains(duo.secret_key()), "{page}");
    }
    b.quit().await;
    eprintln!("screenshots in {}", shots.display());
}
