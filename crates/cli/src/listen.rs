//! The daemon's listener: a cap on open connections and a deadline on request headers, so that
//! clients that connect and send nothing (or a byte now and then) cannot starve `/healthz`.
//!
//! - Every connection must send a request's headers within the header timeout of connecting,
//!   and the next request's within the same time of the last response; otherwise it is closed.
//!   Reading does not move the deadline, so sending one byte at a time does not keep a
//!   connection open.
//! - At most `max` connections are open at once: a new one closes the oldest, so the newest
//!   client (a health check) is always served.

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use std::collections::VecDeque;
use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The open connections, oldest first, each with the token that closes it.
#[derive(Debug, Default)]
struct Registry {
    next: u64,
    open: VecDeque<(u64, CancellationToken)>,
}

/// A TCP listener whose connections are capped in number and bounded in idle time.
#[derive(Debug)]
pub(crate) struct GuardedListener {
    inner: TcpListener,
    max: usize,
    header_timeout: Duration,
    registry: Arc<Mutex<Registry>>,
}

impl GuardedListener {
    /// Wraps `inner`: at most `max` (≥ 1) connections, each closed when a request's headers do
    /// not arrive within `header_timeout`.
    pub(crate) fn new(inner: TcpListener, max: usize, header_timeout: Duration) -> Self {
        Self {
            inner,
            max: max.max(1),
            header_timeout,
            registry: Arc::default(),
        }
    }
}

impl Listener for GuardedListener {
    type Io = GuardedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        let close = CancellationToken::new();
        let id = {
            let mut registry = self
                .registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while registry.open.len() >= self.max {
                match registry.open.pop_front() {
                    Some((_, oldest)) => oldest.cancel(),
                    None => break,
                }
            }
            let id = registry.next;
            registry.next += 1;
            registry.open.push_back((id, close.clone()));
            id
        };
        let io = GuardedIo {
            inner: stream,
            timeout: self.header_timeout,
            deadline: Box::pin(tokio::time::sleep(self.header_timeout)),
            closed: Box::pin(close.cancelled_owned()),
            id,
            registry: Arc::clone(&self.registry),
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The peer's address, for handlers (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, GuardedListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, GuardedListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// A connection of a [`GuardedListener`]: reads fail once its deadline passes or once it is
/// closed to make room for a newer one.
pub(crate) struct GuardedIo {
    inner: TcpStream,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    id: u64,
    registry: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for GuardedIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedIo")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Drop for GuardedIo {
    fn drop(&mut self) {
        let mut registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = registry.open.iter().position(|(id, _)| *id == self.id) {
            registry.open.remove(at);
        }
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room: too many open connections (daemon.max_connections)",
            )));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete request within daemon.header_timeout_seconds",
            )));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written
            && *n > 0
        {
            // A response went out: the next request's headers have a full timeout again.
            let deadline = Instant::now() + this.timeout;
            this.deadline.as_mut().reset(deadline);
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn echo_server(max: usize, timeout: Duration) -> SocketAddr {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut listener = GuardedListener::new(tcp, max, timeout);
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut io, _) = listener.accept().await;
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_header_timeout() {
        let addr = echo_server(8, Duration::from_millis(200)).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn the_oldest_connection_makes_room_for_a_new_one() {
        let addr = echo_server(2, Duration::from_secs(60)).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        let _second = TcpStream::connect(addr).await.unwrap();
        let mut third = TcpStream::connect(addr).await.unwrap();
        third.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(5), third.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"hi");
        let n = tokio::time::timeout(Duration::from_secs(5), first.read(&mut buf))
            .await
            .expect("the oldest is closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}
