//! Group commit (issue 21): the switch every backend reads, and the
//! process-wide metrics of group sizes for `/metrics`.
//!
//! With group commit on, concurrent transactions share one durable commit
//! (one fsync): each runs inside a savepoint of the database transaction
//! that is open, and its [`crate::StoreTx::commit`] returns only once the
//! commit holding its work is durable (see the SQLite backend for how).
//! A transaction that fails or rolls back loses only its own savepoint; a
//! group whose COMMIT fails fails every member.

use std::sync::atomic::{AtomicU64, Ordering};

/// How a store commits (`serve --group-commit on|off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// Share one durable commit between concurrent transactions.
    pub enabled: bool,
    /// A group is committed once it holds this many members, even while
    /// more transactions are running or queued (bounds every member's wait).
    pub max_members: usize,
    /// Tests only (`serve --test-crash-after-group-commit N`): abort the
    /// process right after the COMMIT of the first group of at least this
    /// many members has returned, before any member is told — as a power
    /// cut between a batch's commit and its acknowledgements would.
    pub crash_after_group_of: Option<usize>,
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit {
            enabled: true,
            max_members: 256,
            crash_after_group_of: None,
        }
    }
}

impl GroupCommit {
    /// One durable commit per transaction (the behaviour before issue 21).
    pub fn off() -> Self {
        GroupCommit {
            enabled: false,
            ..GroupCommit::default()
        }
    }
}

/// Upper bounds of the group-size histogram's buckets.
pub const SIZE_BUCKETS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// Group sizes of every store of the process.
pub struct GroupMetrics {
    buckets: [AtomicU64; SIZE_BUCKETS.len()],
    groups: AtomicU64,
    members: AtomicU64,
    failed: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);

/// The process's group commit metrics.
pub static METRICS: GroupMetrics = GroupMetrics {
    buckets: [ZERO; SIZE_BUCKETS.len()],
    groups: AtomicU64::new(0),
    members: AtomicU64::new(0),
    failed: AtomicU64::new(0),
};

impl GroupMetrics {
    /// One durable commit of `members` transactions (failed: its COMMIT
    /// failed and every member was told so).
    pub fn record(&self, members: usize, failed: bool) {
        let m = members as u64;
        if let Some(i) = SIZE_BUCKETS.iter().position(|b| m <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.members.fetch_add(m, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Prometheus text: a histogram of members per durable commit and the
    /// failed groups.
    pub fn render(&self) -> String {
        let mut s = String::from(
            "# HELP wardline_store_group_commit_members Transactions per durable commit (group commit).\n\
             # TYPE wardline_store_group_commit_members histogram\n",
        );
        let mut cumulative = 0;
        for (i, b) in SIZE_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            s.push_str(&format!(
                "wardline_store_group_commit_members_bucket{{le=\"{b}\"}} {cumulative}\n"
            ));
        }
        let groups = self.groups.load(Ordering::Relaxed);
        s.push_str(&format!(
            "wardline_store_group_commit_members_bucket{{le=\"+Inf\"}} {groups}\n\
             wardline_store_group_commit_members_sum {}\n\
             wardline_store_group_commit_members_count {groups}\n",
            self.members.load(Ordering::Relaxed)
        ));
        s.push_str(&format!(
            "# HELP wardline_store_group_commit_failures_total Durable commits that failed (every member was told).\n\
             # TYPE wardline_store_group_commit_failures_total counter\n\
             wardline_store_group_commit_failures_total {}\n",
            self.failed.load(Ordering::Relaxed)
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = GroupMetrics {
            buckets: [ZERO; SIZE_BUCKETS.len()],
            groups: AtomicU64::new(0),
            members: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        };
        m.record(1, false);
        m.record(3, false);
        m.record(1000, true);
        let t = m.render();
        assert!(t.contains("members_bucket{le=\"1\"} 1\n"), "{t}");
        assert!(t.contains("members_bucket{le=\"4\"} 2\n"), "{t}");
        assert!(t.contains("members_bucket{le=\"512\"} 2\n"), "{t}");
        assert!(t.contains("members_bucket{le=\"+Inf\"} 3\n"), "{t}");
        assert!(t.contains("members_sum 1004\n"), "{t}");
        assert!(t.contains("failures_total 1\n"), "{t}");
    }
}
