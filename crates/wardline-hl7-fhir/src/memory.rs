//! An in-memory [`Records`](crate::Records) for tests. (Being written.)
