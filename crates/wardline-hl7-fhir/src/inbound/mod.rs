//! Inbound: v2 message → changes to the record. (Being written.)
