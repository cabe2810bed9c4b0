//! Request bodies read with a cap that holds while streaming.
//!
//! A declared `Content-Length` over the cap is refused before reading; but a chunked body has
//! none, and `Request::text()`/`bytes()` buffer all of it before anyone can look at its size,
//! so a client could make the Worker hold megabytes (up to the platform's request limit) per
//! request. [`read_capped`] pulls the body chunk by chunk and stops at the first byte past the
//! cap, answering `too_large` without reading (or keeping) the rest.

use futures_util::StreamExt;
use shared::error::{ChatError, ErrorCode};
use worker::Request;

/// Bytes taken so far, refusing to grow past `max`.
#[derive(Debug)]
pub struct Capped {
    max: usize,
    bytes: Vec<u8>,
}

impl Capped {
    /// An empty body allowed `max` bytes.
    pub fn new(max: usize) -> Capped {
        Capped {
            max,
            bytes: Vec::new(),
        }
    }

    /// Adds a chunk; `Err` (and nothing kept) once the total would pass the cap.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), usize> {
        let total = self.bytes.len().saturating_add(chunk.len());
        if total > self.max {
            self.bytes = Vec::new();
            return Err(total);
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The whole body.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// More than the cap (declared, or seen while streaming).
    TooLarge {
        /// The cap, in bytes.
        max: usize,
    },
    /// The runtime failed to read it.
    Read(worker::Error),
}

impl BodyError {
    /// As the API's error: `too_large` with `what` and the limit, or `internal`.
    pub fn into_chat_error(self, what: &str) -> Result<ChatError, worker::Error> {
        match self {
            BodyError::TooLarge { max } => Ok(ChatError::new(
                ErrorCode::TooLarge,
                format!(
                    "{what} is larger than the limit of {} KB.",
                    max.div_ceil(1024)
                ),
            )),
            BodyError::Read(e) => Err(e),
        }
    }
}

/// The request's body, at most `max` bytes: a larger declared `Content-Length` is refused
/// before reading, and a body without one is refused at the first chunk that passes `max`.
pub async fn read_capped(req: &mut Request, max: usize) -> Result<Vec<u8>, BodyError> {
    let declared = req
        .headers()
        .get("Content-Length")
        .map_err(BodyError::Read)?
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|d| d > max as u64) {
        return Err(BodyError::TooLarge { max });
    }
    let mut body = Capped::new(max);
    // A request without a body has no stream: that is an empty body.
    let Ok(mut stream) = req.stream() else {
        return Ok(Vec::new());
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BodyError::Read)?;
        if body.push(&chunk).is_err() {
            // Dropping the stream cancels the rest of the upload.
            return Err(BodyError::TooLarge { max });
        }
    }
    Ok(body.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_up_to_the_cap_is_kept_whole_in_order() {
        let mut body = Capped::new(10);
        body.push(b"hello").unwrap();
        body.push(b" you").unwrap();
        body.push(b"!").unwrap();
        assert_eq!(body.into_bytes(), b"hello you!");
    }

    #[test]
    fn the_chunk_that_passes_the_cap_is_refused_and_nothing_is_kept() {
        let mut body = Capped::new(10);
        body.push(b"12345").unwrap();
        assert_eq!(body.push(b"678901"), Err(11));
        assert!(body.into_bytes().is_empty());
        // A single chunk far past the cap is refused as soon as it arrives.
        assert!(Capped::new(4).push(&[0; 1 << 20]).is_err());
    }
}
