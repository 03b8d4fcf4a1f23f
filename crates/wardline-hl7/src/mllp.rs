//! MLLP framing (HL7 v2 Minimal Lower Layer Protocol): a message travels as
//! `VT` (0x0B) + message + `FS` (0x1C) + `CR` (0x0D).
//!
//! [`FrameDecoder`] is a push decoder with no IO, for the listener and the
//! client: feed it whatever the socket returned, take out whole frames. It
//! never buffers more than `max_frame` bytes of one frame (back-pressure for
//! the caller: a sender that never ends a frame gets an error, not our memory).

/// Start of block.
pub const VT: u8 = 0x0b;
/// End of block.
pub const FS: u8 = 0x1c;
/// Carriage return after the end of block.
pub const CR: u8 = 0x0d;

/// Wraps `message` in an MLLP frame.
pub fn encode_frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(VT);
    out.extend_from_slice(message);
    out.push(FS);
    out.push(CR);
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Bytes outside a frame that are not whitespace (the stream is not MLLP).
    #[error("{0} byte(s) outside an MLLP frame (expected VT 0x0B to start a message)")]
    Garbage(usize),
    /// A frame grew past the limit before its end-of-block.
    #[error("MLLP frame longer than {0} bytes without an end-of-block (FS CR)")]
    TooLong(usize),
}

/// Incremental MLLP decoder.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    in_frame: bool,
    /// An FS was seen; a CR must follow (tolerated if missing).
    after_fs: bool,
    /// Discarding the rest of an oversize frame.
    skipping: bool,
    max_frame: usize,
    frames: std::collections::VecDeque<Vec<u8>>,
    /// The first bytes of the last oversize frame (to answer it).
    oversize_head: Vec<u8>,
}

impl FrameDecoder {
    pub fn new(max_frame: usize) -> FrameDecoder {
        FrameDecoder {
            buf: Vec::new(),
            in_frame: false,
            after_fs: false,
            skipping: false,
            max_frame,
            frames: std::collections::VecDeque::new(),
            oversize_head: Vec::new(),
        }
    }

    /// Feeds bytes from the stream. Complete frames become available from
    /// [`FrameDecoder::next_frame`]. After an error the decoder discards up to
    /// the next VT, so one bad frame does not poison the connection.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<(), FrameError> {
        let mut garbage = 0;
        let mut too_long = false;
        while let Some((&b, rest)) = bytes.split_first() {
            bytes = rest;
            if self.after_fs {
                self.after_fs = false;
                if b == CR {
                    continue;
                }
            }
            if !self.in_frame {
                match b {
                    VT => {
                        self.in_frame = true;
                        self.skipping = false;
                        self.buf.clear();
                    }
                    // The rest of an oversize frame, up to its end-of-block.
                    FS if self.skipping => {
                        self.skipping = false;
                        self.after_fs = true;
                    }
                    _ if self.skipping => {}
                    b' ' | b'\r' | b'\n' | b'\t' => {}
                    _ => garbage += 1,
                }
                continue;
            }
            match b {
                FS => {
                    self.in_frame = false;
                    self.after_fs = true;
                    self.frames.push_back(std::mem::take(&mut self.buf));
                }
                VT => {
                    // A new start inside a frame: the sender gave up on the
                    // previous one; start again.
                    self.buf.clear();
                }
                _ => {
                    if self.buf.len() >= self.max_frame {
                        self.in_frame = false;
                        self.skipping = true;
                        self.buf.truncate(4096);
                        self.oversize_head = std::mem::take(&mut self.buf);
                        too_long = true;
                        continue;
                    }
                    self.buf.push(b);
                }
            }
        }
        if too_long {
            return Err(FrameError::TooLong(self.max_frame));
        }
        if garbage > 0 {
            return Err(FrameError::Garbage(garbage));
        }
        Ok(())
    }

    /// The next complete message (without the framing bytes).
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        self.frames.pop_front()
    }

    /// The first bytes (up to 4 KiB) of the frame that caused the last
    /// [`FrameError::TooLong`], so that the caller can answer it (its MSH).
    pub fn take_oversize_head(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.oversize_head)
    }

    /// Bytes of an unfinished frame held now.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Inside a frame (its start seen, its end not yet), or skipping the
    /// rest of an oversize one: the listener's frame read timeout runs.
    pub fn mid_frame(&self) -> bool {
        self.in_frame || self.skipping
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let a = b"MSH|^~\\&|A\rPID|1\r".to_vec();
        let b = b"MSH|^~\\&|B\r".to_vec();
        let mut stream = encode_frame(&a);
        stream.extend(encode_frame(&b));
        for cut in 0..stream.len() {
            let mut d = FrameDecoder::new(1 << 20);
            d.push(&stream[..cut]).unwrap();
            d.push(&stream[cut..]).unwrap();
            assert_eq!(d.next_frame().as_deref(), Some(&a[..]), "cut {cut}");
            assert_eq!(d.next_frame().as_deref(), Some(&b[..]));
            assert_eq!(d.next_frame(), None);
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn garbage_and_oversize_are_errors_and_recoverable() {
        let mut d = FrameDecoder::new(8);
        assert_eq!(d.push(b"hello"), Err(FrameError::Garbage(5)));
        assert_eq!(
            d.push(&encode_frame(b"0123456789")),
            Err(FrameError::TooLong(8))
        );
        d.push(&encode_frame(b"ok")).unwrap();
        assert_eq!(d.next_frame().as_deref(), Some(&b"ok"[..]));
        // The frame after an oversize one in the same read is not lost.
        let mut both = encode_frame(b"0123456789abc");
        both.extend(encode_frame(b"next"));
        assert_eq!(d.push(&both), Err(FrameError::TooLong(8)));
        assert_eq!(d.next_frame().as_deref(), Some(&b"next"[..]));
        assert_eq!(d.next_frame(), None);
        // A missing CR after FS and whitespace between frames are tolerated.
        let mut d = FrameDecoder::new(64);
        d.push(b"\x0bA\x1c\x0bB\x1c\r\n").unwrap();
        assert_eq!(d.next_frame().as_deref(), Some(&b"A"[..]));
        assert_eq!(d.next_frame().as_deref(), Some(&b"B"[..]));
    }

    #[test]
    fn mid_frame_is_between_start_and_end() {
        let mut d = FrameDecoder::new(8);
        assert!(!d.mid_frame());
        d.push(b"\x0b").unwrap();
        assert!(d.mid_frame(), "a start block alone opens a frame");
        d.push(b"MSH").unwrap();
        assert!(d.mid_frame());
        d.push(b"\x1c\r").unwrap();
        assert!(!d.mid_frame());
        // The rest of an oversize frame is still inside it.
        assert!(d.push(b"\x0b0123456789").is_err());
        assert!(d.mid_frame());
        d.push(b"\x1c\r").unwrap();
        assert!(!d.mid_frame());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_memory_is_bounded(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16)
        ) {
            let mut d = FrameDecoder::new(100);
            for c in &chunks {
                let _ = d.push(c);
                prop_assert!(d.pending() <= 100);
            }
            while let Some(f) = d.next_frame() {
                prop_assert!(f.len() <= 100);
                prop_assert!(!f.contains(&FS) && !f.contains(&VT));
            }
        }

        #[test]
        fn frames_round_trip(msgs in prop::collection::vec(
            prop::collection::vec(any::<u8>().prop_filter("no framing bytes", |b| *b != VT && *b != FS), 0..200), 1..5)
        ) {
            let mut d = FrameDecoder::new(1000);
            for m in &msgs {
                d.push(&encode_frame(m)).unwrap();
            }
            for m in &msgs {
                prop_assert_eq!(d.next_frame(), Some(m.clone()));
            }
        }
    }
}
