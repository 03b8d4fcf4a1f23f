#![no_main]

//! Arbitrary byte chunks through `mllp::FrameDecoder::new(4096)`.
//!
//! The input is a sequence of chunks, each a length byte followed by up to
//! that many bytes (the last one may be short). Checks: `push` never panics,
//! the decoder never holds more than the limit of an unfinished frame, no
//! frame is longer than the limit or contains VT/FS, the oversize head is at
//! most 4 KiB, and the frames do not depend on how the stream was chunked
//! (the same bytes in one `push` give the same frames).

use libfuzzer_sys::fuzz_target;
use wardline_hl7::mllp::{FS, FrameDecoder, FrameError, VT};

const LIMIT: usize = 4096;

fn check_frame(f: &[u8]) {
    assert!(f.len() <= LIMIT, "frame of {} bytes > {LIMIT}", f.len());
    assert!(
        !f.contains(&VT) && !f.contains(&FS),
        "framing byte in a frame"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut chunked = FrameDecoder::new(LIMIT);
    let mut frames = Vec::new();
    let mut stream = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let (chunk, tail) = tail.split_at((n as usize).min(tail.len()));
        rest = tail;
        stream.extend_from_slice(chunk);
        match chunked.push(chunk) {
            Ok(()) | Err(FrameError::Garbage(_)) => {}
            Err(FrameError::TooLong(limit)) => {
                assert_eq!(limit, LIMIT);
                assert!(chunked.take_oversize_head().len() <= 4096);
            }
        }
        assert!(chunked.pending() <= LIMIT, "pending {}", chunked.pending());
        while let Some(f) = chunked.next_frame() {
            check_frame(&f);
            frames.push(f);
        }
    }

    // Chunking does not change the frames.
    let mut whole = FrameDecoder::new(LIMIT);
    let _ = whole.push(&stream);
    assert!(whole.pending() <= LIMIT);
    let mut again = Vec::new();
    while let Some(f) = whole.next_frame() {
        check_frame(&f);
        again.push(f);
    }
    assert_eq!(frames, again, "frames depend on the chunking");
    assert_eq!(chunked.pending(), whole.pending());
});
