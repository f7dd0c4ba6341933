//! Where a command writes its standard output: kept whole for one execute, or handed on piece
//! by piece as it is produced for a stream.
//!
//! A streamed command's [`Sink`] is the sending half of a bounded channel: the link reads the
//! pieces, coalesces them into `output` frames and counts them against the output budget. A
//! slow reader (a slow link) makes `Sink::write` wait, so a stream never gets ahead of its
//! link by more than [`SINK_PIECES`] pieces of at most [`MAX_PIECE_BYTES`]; a reader that has
//! stopped (the budget is spent, the stream was cancelled) makes it fail with [`Closed`], and
//! the command stops.

use kubeline_shared::protocol::MAX_CHUNK_BYTES;
use tokio::sync::mpsc;

/// Most bytes one piece of streamed output holds: one `output` frame's worth.
pub const MAX_PIECE_BYTES: usize = MAX_CHUNK_BYTES;

/// Pieces a streamed command may write ahead of its reader before `Sink::write` waits.
pub const SINK_PIECES: usize = 4;

/// The reader of a streamed command's output has gone: stop producing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the output of this command is no longer read")]
pub struct Closed;

/// Where a command's standard output goes.
#[derive(Debug)]
pub struct Sink {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    /// One execute: everything is kept and returned at the end.
    Buffer(String),
    /// A stream: pieces go to the reader as they are written.
    Channel(mpsc::Sender<String>),
}

impl Sink {
    /// A sink that keeps everything (one execute).
    pub(crate) fn buffer() -> Self {
        Self {
            inner: Inner::Buffer(String::new()),
        }
    }

    /// A streaming sink and the receiver of its pieces (each at most [`MAX_PIECE_BYTES`],
    /// at most [`SINK_PIECES`] waiting). The receiver sees the end of the stream when the
    /// sink is dropped.
    pub fn channel() -> (Self, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(SINK_PIECES);
        (
            Self {
                inner: Inner::Channel(tx),
            },
            rx,
        )
    }

    /// Writes output: kept, or sent in pieces of at most [`MAX_PIECE_BYTES`] (cut on character
    /// boundaries), waiting while the reader is [`SINK_PIECES`] pieces behind.
    pub(crate) async fn write(&mut self, text: &str) -> Result<(), Closed> {
        match &mut self.inner {
            Inner::Buffer(buffer) => {
                buffer.push_str(text);
                Ok(())
            }
            Inner::Channel(tx) => {
                for piece in pieces(text, MAX_PIECE_BYTES) {
                    tx.send(piece.to_owned()).await.map_err(|_| Closed)?;
                }
                Ok(())
            }
        }
    }

    /// What a buffering sink kept (empty for a stream: it was handed on).
    pub(crate) fn into_text(self) -> String {
        match self.inner {
            Inner::Buffer(buffer) => buffer,
            Inner::Channel(_) => String::new(),
        }
    }
}

/// The longest prefix of `s` within `budget` bytes that ends on a character boundary.
pub fn prefix_within(s: &str, budget: usize) -> &str {
    if s.len() <= budget {
        return s;
    }
    let mut at = budget;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    &s[..at]
}

/// Splits `s` into pieces of at most `max` bytes on character boundaries (a character longer
/// than `max` is one piece).
pub fn pieces(s: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let head = prefix_within(rest, max);
        let head = if head.is_empty() {
            &rest[..rest.chars().next().map_or(0, char::len_utf8)]
        } else {
            head
        };
        rest = &rest[head.len()..];
        Some(head)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_input_on_char_boundaries() {
        let s = "ab€cd€".repeat(1000);
        let all: Vec<&str> = pieces(&s, 7).collect();
        assert!(all.iter().all(|p| p.len() <= 7));
        assert_eq!(all.concat(), s);
        assert_eq!(pieces("€", 1).collect::<Vec<_>>(), ["€"]);
        assert_eq!(prefix_within("héllo", 2), "h");
    }

    #[tokio::test]
    async fn a_stream_waits_for_its_reader_and_stops_when_it_goes() {
        let (mut sink, mut rx) = Sink::channel();
        let big = "x".repeat(MAX_PIECE_BYTES * 2 + 1);
        // Three pieces fit in the channel without a reader.
        sink.write(&big).await.unwrap();
        let sizes: Vec<usize> = [
            rx.recv().await.unwrap(),
            rx.recv().await.unwrap(),
            rx.recv().await.unwrap(),
        ]
        .iter()
        .map(String::len)
        .collect();
        assert_eq!(sizes, [MAX_PIECE_BYTES, MAX_PIECE_BYTES, 1]);
        // A full channel makes the writer wait.
        for _ in 0..SINK_PIECES {
            sink.write("a").await.unwrap();
        }
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), sink.write("b"));
        assert!(
            waiting.await.is_err(),
            "the write should wait for the reader"
        );
        drop(rx);
        assert_eq!(sink.write("c").await, Err(Closed));
    }

    #[tokio::test]
    async fn a_buffer_keeps_everything() {
        let mut sink = Sink::buffer();
        sink.write("a").await.unwrap();
        sink.write("b").await.unwrap();
        assert_eq!(sink.into_text(), "ab");
    }
}
