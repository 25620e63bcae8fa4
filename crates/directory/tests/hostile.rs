//! The Duo reader against a tiny hostile server on loopback: pages that never end, answers
//! that never stop growing, redirects to other hosts. Each read ends, in bounded time and
//! memory, with an error that says what happened.
#![allow(clippy::unwrap_used)]

use scimsync_core::ports::Source as _;
use scimsync_directory::{DirectoryError, DuoConfig, DuoEndpoint, DuoSource};
use secrecy::SecretString;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// One raw HTTP answer: the status line's code, extra headers and the body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Serves `answer(request_line, n)` to every request (n counts from 0); returns the base URL
/// and the request counter.
async fn serve(
    answer: impl Fn(&str, usize) -> Answer + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let answer = Arc::clone(&answer);
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let line = text.lines().next().unwrap_or_default().to_owned();
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let a = answer(&line, n);
                let mut out = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", a.status);
                for (k, v) in &a.headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                if !a.headers.iter().any(|(k, _)| k == "transfer-encoding") {
                    out.push_str(&format!("content-length: {}\r\n", a.body.len()));
                }
                out.push_str("\r\n");
                let _ = socket.write_all(out.as_bytes()).await;
                let _ = socket.write_all(&a.body).await;
            });
        }
    });
    (format!("http://{addr}"), count)
}

fn json(body: serde_json::Value) -> Answer {
    Answer {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

fn reader(base: &str, tweak: impl FnOnce(&mut DuoConfig)) -> DuoSource {
    let mut config = DuoConfig {
        backoff_base: Duration::from_millis(1),
        max_attempts: 2,
        ..DuoConfig::new(
            DuoEndpoint::BaseUrl(url::Url::parse(base).unwrap()),
            "DIXXXXXXXXXXXXXXXXXX".into(),
            SecretString::from("s".repeat(40)),
        )
    };
    tweak(&mut config);
    DuoSource::new(config).unwrap()
}

fn user(id: &str) -> serde_json::Value {
    serde_json::json!({"user_id": id, "username": id, "status": "active"})
}

#[tokio::test]
async fn a_next_offset_that_does_not_advance_stops_the_read() {
    let (base, count) = serve(|_, n| {
        json(serde_json::json!({
            "stat": "OK",
            "response": [user(&format!("U{n}"))],
            "metadata": {"next_offset": 1, "total_objects": 1_000_000}
        }))
    })
    .await;
    let err = tokio::time::timeout(Duration::from_secs(10), reader(&base, |_| {}).read())
        .await
        .expect("the read ends")
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::InvalidResponse { message, .. } if message.contains("does not advance past offset 1")),
        "{err}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 2, "stopped at the repeat");
}

#[tokio::test]
async fn pages_beyond_the_cap_stop_the_read() {
    let (base, count) = serve(|line, _| {
        let offset: u64 = line
            .split("offset=")
            .nth(1)
            .and_then(|v| v.split(['&', ' ']).next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        json(serde_json::json!({
            "stat": "OK",
            "response": [user(&format!("U{offset}"))],
            "metadata": {"next_offset": offset + 1}
        }))
    })
    .await;
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        reader(&base, |c| c.max_pages = 20).read(),
    )
    .await
    .expect("the read ends")
    .unwrap_err();
    assert!(err.to_string().contains("more than 20 pages"), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn an_answer_larger_than_the_cap_is_an_error_naming_the_url() {
    // Declared by Content-Length.
    let (base, _) = serve(|_, _| Answer {
        status: 200,
        headers: vec![],
        body: vec![b' '; 2 * 1024 * 1024],
    })
    .await;
    let err = reader(&base, |c| c.max_body_bytes = 1024 * 1024)
        .read()
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::TooLarge { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("/admin/v1/users") && text.contains("larger than 1048576 bytes"),
        "{text}"
    );
    // Streamed without a length: reading stops at the cap.
    let (base, _) = serve(|_, _| {
        let mut body = Vec::new();
        for _ in 0..64 {
            body.extend_from_slice(b"8000\r\n");
            body.extend(std::iter::repeat_n(b' ', 0x8000));
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        Answer {
            status: 200,
            headers: vec![("transfer-encoding".into(), "chunked".into())],
            body,
        }
    })
    .await;
    let err = reader(&base, |c| c.max_body_bytes = 100_000)
        .read()
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::TooLarge { .. }), "{err}");
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let (elsewhere, followed) =
        serve(|_, _| json(serde_json::json!({"stat": "OK", "response": []}))).await;
    let target = elsewhere.replace("127.0.0.1", "localhost");
    let (base, _) = serve(move |_, _| Answer {
        status: 307,
        headers: vec![("location".into(), format!("{target}/admin/v1/users"))],
        body: Vec::new(),
    })
    .await;
    let err = reader(&base, |_| {}).read().await.unwrap_err();
    assert!(
        matches!(&err, DirectoryError::Redirect { status: 307, to_host, .. } if to_host == "localhost"),
        "{err}"
    );
    assert!(
        err.to_string().contains("redirect (307) to localhost"),
        "{err}"
    );
    assert_eq!(
        followed.load(Ordering::SeqCst),
        0,
        "the signed request went nowhere else"
    );
}

#[tokio::test]
async fn a_duo_user_without_user_id_is_set_apart_as_unidentified() {
    let (base, _) = serve(|line, _| {
        if line.contains("/groups") {
            return json(serde_json::json!({"stat": "OK", "response": []}));
        }
        json(serde_json::json!({
            "stat": "OK",
            "response": [user("DU1"), {"username": "ghost", "status": "active"}],
            "metadata": {}
        }))
    })
    .await;
    let snapshot = reader(&base, |_| {}).read().await.unwrap();
    assert_eq!(snapshot.users.len(), 1);
    assert_eq!(
        snapshot.unidentified,
        ["a Duo user without user_id (username \"ghost\")"]
    );
}
