//! Where the tests find their PostgreSQL, in one place.
//!
//! Every test with a PostgreSQL variant asks [`url`]: the database named by
//! `WARDLINE_TEST_PG_URL`, or `None` (after printing `SKIPPED: ...`) when it
//! is unset, so a developer without PostgreSQL can still run the SQLite half.
//! The README's test command (`scripts/test.sh`) also sets
//! `WARDLINE_REQUIRE_PG=1`: then an unset or empty URL is a test *failure*,
//! never a skip, so the suite cannot pass with the PostgreSQL half quietly
//! skipped.

use crate::PostgresStore;

/// The variable naming the test database.
pub const URL_VAR: &str = "WARDLINE_TEST_PG_URL";
/// The variable that turns a missing test database into a failure.
pub const REQUIRE_VAR: &str = "WARDLINE_REQUIRE_PG";

/// What a test does about PostgreSQL, from the two variables' values:
/// `Ok(Some(url))` run, `Ok(None)` skip, `Err(why)` fail.
pub fn decide(url: Option<&str>, require: Option<&str>) -> Result<Option<String>, String> {
    let url = url.map(str::trim).filter(|u| !u.is_empty());
    let required = matches!(require.map(str::trim), Some(v) if !v.is_empty() && v != "0");
    match (url, required) {
        (Some(u), _) => Ok(Some(u.to_owned())),
        (None, false) => Ok(None),
        (None, true) => Err(format!(
            "{REQUIRE_VAR} is set but {URL_VAR} is not: PostgreSQL was required and is missing \
             (did scripts/with-postgres.sh fail to start it?)"
        )),
    }
}

/// The test database's URL, `None` (printing `SKIPPED: ...`) when there is
/// none and none is required.
///
/// # Panics
/// When [`REQUIRE_VAR`] is set and [`URL_VAR`] is not: the test fails.
pub fn url() -> Option<String> {
    let url = std::env::var(URL_VAR).ok();
    let require = std::env::var(REQUIRE_VAR).ok();
    match decide(url.as_deref(), require.as_deref()) {
        Ok(Some(u)) => Some(u),
        Ok(None) => {
            println!("SKIPPED (PostgreSQL): {URL_VAR} not set");
            None
        }
        Err(why) => panic!("{why}"),
    }
}

/// A schema name no other test uses: `t_<prefix>_<pid>_<nanos>_<n>`.
pub fn fresh_schema(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("t_{prefix}_{}_{nanos}_{n}", std::process::id())
}

/// A store in a fresh schema of the test database, with the URL and the
/// schema (for a test that drops it afterwards); `None` as for [`url`].
///
/// # Panics
/// When the database cannot be reached: a test that was given one fails.
pub fn store(prefix: &str) -> Option<(PostgresStore, String, String)> {
    let url = url()?;
    let schema = fresh_schema(prefix);
    let store = PostgresStore::connect_with_schema(&url, &schema)
        .unwrap_or_else(|e| panic!("connect to {URL_VAR} ({url}): {e}"));
    Some((store, url, schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_runs_the_postgresql_half() {
        assert_eq!(
            decide(Some("postgres://x/y"), None),
            Ok(Some("postgres://x/y".into()))
        );
        assert_eq!(
            decide(Some("postgres://x/y"), Some("1")),
            Ok(Some("postgres://x/y".into()))
        );
    }

    #[test]
    fn no_url_skips_unless_required() {
        assert_eq!(decide(None, None), Ok(None));
        assert_eq!(decide(Some("  "), Some("0")), Ok(None));
        assert_eq!(decide(None, Some("")), Ok(None));
    }

    #[test]
    fn no_url_when_required_is_a_failure() {
        let e = decide(None, Some("1")).unwrap_err();
        assert!(e.contains(URL_VAR) && e.contains(REQUIRE_VAR), "{e}");
        assert!(decide(Some(""), Some("yes")).is_err());
    }

    #[test]
    fn schemas_are_valid_and_fresh() {
        let a = fresh_schema("x");
        assert!(crate::valid_schema(&a), "{a}");
        assert_ne!(a, fresh_schema("x"));
    }
}
