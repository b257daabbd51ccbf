//! The attempt's log: guest stdout, stderr and `log` calls, in one capped buffer.
//!
//! A guest that prints too much must not fail because of it (Rust's `println!` panics when stdout
//! refuses a write), so once the cap is reached further bytes are counted and dropped, and the
//! log ends with a note saying how many were dropped.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Largest single write the guest is offered; bigger writes are split by the guest's WASI layer.
const WRITE_PERMIT_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Buffer {
    kept: Vec<u8>,
    dropped: u64,
}

/// A shared, capped log buffer. Clones write to the same buffer.
#[derive(Debug, Clone)]
pub struct AttemptLog {
    buffer: Arc<Mutex<Buffer>>,
    cap: usize,
}

impl AttemptLog {
    pub fn new(cap: usize) -> Self {
        AttemptLog {
            buffer: Arc::default(),
            cap,
        }
    }

    pub fn append(&self, bytes: &[u8]) {
        let mut buf = match self.buffer.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let room = self.cap.saturating_sub(buf.kept.len());
        let take = room.min(bytes.len());
        buf.kept.extend_from_slice(&bytes[..take]);
        buf.dropped += (bytes.len() - take) as u64;
    }

    /// The log as text, with a closing note when bytes were dropped; None when empty.
    pub fn text(&self) -> Option<String> {
        let buf = match self.buffer.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buf.kept.is_empty() && buf.dropped == 0 {
            return None;
        }
        let mut text = String::from_utf8_lossy(&buf.kept).into_owned();
        if buf.dropped > 0 {
            text.push_str(&format!(
                "\n[sluice: log capped at {} bytes; {} more bytes dropped]\n",
                self.cap, buf.dropped
            ));
        }
        Some(text)
    }
}

impl IsTerminal for AttemptLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for AttemptLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for AttemptLog {
    async fn ready(&mut self) {}
}

impl OutputStream for AttemptLog {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT_BYTES)
    }
}

impl tokio::io::AsyncWrite for AttemptLog {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_past_the_cap_are_dropped_and_counted() {
        let log = AttemptLog::new(4);
        log.append(b"abc");
        log.append(b"def");
        let text = log.text().unwrap();
        assert!(text.starts_with("abcd\n[sluice: log capped at 4 bytes; 2 more bytes dropped]"));
        assert_eq!(AttemptLog::new(4).text(), None);
    }
}
