//! Where tests find the transfers peers (`scripts/with-peers.sh` starts
//! them): the MESH sandbox and the SMTP server. A test whose peer is absent
//! prints `SKIPPED` and passes; with `WARDLINE_REQUIRE_PEERS=1` (set by
//! `scripts/test.sh`) it fails instead, as `WARDLINE_REQUIRE_PG` does for
//! PostgreSQL.

/// Turns a missing peer into a failure.
pub const REQUIRE_VAR: &str = "WARDLINE_REQUIRE_PEERS";

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn required() -> bool {
    var(REQUIRE_VAR).is_some_and(|v| v != "0")
}

fn absent(what: &str, vars: &str) {
    if required() {
        panic!(
            "{REQUIRE_VAR} is set but {vars} is not: the {what} test peer was required and is missing (run under scripts/with-peers.sh)"
        );
    }
    println!("SKIPPED ({what}): {vars} not set (run under scripts/with-peers.sh)");
}

/// The MESH sandbox: (URL, shared key).
///
/// # Panics
/// When peers are required and it is not there.
pub fn mesh() -> Option<(String, String)> {
    match (
        var("WARDLINE_TEST_MESH_URL"),
        var("WARDLINE_TEST_MESH_SHARED_KEY"),
    ) {
        (Some(u), Some(k)) => Some((u, k)),
        _ => {
            absent("MESH", "WARDLINE_TEST_MESH_URL");
            None
        }
    }
}

/// The SMTP server: (host, port, directory its messages are written to).
///
/// # Panics
/// When peers are required and it is not there.
pub fn smtp() -> Option<(String, u16, std::path::PathBuf)> {
    let found = var("WARDLINE_TEST_SMTP").zip(var("WARDLINE_TEST_SMTP_DIR"));
    let parsed = found.and_then(|(hp, dir)| {
        let (h, p) = hp.rsplit_once(':')?;
        Some((h.to_owned(), p.parse().ok()?, std::path::PathBuf::from(dir)))
    });
    if parsed.is_none() {
        absent("SMTP", "WARDLINE_TEST_SMTP");
    }
    parsed
}

/// A client of the MESH sandbox's sending mailbox (X26ABC1, password
/// "password"; the sandbox's canned mailboxes) at `url` with `shared_key`.
///
/// # Panics
/// When the client cannot be built (no TLS identity is given, so it can).
pub fn mesh_client(url: &str, shared_key: &str) -> super::mesh::MeshClient {
    super::mesh::MeshClient::new(super::mesh::MeshConfig {
        url: url.into(),
        mailbox: "X26ABC1".into(),
        password: "password".into(),
        shared_key: shared_key.into(),
        identity_pem: None,
    })
    .expect("a MESH client without a TLS identity")
}

/// A MESH client of an address nothing listens on (MESH "down").
///
/// # Panics
/// When no loopback port can be bound.
pub fn unreachable_mesh() -> super::mesh::MeshClient {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    mesh_client(&format!("http://127.0.0.1:{port}"), "Banana")
}
