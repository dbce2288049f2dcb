//! Uploads arrive as a stream of chunks; parsers want a blocking `std::io::Read`. This
//! bridges the two with a small bounded channel, so a parser running on a blocking thread
//! pulls the file as it streams in and memory stays bounded whatever the file's size.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::AppError;
use crate::formats::FileLimits;

/// How many chunks may wait between the network and the parser.
const CHUNKS_IN_FLIGHT: usize = 8;

/// The chunks of an uploaded file, as the transport delivers them.
pub trait UploadStream: Stream<Item = Result<Vec<u8>, AppError>> + Send + Unpin + 'static {}
impl<S: Stream<Item = Result<Vec<u8>, AppError>> + Send + Unpin + 'static> UploadStream for S {}

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
        let mut received: u64 = 0;
        while let Some(item) = upload.next().await {
            let chunk = match item {
                Ok(chunk) => chunk,
                Err(error) => return feeder_failure.set(error),
            };
            received += chunk.len() as u64;
            if received > limits.max_bytes {
                return feeder_failure.set(AppError::ResourceExhausted(format!(
                    "the upload is larger than the gateway's limit of {} bytes",
                    limits.max_bytes
                )));
            }
            if sender.send(chunk).await.is_err() {
                return; // The parser stopped early (a refused file): the rest is not needed.
            }
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

    #[tokio::test]
    async fn reads_the_chunks_in_order() {
        let chunks = vec![Ok(b"ab".to_vec()), Ok(Vec::new()), Ok(b"cde".to_vec())];
        let mut reader = spawn_reader(futures::stream::iter(chunks), UploadLimits::STANDARD);
        let text = tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            reader.read_to_string(&mut text).map(|_| text)
        });
        assert_eq!(text.await.unwrap().unwrap(), "abcde");
    }

    #[tokio::test]
    async fn an_upload_over_the_limit_stops_with_a_clear_error() {
        let chunks = vec![Ok(vec![b'x'; 6]), Ok(vec![b'x'; 6])];
        let reader = spawn_reader(futures::stream::iter(chunks), UploadLimits { max_bytes: 10, ..UploadLimits::STANDARD });
        let failure = reader.failure();
        let result = tokio::task::spawn_blocking(move || io::read_to_string(reader)).await.unwrap();
        assert!(result.is_err());
        assert!(matches!(failure.take(), Some(AppError::ResourceExhausted(_))));
    }
}
