//! The `[daemon]` section: the listener, its token and its connection limits.

use super::raw::RawDaemon;
use super::validate::Validator;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::time::Duration;

/// Default listener of the daemon: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default cap on the daemon's open connections (`daemon.max_connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default time a client has to send a request's headers (`daemon.header_timeout_seconds`).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The validated `[daemon]` section.
pub(super) struct Daemon {
    pub listen: SocketAddr,
    pub token: Option<SecretString>,
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub stuck_after: Option<Duration>,
}

impl Validator<'_> {
    pub(super) fn daemon(&mut self, raw: RawDaemon) -> Daemon {
        self.unknown::<RawDaemon>("daemon");
        let token = if raw.token.is_some() || raw.token_env.is_some() || raw.token_file.is_some() {
            self.secret("daemon", "token", raw.token, raw.token_env, raw.token_file)
        } else {
            None
        };
        let max_connections = self.range(
            "daemon.max_connections",
            raw.max_connections,
            DEFAULT_MAX_CONNECTIONS as u64,
            1..=65_536,
        ) as usize;
        let header_timeout = Duration::from_secs(self.range(
            "daemon.header_timeout_seconds",
            raw.header_timeout_seconds,
            DEFAULT_HEADER_TIMEOUT.as_secs(),
            1..=3_600,
        ));
        let stuck_after = match raw.stuck_after_seconds {
            Some(s @ 1..=604_800) => Some(Duration::from_secs(s)),
            Some(s) => {
                self.problem(
                    "daemon.stuck_after_seconds",
                    format!(
                        "{s} is out of range: use 1 to 604800 (without it: three times the schedule's interval, at least 1800)"
                    ),
                );
                None
            }
            None => None,
        };
        let listen_text = (self.env)("SCIMSYNC_LISTEN")
            .or(raw.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = match listen_text.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                self.problem(
                    "daemon.listen",
                    format!("{listen_text:?} is not an address:port such as {DEFAULT_LISTEN}"),
                );
                SocketAddr::from(([127, 0, 0, 1], 8080))
            }
        };
        Daemon {
            listen,
            token,
            max_connections,
            header_timeout,
            stuck_after,
        }
    }
}
