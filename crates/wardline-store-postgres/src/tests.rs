use super::*;

/// A store in a fresh schema of the test database (see [`crate::testenv`]).
fn test_store(name: &str) -> Option<PostgresStore> {
    crate::testenv::store(name).map(|(s, _, _)| s)
}

#[test]
fn conformance() {
    let Some(store) = test_store("conformance") else {
        return;
    };
    wardline_store::conformance::run_all(&store);
}

#[test]
fn migrations_are_recorded_and_idempotent() {
    let Some(url) = crate::testenv::url() else {
        return;
    };
    let schema = format!("t_migr_{}", std::process::id());
    let a = PostgresStore::connect_with_schema(&url, &schema).unwrap();
    drop(a);
    // Opening again must not re-apply anything.
    let b = PostgresStore::connect_with_schema(&url, &schema).unwrap();
    let mut c = b.conn().unwrap();
    let names: Vec<String> = c
        .query("SELECT name FROM schema_migrations ORDER BY name", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let want: Vec<String> = sql::migrations(Dialect::Postgres)
        .into_iter()
        .map(|m| m.0.to_owned())
        .collect();
    assert_eq!(names, want);
}

#[test]
fn schema_names_are_checked() {
    assert!(valid_schema("t_abc_12"));
    assert!(!valid_schema("x; DROP TABLE resources"));
    assert!(!valid_schema("Upper"));
    assert!(!valid_schema(""));
    assert!(matches!(
        PostgresStore::connect_with_schema("postgres://nowhere", "bad name"),
        Err(StoreError::Backend(_))
    ));
}

/// The HTTP server drops the store inside the tokio runtime when it shuts
/// down; the synchronous client must not abort the process there.
#[test]
fn dropping_inside_an_async_context_does_not_abort() {
    let Some(store) = test_store("drop") else {
        return;
    };
    assert!(store.read("Patient", "nobody").unwrap().is_none());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        drop(store);
    });
}
