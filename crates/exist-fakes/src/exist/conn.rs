//! Connections that a handler can cut: the [`Fault::Drop`](super::Fault::Drop) fault closes the
//! connection without an answer, so the client sees a network error, not an HTTP status.
//!
//! axum gives handlers no handle on their connection, so the listener wraps each stream with a
//! [`KillSwitch`] that handlers receive through `ConnectInfo`. Once the switch is thrown, every
//! read and write on the stream fails, hyper gives the connection up and the socket closes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Cuts the connection it was handed out for.
#[derive(Debug, Clone, Default)]
pub(crate) struct KillSwitch(Arc<AtomicBool>);

impl KillSwitch {
    /// From now on the connection fails every read and write, so it closes unanswered.
    pub(crate) fn cut(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn is_cut(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Connected<IncomingStream<'_, SandboxListener>> for KillSwitch {
    fn connect_info(stream: IncomingStream<'_, SandboxListener>) -> Self {
        stream.io().switch.clone()
    }
}

/// A TCP listener whose connections carry a [`KillSwitch`].
pub(crate) struct SandboxListener(TcpListener);

impl SandboxListener {
    pub(crate) async fn bind(addr: SocketAddr) -> io::Result<Self> {
        TcpListener::bind(addr).await.map(Self)
    }
}

impl Listener for SandboxListener {
    type Io = CuttableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, peer)) => {
                    // Small JSON answers should not wait for Nagle's algorithm.
                    let _ = stream.set_nodelay(true);
                    let stream = CuttableStream {
                        inner: stream,
                        switch: KillSwitch::default(),
                    };
                    return (stream, peer);
                }
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "exist fake: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Errors that concern one connection only, after which accepting the next one is fine.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A TCP stream that fails every operation once its [`KillSwitch`] is cut.
pub(crate) struct CuttableStream {
    inner: TcpStream,
    switch: KillSwitch,
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "exist fake fault: connection dropped",
    )
}

impl AsyncRead for CuttableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.switch.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CuttableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.switch.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.switch.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.switch.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Closing is what a cut connection should do, so shutdown always goes through.
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
