//! Uploads arrive as a stream of chunks; parsers want a blocking `std::io::Read`. This
//! bridges the two with a small bounded channel, so a parser running on a blocking thread
//! pulls the file as it streams in and memory stays bounded whatever the file's size.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::AppError;
use crate::formats::FileLimits;

/// How many chunks may wait between the network and the parser.
const CHUNKS_IN_FLIGHT: usize = 8;

/// One message of an upload: a piece of the file, or the end the client declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadPart {
    Chunk(Vec<u8>),
    End(UploadEnd),
}

/// What the client says it sent, as the last message of an upload: without it the gateway
/// could not tell a whole file from one whose sender stopped reading it half-way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadEnd {
    pub byte_count: u64,
    /// Hexadecimal, either case.
    pub sha256: String,
}

impl UploadEnd {
    /// The end message of `bytes`, for clients and tests.
    pub fn of(bytes: &[u8]) -> UploadEnd {
        UploadEnd { byte_count: bytes.len() as u64, sha256: hex::encode(Sha256::digest(bytes)) }
    }
}

/// The parts of an uploaded file, as the transport delivers them.
pub trait UploadStream: Stream<Item = Result<UploadPart, AppError>> + Send + Unpin + 'static {}
impl<S: Stream<Item = Result<UploadPart, AppError>> + Send + Unpin + 'static> UploadStream for S {}

/// Checks an upload as it arrives: its size against the limit, its bytes against the end
/// the client declares. The only way an upload is complete is [`UploadCheck::finish`].
pub struct UploadCheck {
    hasher: Sha256,
    received: u64,
    max_bytes: u64,
    end: Option<UploadEnd>,
}

impl UploadCheck {
    pub fn new(max_bytes: u64) -> UploadCheck {
        UploadCheck { hasher: Sha256::new(), received: 0, max_bytes, end: None }
    }

    /// Takes the next part; a chunk is handed back to be used.
    pub fn take(&mut self, part: UploadPart) -> Result<Option<Vec<u8>>, AppError> {
        if self.end.is_some() {
            return Err(AppError::invalid("end", "the end of the upload must be its last message"));
        }
        match part {
            UploadPart::Chunk(chunk) => {
                self.received += chunk.len() as u64;
                if self.received > self.max_bytes {
                    return Err(AppError::ResourceExhausted(format!(
                        "the upload is larger than the gateway's limit of {} bytes",
                        self.max_bytes
                    )));
                }
                self.hasher.update(&chunk);
                Ok(Some(chunk))
            }
            UploadPart::End(end) => {
                self.end = Some(end);
                Ok(None)
            }
        }
    }

    /// The stream ended: the file is whole only if it matches its declared end. Returns its
    /// SHA-256 (lowercase hexadecimal).
    pub fn finish(self) -> Result<String, AppError> {
        let sha256 = hex::encode(self.hasher.finalize());
        let Some(end) = self.end else {
            return Err(AppError::invalid(
                "end",
                format!(
                    "the upload stopped after {} bytes without its end message (byte count and SHA-256): \
                     the file may have been cut short, so nothing of it was recorded",
                    self.received
                ),
            ));
        };
        if end.byte_count != self.received || !end.sha256.eq_ignore_ascii_case(&sha256) {
            return Err(AppError::invalid(
                "end",
                format!(
                    "the gateway received {} bytes with SHA-256 {sha256}, but the end message declares {} bytes with SHA-256 {}: \
                     the file was cut short or changed on the way, so nothing of it was recorded",
                    self.received,
                    end.byte_count,
                    crate::domain::excerpt(&end.sha256)
                ),
            ));
        }
        Ok(sha256)
    }
}

/// Limits on one upload: its bytes, and what the parser enforces on the file it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadLimits {
    pub max_bytes: u64,
    pub file: FileLimits,
}

impl UploadLimits {
    /// 2 GiB: a large payroll vendor's file is a few hundred MB; and the formats' limits.
    pub const STANDARD: UploadLimits = UploadLimits { max_bytes: 2 << 30, file: FileLimits::STANDARD };
}

/// Why an upload stopped early, if it did: read once the parser is done.
#[derive(Clone, Default)]
pub struct UploadFailure(Arc<Mutex<Option<AppError>>>);

impl UploadFailure {
    pub fn take(&self) -> Option<AppError> {
        self.0.lock().expect("upload failure lock").take()
    }

    fn is_set(&self) -> bool {
        self.0.lock().expect("upload failure lock").is_some()
    }

    fn set(&self, error: AppError) {
        *self.0.lock().expect("upload failure lock") = Some(error);
    }
}

/// A blocking reader over an upload. Must be read on a blocking thread.
pub struct ChunkReader {
    chunks: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
    failure: UploadFailure,
}

impl ChunkReader {
    pub fn failure(&self) -> UploadFailure {
        self.failure.clone()
    }
}

/// Starts pulling `upload` into a reader, enforcing `limits`.
fn spawn_reader(mut upload: impl UploadStream, limits: UploadLimits) -> ChunkReader {
    let (sender, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let failure = UploadFailure::default();
    let feeder_failure = failure.clone();
    tokio::spawn(async move {
        let mut check = UploadCheck::new(limits.max_bytes);
        while let Some(item) = upload.next().await {
            let chunk = match item.and_then(|part| check.take(part)) {
                Ok(Some(chunk)) => chunk,
                Ok(None) => continue,
                Err(error) => return feeder_failure.set(error),
            };
            if sender.send(chunk).await.is_err() {
                return; // The parser stopped early (a refused file): the rest is not needed.
            }
        }
        // Recorded before the channel closes, so the parser's end of file is never mistaken
        // for the end of a whole file.
        if let Err(error) = check.finish() {
            feeder_failure.set(error);
        }
    });
    ChunkReader { chunks, current: Vec::new(), position: 0, failure }
}

/// Runs a blocking parser over an upload as it streams in; an upload that failed or went over
/// its limits is that error, whatever the parser made of the short file.
pub async fn parse_upload<T: Send + 'static>(
    upload: impl UploadStream,
    limits: UploadLimits,
    parse: impl FnOnce(ChunkReader) -> T + Send + 'static,
) -> Result<T, AppError> {
    let reader = spawn_reader(upload, limits);
    let failure = reader.failure();
    let parsed =
        tokio::task::spawn_blocking(move || parse(reader)).await.map_err(|e| AppError::Internal(format!("the parser stopped: {e}")))?;
    match failure.take() {
        Some(error) => Err(error),
        None => Ok(parsed),
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            match self.chunks.blocking_recv() {
                Some(chunk) => {
                    self.current = chunk;
                    self.position = 0;
                }
                // The failure is recorded before the channel closes, so it is seen here.
                None if self.failure.is_set() => return Err(io::Error::other("the upload stopped")),
                None => return Ok(0),
            }
        }
        let available = &self.current[self.position..];
        let count = available.len().min(buffer.len());
        buffer[..count].copy_from_slice(&available[..count]);
        self.position += count;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(chunks: &[&[u8]]) -> Vec<Result<UploadPart, AppError>> {
        let whole: Vec<u8> = chunks.concat();
        let mut parts: Vec<_> = chunks.iter().map(|c| Ok(UploadPart::Chunk(c.to_vec()))).collect();
        parts.push(Ok(UploadPart::End(UploadEnd::of(&whole))));
        parts
    }

    async fn read_all(parts: Vec<Result<UploadPart, AppError>>) -> (io::Result<String>, Option<AppError>) {
        let reader = spawn_reader(futures::stream::iter(parts), UploadLimits::STANDARD);
        let failure = reader.failure();
        let text = tokio::task::spawn_blocking(move || io::read_to_string(reader)).await.unwrap();
        (text, failure.take())
    }

    #[tokio::test]
    async fn reads_the_chunks_in_order() {
        let (text, failure) = read_all(parts(&[b"ab", b"", b"cde"])).await;
        assert_eq!(text.unwrap(), "abcde");
        assert!(failure.is_none());
    }

    #[tokio::test]
    async fn an_upload_without_its_end_or_with_another_end_is_not_whole() {
        let mut cut = parts(&[b"ab", b"cde"]);
        cut.pop();
        let (text, failure) = read_all(cut).await;
        assert!(text.is_err(), "the parser never sees a clean end of file");
        assert!(matches!(failure, Some(AppError::InvalidArgument { field: "end", .. })));

        let mut other = parts(&[b"ab"]);
        other.push(Ok(UploadPart::Chunk(b"cde".to_vec())));
        other.swap(1, 2); // The end names "ab" but "abcde" arrives.
        let (_, failure) = read_all(other).await;
        assert!(matches!(failure, Some(AppError::InvalidArgument { field: "end", .. })), "{failure:?}");

        let mut wrong_sum = parts(&[b"abc"]);
        wrong_sum[1] = Ok(UploadPart::End(UploadEnd { byte_count: 3, sha256: "00".repeat(32) }));
        let (_, failure) = read_all(wrong_sum).await;
        assert!(matches!(failure, Some(AppError::InvalidArgument { field: "end", .. })));
    }

    #[tokio::test]
    async fn an_upload_over_the_limit_stops_with_a_clear_error() {
        let chunks = vec![Ok(UploadPart::Chunk(vec![b'x'; 6])), Ok(UploadPart::Chunk(vec![b'x'; 6]))];
        let reader = spawn_reader(futures::stream::iter(chunks), UploadLimits { max_bytes: 10, ..UploadLimits::STANDARD });
        let failure = reader.failure();
        let result = tokio::task::spawn_blocking(move || io::read_to_string(reader)).await.unwrap();
        assert!(result.is_err());
        assert!(matches!(failure.take(), Some(AppError::ResourceExhausted(_))));
    }
}
