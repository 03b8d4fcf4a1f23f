//! `wardline user …`, `wardline token`, `wardline client …`: operator
//! commands on the data directory (or database) for identities and access.
//!
//! They act as the operator (`Trusted`, named `cli:<command>` in the audit
//! trail): whoever can run them can read the database anyway. Every change
//! is audited like any other write.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use wardline_auth::directory::{Client, Directory};
use wardline_auth::rbac::Role;
use wardline_auth::scopes::ScopeSet;
use wardline_core::audit::{AuditRecord, WARDLINE_SUBTYPE};
use wardline_core::{Agent, ServiceConfig, Trusted};

use crate::StoreArgs;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user (a Practitioner with a password and a TOTP second
    /// factor). Prints the TOTP secret and an otpauth:// URI to enrol in an
    /// authenticator app. The password is read from WARDLINE_NEW_PASSWORD or,
    /// when unset, from the first line of standard input.
    Add(AddArgs),
    /// Give a user a position: a role at an organisation, optionally
    /// limited to sites or wards.
    Grant(GrantArgs),
    /// End a user's positions with a role (or one position by its id).
    Revoke(RevokeArgs),
    /// List users and their active positions.
    List(ListArgs),
    /// Print a user's current TOTP code (for demos and scripted tests: the
    /// operator holds the database, and with it the secrets).
    Code(CodeArgs),
}

#[derive(Args)]
pub struct CodeArgs {
    pub username: String,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args)]
pub struct AddArgs {
    /// Login name (letters, digits, '.', '_', '-').
    pub username: String,
    /// Full name, e.g. "Asha Patel".
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args)]
pub struct GrantArgs {
    pub username: String,
    /// Role code: consultant, doctor, staff-nurse, ward-sister,
    /// healthcare-assistant, pharmacist, ward-clerk, bed-manager,
    /// receptionist, gp, social-worker, privacy-officer, system-admin,
    /// data-analyst, integration-engine.
    #[arg(long)]
    pub role: String,
    /// Organization id the position is in (default: the trust).
    #[arg(long)]
    pub organization: Option<String>,
    /// Location ids (sites, wards, clinics) the position covers (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    pub location: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args)]
pub struct RevokeArgs {
    pub username: String,
    /// Role code, or a PractitionerRole id.
    #[arg(long)]
    pub role: String,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Clone)]
pub struct TrustArgs {
    /// Id of the trust's Organization (its departments are partOf it; other
    /// organisations are partners).
    #[arg(long, env = "WARDLINE_TRUST_ORGANIZATION", default_value = "trust")]
    pub trust_organization: String,
}

#[derive(Args)]
pub struct TokenArgs {
    /// The user the token is for.
    #[arg(long, conflicts_with = "client")]
    pub user: Option<String>,
    /// A registered backend client the token is for (system/ scopes).
    #[arg(long)]
    pub client: Option<String>,
    /// The position (PractitionerRole id) to act in; default: the user's
    /// only position.
    #[arg(long)]
    pub position: Option<String>,
    /// SMART scopes, e.g. "user/*.cruds" or "patient/Observation.rs".
    #[arg(long)]
    pub scope: String,
    /// Patient launch context (for patient/ scopes).
    #[arg(long)]
    pub patient: Option<String>,
    /// Lifetime in minutes.
    #[arg(long, default_value_t = 15)]
    pub minutes: i64,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a SMART client: an app (--redirect-uri, authorization code +
    /// PKCE) or a backend service (--jwks-file, client credentials with
    /// private_key_jwt).
    Add(ClientAddArgs),
}

#[derive(Args)]
pub struct ClientAddArgs {
    pub client_id: String,
    #[arg(long)]
    pub name: String,
    /// The most the client may be granted, e.g. "launch/patient openid fhirUser user/*.rs".
    #[arg(long)]
    pub scope: String,
    #[arg(long)]
    pub redirect_uri: Vec<String>,
    /// A JSON Web Key Set file with the backend service's public key(s).
    #[arg(long)]
    pub jwks_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

fn directory(store: &StoreArgs, trust: &TrustArgs) -> Result<Directory> {
    let svc = Arc::new(store.existing_service(ServiceConfig::default())?);
    Directory::open(svc, &trust.trust_organization).map_err(wardline::load::fhir_err)
}

fn operator(cmd: &str) -> Trusted {
    Trusted::operator(format!("cli:{cmd}"))
}

fn read_password() -> Result<String> {
    if let Ok(p) = std::env::var("WARDLINE_NEW_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub fn run_user(c: UserCommand) -> Result<ExitCode> {
    match c {
        UserCommand::Add(a) => {
            let dir = directory(&a.store, &a.trust)?;
            let password = read_password()?;
            let (practitioner, secret) = dir
                .add_user(&operator("user-add"), &a.username, &a.name, &password)
                .map_err(wardline::load::fhir_err)?;
            println!("user {} created (Practitioner/{practitioner})", a.username);
            println!("TOTP secret: {secret}");
            println!(
                "enrol: {}",
                wardline_auth::totp::otpauth_uri(
                    "Wardline",
                    &a.username,
                    &wardline_auth::totp::base32_decode(&secret).unwrap_or_default()
                )
            );
        }
        UserCommand::Grant(a) => {
            let dir = directory(&a.store, &a.trust)?;
            let role = Role::parse(&a.role)
                .ok_or_else(|| anyhow::anyhow!("'{}' is not a role; see --help", a.role))?;
            let org = a
                .organization
                .unwrap_or_else(|| a.trust.trust_organization.clone());
            let id = dir
                .grant(
                    &operator("user-grant"),
                    &a.username,
                    role,
                    &org,
                    &a.location,
                )
                .map_err(wardline::load::fhir_err)?;
            println!(
                "{} is now {} at Organization/{org} (PractitionerRole/{id})",
                a.username,
                role.display()
            );
        }
        UserCommand::Revoke(a) => {
            let dir = directory(&a.store, &a.trust)?;
            let n = dir
                .revoke(&operator("user-revoke"), &a.username, &a.role)
                .map_err(wardline::load::fhir_err)?;
            println!("{n} position(s) of {} ended", a.username);
        }
        UserCommand::List(a) => {
            let dir = directory(&a.store, &a.trust)?;
            for (acc, positions) in dir.list().map_err(wardline::load::fhir_err)? {
                let state = if acc.disabled {
                    " (disabled)"
                } else if acc.locked_until_ms > wardline_fhir::datetime::now_ms() {
                    " (locked)"
                } else {
                    ""
                };
                println!("{}{state}  Practitioner/{}", acc.username, acc.practitioner);
                for p in positions {
                    println!(
                        "    {}  {} at Organization/{}{}",
                        p.id,
                        p.role.code(),
                        p.organization,
                        if p.locations.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", p.locations.join(", "))
                        }
                    );
                }
            }
        }
        UserCommand::Code(a) => {
            let dir = directory(&a.store, &a.trust)?;
            let account = dir.account(&a.username).map_err(wardline::load::fhir_err)?;
            // Issue 22: only on a demo database, and audited either way
            // (whoever has the code can sign in as the user).
            let demo = is_demo(dir.service())?;
            let mut rec = AuditRecord::security(
                ("110113", "Security Alert"),
                (WARDLINE_SUBTYPE, "security-code-shown"),
                "E",
            );
            if let Some(acc) = &account {
                rec.touch("Practitioner", &acc.practitioner, None);
            }
            rec.query = Some(format!("username={}", a.username));
            if !demo {
                rec.set_status(
                    403,
                    Some("refused: not a demo database (made by `wardline serve --demo`)".into()),
                );
            } else if account.is_none() {
                rec.set_status(404, Some("no such user".into()));
            }
            dir.service()
                .record_audit(&Agent::operator("cli:user-code"), &[rec])
                .map_err(wardline::load::fhir_err)?;
            if !demo {
                anyhow::bail!(
                    "`wardline user code` works only on a demo database (one `wardline serve --demo` \
                     made): the code would let whoever runs it sign in as '{}'. Users read their \
                     security code from their authenticator app (the attempt is audited)",
                    a.username
                );
            }
            let acc = account.ok_or_else(|| anyhow::anyhow!("no such user '{}'", a.username))?;
            let secret = wardline_auth::totp::base32_decode(&acc.totp_secret)
                .ok_or_else(|| anyhow::anyhow!("the TOTP secret of '{}' is corrupt", a.username))?;
            let now = wardline_fhir::datetime::now_ms() / 1000;
            println!("{}", wardline_auth::totp::code_at(&secret, now, 6));
            // When the next code starts (on standard error: standard output
            // is the code alone, for scripts).
            let step = wardline_auth::totp::STEP_SECS;
            let next = (now.div_euclid(step) + 1) * step;
            let used = acc.last_totp_step >= now.div_euclid(step);
            eprintln!(
                "{}the next code starts at {} (in {} s)",
                if used {
                    "this code has been used to sign in already; "
                } else {
                    ""
                },
                wardline_fhir::datetime::format_instant(next * 1000),
                next - now
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo trust's staff (created with `serve --demo` when absent), all
/// with the password [`DEMO_PASSWORD`]; `wardline user code NAME` prints
/// their current security code.
pub const DEMO_PASSWORD: &str = "wardline-demo-only";

/// One demo user: user name, full name, and their position (role code,
/// organisation, locations). README.md's "Demo users" table lists the same
/// people with the same roles (a test compares the two).
pub struct DemoUser {
    pub name: &'static str,
    pub full_name: &'static str,
    pub role: &'static str,
    pub organization: &'static str,
    pub locations: &'static [&'static str],
}

/// The demo trust's staff, in the order the README's table lists them.
pub const DEMO_USERS: &[DemoUser] = &[
    demo(
        "nurse.w1",
        "Grace Okafor",
        "staff-nurse",
        "trust",
        &["watford-w1"],
    ),
    demo(
        "nurse2.w1",
        "Megan Lloyd",
        "staff-nurse",
        "trust",
        &["watford-w1"],
    ),
    demo(
        "dr.watford",
        "Sanjay Mehta",
        "consultant",
        "trust",
        &["watford"],
    ),
    demo(
        "dr2.watford",
        "Farah Iqbal",
        "doctor",
        "trust",
        &["watford"],
    ),
    demo(
        "clerk.watford",
        "Tom Hughes",
        "ward-clerk",
        "trust",
        &["watford"],
    ),
    demo(
        "pharm.watford",
        "Aisha Rahman",
        "pharmacist",
        "trust",
        &["watford"],
    ),
    demo(
        "bms.lab",
        "Priya Nair",
        "biomedical-scientist",
        "trust",
        &["watford"],
    ),
    demo(
        "cs.lab",
        "Owen Price",
        "clinical-scientist",
        "trust",
        &["watford"],
    ),
    demo(
        "lab.manager",
        "Nadia Begum",
        "laboratory-manager",
        "trust",
        &["watford"],
    ),
    demo(
        "rad.watford",
        "Liam Brennan",
        "radiographer",
        "trust",
        &["watford"],
    ),
    demo("admin", "Pat Admin", "system-admin", "trust", &[]),
    demo(
        "ig.officer",
        "Ruth Caldicott",
        "privacy-officer",
        "trust",
        &[],
    ),
    demo("gp.e82001", "Helen Shah", "gp", "gp-e82001", &[]),
];

const fn demo(
    name: &'static str,
    full_name: &'static str,
    role: &'static str,
    organization: &'static str,
    locations: &'static [&'static str],
) -> DemoUser {
    DemoUser {
        name,
        full_name,
        role,
        organization,
        locations,
    }
}

/// Where `serve --demo` marks its database as a demo one (issue 22): the
/// `system_kv` entry (namespace, key).
pub const DEMO_MARK: (&str, &str) = ("deployment", "demo");

/// Marks the database as a demo one (`serve --demo`), so that `wardline
/// user code` may print the demo users' codes.
pub fn mark_demo(service: &wardline_core::FhirService) -> Result<()> {
    if is_demo(service)? {
        return Ok(());
    }
    service
        .system_data()
        .put(
            DEMO_MARK.0,
            DEMO_MARK.1,
            &wardline_fhir::datetime::format_instant(wardline_fhir::datetime::now_ms()),
        )
        .map_err(wardline::load::fhir_err)
}

/// Whether `serve --demo` made (or ran on) this database.
pub fn is_demo(service: &wardline_core::FhirService) -> Result<bool> {
    Ok(service
        .system_data()
        .get(DEMO_MARK.0, DEMO_MARK.1)
        .map_err(wardline::load::fhir_err)?
        .is_some())
}

pub fn seed_demo_users(dir: &Directory) -> Result<()> {
    let op = operator("demo");
    for u in DEMO_USERS {
        let (name, full, org) = (u.name, u.full_name, u.organization);
        let role = Role::parse(u.role).with_context(|| format!("demo user {name}: role"))?;
        if dir
            .account(name)
            .map_err(wardline::load::fhir_err)?
            .is_some()
        {
            continue;
        }
        dir.add_user(&op, name, full, DEMO_PASSWORD)
            .map_err(|e| anyhow::anyhow!("demo user {name}: {e}"))?;
        let locs: Vec<String> = u.locations.iter().map(|s| (*s).to_owned()).collect();
        dir.grant(&op, name, role, org, &locs)
            .map_err(|e| anyhow::anyhow!("demo user {name}: {e}"))?;
    }
    Ok(())
}

pub fn run_token(a: TokenArgs) -> Result<ExitCode> {
    let dir = directory(&a.store, &a.trust)?;
    let scope: ScopeSet = a
        .scope
        .parse()
        .map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
    let ttl = a.minutes.clamp(1, 24 * 60) * 60;
    // Issue 22: every token minted here is audited (who for, which
    // position, scopes, lifetime), like one issued by the token endpoint.
    let mut rec = AuditRecord::security(
        ("110114", "User Authentication"),
        (WARDLINE_SUBTYPE, "token-issued"),
        "E",
    );
    let token = match (&a.user, &a.client) {
        (Some(user), _) => {
            let position = match a.position {
                Some(p) => p,
                None => {
                    if dir
                        .account(user)
                        .map_err(wardline::load::fhir_err)?
                        .is_none()
                    {
                        anyhow::bail!("no such user '{user}'");
                    }
                    let ps = dir.positions(user).map_err(wardline::load::fhir_err)?;
                    match ps.as_slice() {
                        [one] => one.id.clone(),
                        [] => anyhow::bail!("'{user}' holds no active position"),
                        _ => anyhow::bail!(
                            "'{user}' holds several positions; choose one with --position ({})",
                            ps.iter()
                                .map(|p| p.id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }
                }
            };
            let token = dir
                .issue_user_token(user, &position, &scope, a.patient.as_deref(), None, ttl)
                .map_err(wardline::load::fhir_err)?;
            if let Some(acc) = dir.account(user).map_err(wardline::load::fhir_err)? {
                rec.touch("Practitioner", &acc.practitioner, None);
            }
            rec.touch("PractitionerRole", &position, None);
            if let Some(p) = &a.patient {
                rec.touch("Patient", p, Some(p));
            }
            rec.query = Some(format!("user={user}&scope={scope}&seconds={ttl}"));
            token
        }
        (None, Some(client)) => {
            let c = dir
                .client(client)
                .map_err(wardline::load::fhir_err)?
                .ok_or_else(|| anyhow::anyhow!("no registered client '{client}'"))?;
            let allowed: ScopeSet = c.scope.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            // What it asks for, as far as its registration allows (the
            // token endpoint's rule: `ScopeSet::system_grant`).
            let granted = scope.system_grant(&allowed);
            if granted.is_empty() {
                anyhow::bail!("--scope: none of {scope} may be granted to '{client}' ({allowed})");
            }
            rec.query = Some(format!("client={client}&scope={granted}&seconds={ttl}"));
            dir.issue_system_token(client, &granted, ttl)
        }
        (None, None) => anyhow::bail!("give --user NAME or --client ID"),
    };
    // Recorded (durably) before the token is shown.
    dir.service()
        .record_audit(&Agent::operator("cli:token"), &[rec])
        .map_err(wardline::load::fhir_err)?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

pub fn run_client(c: ClientCommand) -> Result<ExitCode> {
    match c {
        ClientCommand::Add(a) => {
            let dir = directory(&a.store, &a.trust)?;
            let jwks = match &a.jwks_file {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read {}", p.display()))?,
                ),
                None => None,
            };
            dir.register_client(
                &operator("client-add"),
                &Client {
                    client_id: a.client_id.clone(),
                    name: a.name,
                    redirect_uris: a.redirect_uri,
                    scope: a.scope,
                    jwks,
                },
            )
            .map_err(wardline::load::fhir_err)?;
            println!("client {} registered", a.client_id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README.md's "Demo users" table lists exactly the demo users, in
    /// order, each with their role as the workspace names it.
    #[test]
    fn the_readme_table_lists_the_demo_users_with_their_roles() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let table = readme
            .split("### Demo users")
            .nth(1)
            .expect("README.md has a \"### Demo users\" section");
        let rows: Vec<Vec<String>> = table
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2) // the header and its rule
            .map(|l| {
                l.trim_matches('|')
                    .split('|')
                    .map(|c| c.trim().trim_matches('`').to_owned())
                    .collect()
            })
            .collect();
        let listed: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str()))
            .collect();
        let expected: Vec<(&str, &str, &str)> = DEMO_USERS
            .iter()
            .map(|u| {
                let role = Role::parse(u.role).expect("demo role").display();
                (u.name, u.full_name, role)
            })
            .collect();
        assert_eq!(listed, expected);
    }
}
