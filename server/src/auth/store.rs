//! Where tokens live: those created by `tag-server token create` in the state
//! database (`tokens` table: the secret's SHA-256, never the secret), read on every
//! request so that a revocation takes effect at once, also across processes; and
//! those a deployment gives (`auth.tokens_file`, `auth.admin_token`), read at start.
//!
//! Beside each token's digest, its SCRAM-SHA-256 verifier for the wire protocol
//! (a random salt and PBKDF2's salted password, as pgwire's SCRAM takes it): with
//! it a PostgreSQL client signs in without sending the token. The salted password
//! cannot be turned back into the token nor used over HTTP, but it does sign in
//! over the wire: protect `state.sqlite3` as the tokens themselves. Tokens made
//! before verifiers were kept, and a tokens file's `secret_sha256` ones, have none
//! and sign in with the token as a cleartext password.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Mutex,
};

use rusqlite::{params, OptionalExtension};
use serde::Deserialize;

use super::{new_secret, now, same_digest, sha256_hex, Limits, Principal, Role, TokenInfo};
use crate::{
    config::AuthConfig,
    error::{Error, Result},
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'analyst')),
    datasets TEXT,
    secret_sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    requests_per_minute INTEGER,
    tokens_per_day INTEGER,
    confirm_calls INTEGER
);
";

/// PBKDF2's rounds for a SCRAM verifier (RFC 7677's minimum, PostgreSQL's default).
pub const SCRAM_ITERATIONS: usize = 4096;

/// What SCRAM-SHA-256 checks a client's proof against.
#[derive(Debug, Clone, PartialEq)]
pub struct ScramVerifier {
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl ScramVerifier {
    fn new(secret: &str) -> ScramVerifier {
        let salt: [u8; 16] = rand::random();
        let salted_password = pgwire::api::auth::sasl::scram::gen_salted_password(secret, &salt, SCRAM_ITERATIONS);
        ScramVerifier { salt: salt.to_vec(), salted_password }
    }

    fn to_text(&self) -> String {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        format!("{}:{}", hex(&self.salt), hex(&self.salted_password))
    }

    fn from_text(text: &str) -> Option<ScramVerifier> {
        let unhex = |hex: &str| (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect::<Option<Vec<u8>>>();
        let (salt, salted) = text.split_once(':')?;
        Some(ScramVerifier { salt: unhex(salt)?, salted_password: unhex(salted)? })
    }
}

/// The format of `auth.tokens_file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<GivenToken>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GivenToken {
    name: String,
    role: Role,
    #[serde(default)]
    datasets: Option<Vec<String>>,
    /// The secret's SHA-256 (hex); or the secret itself.
    #[serde(default)]
    secret_sha256: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    expires_at: Option<i64>,
    #[serde(default)]
    requests_per_minute: Option<u32>,
    #[serde(default)]
    tokens_per_day: Option<u64>,
    #[serde(default)]
    confirm_calls: Option<u64>,
}

pub struct TokenStore {
    conn: Mutex<rusqlite::Connection>,
    given: Vec<(TokenInfo, String)>,
    /// The SCRAM verifiers of the given tokens whose secret is known, by id.
    given_scram: Vec<(String, ScramVerifier)>,
    /// Limits of tokens that set none of their own.
    defaults: Limits,
}

fn poisoned<T>(_: T) -> Error {
    Error::internal("the token store's lock was poisoned")
}

/// A hash no secret has, compared against when the id is unknown, so that an
/// unknown token costs the same work as a known one.
const NO_SUCH_TOKEN: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn info_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(TokenInfo, String)> {
    let datasets: Option<String> = row.get(3)?;
    let role: String = row.get(2)?;
    Ok((
        TokenInfo {
            id: row.get(0)?,
            name: row.get(1)?,
            role: if role == "admin" { Role::Admin } else { Role::Analyst },
            datasets: datasets.and_then(|d| serde_json::from_str(&d).ok()),
            created_at: row.get(5)?,
            expires_at: row.get(6)?,
            revoked_at: row.get(7)?,
            limits: Limits {
                requests_per_minute: row.get::<_, Option<i64>>(8)?.map(|n| n as u32),
                tokens_per_day: row.get::<_, Option<i64>>(9)?.map(|n| n as u64),
                confirm_calls: row.get::<_, Option<i64>>(10)?.map(|n| n as u64),
            },
            origin: "database".into(),
        },
        row.get(4)?,
    ))
}

const COLUMNS: &str = "id, name, role, datasets, secret_sha256, created_at, expires_at, revoked_at, requests_per_minute, tokens_per_day, confirm_calls";

impl TokenStore {
    pub fn open(data_dir: &Path, config: &AuthConfig) -> Result<TokenStore> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Config(format!("cannot create data directory {} (TAG_DATA_DIR): {e}", data_dir.display())))?;
        let conn = rusqlite::Connection::open(data_dir.join("state.sqlite3"))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;")?;
        conn.execute_batch(SCHEMA)?;
        let has_scram = conn.prepare("SELECT 1 FROM pragma_table_info('tokens') WHERE name = 'scram'")?.exists([])?;
        if !has_scram {
            conn.execute_batch("ALTER TABLE tokens ADD COLUMN scram TEXT")?;
        }
        let mut given = Vec::new();
        let mut given_scram = Vec::new();
        if let Some(file) = &config.tokens_file {
            for (info, hash, secret) in read_tokens_file(file)? {
                if let Some(secret) = secret {
                    given_scram.push((info.id.clone(), ScramVerifier::new(&secret)));
                }
                given.push((info, hash));
            }
        }
        if let Some(secret) = config.admin_token.as_deref().filter(|s| !s.is_empty()) {
            if secret.len() < 16 {
                return Err(Error::Config("auth.admin_token (TAG_AUTH_ADMIN_TOKEN) must be at least 16 characters".into()));
            }
            let info = TokenInfo {
                id: "admin".into(),
                name: "admin".into(),
                role: Role::Admin,
                datasets: None,
                created_at: now(),
                expires_at: None,
                revoked_at: None,
                limits: Limits::default(),
                origin: "environment".into(),
            };
            given_scram.push((info.id.clone(), ScramVerifier::new(secret)));
            given.push((info, sha256_hex(secret)));
        }
        let defaults = Limits {
            requests_per_minute: config.requests_per_minute,
            tokens_per_day: config.tokens_per_day,
            confirm_calls: Some(config.confirm_calls),
        };
        Ok(TokenStore { conn: Mutex::new(conn), given, given_scram, defaults })
    }

    /// Every request's principal while access control is off.
    pub fn open_principal(&self) -> Principal {
        Principal::open(Limits { confirm_calls: self.defaults.confirm_calls, ..Limits::default() })
    }

    /// Whether any token exists: given by the deployment, or ever created here
    /// (revoked and expired ones count, so revoking the last token does not open
    /// the server).
    pub fn any(&self) -> Result<bool> {
        if !self.given.is_empty() {
            return Ok(true);
        }
        let conn = self.conn.lock().map_err(poisoned)?;
        let exists = conn.prepare("SELECT 1 FROM tokens LIMIT 1")?.exists([])?;
        Ok(exists)
    }

    /// A new token; the secret is returned here and never again.
    pub fn create(&self, name: &str, role: Role, datasets: Option<Vec<String>>, expires_at: Option<i64>, limits: Limits) -> Result<(TokenInfo, String)> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(Error::InvalidRequest("a token needs a name of 1 to 100 characters".into()));
        }
        let (id, secret) = new_secret();
        let info = TokenInfo {
            id,
            name: name.to_string(),
            role,
            datasets,
            created_at: now(),
            expires_at,
            revoked_at: None,
            limits,
            origin: "database".into(),
        };
        let conn = self.conn.lock().map_err(poisoned)?;
        conn.execute(
            &format!("INSERT INTO tokens ({COLUMNS}, scram) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8, ?9, ?10, ?11)"),
            params![
                info.id,
                info.name,
                info.role.as_str(),
                info.datasets.as_ref().map(|d| serde_json::to_string(d).unwrap_or_default()),
                sha256_hex(&secret),
                info.created_at,
                info.expires_at,
                info.limits.requests_per_minute,
                info.limits.tokens_per_day.map(|n| n as i64),
                info.limits.confirm_calls.map(|n| n as i64),
                ScramVerifier::new(&secret).to_text(),
            ],
        )?;
        Ok((info, secret))
    }

    /// Every token, newest first (the deployment's first).
    pub fn list(&self) -> Result<Vec<TokenInfo>> {
        let mut tokens: Vec<TokenInfo> = self.given.iter().map(|(info, _)| info.clone()).collect();
        let conn = self.conn.lock().map_err(poisoned)?;
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM tokens ORDER BY created_at DESC, id"))?;
        let rows = stmt.query_map([], info_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        tokens.extend(rows.into_iter().map(|(info, _)| info));
        Ok(tokens)
    }

    /// Revokes the tokens with this id or name; how many.
    pub fn revoke(&self, id_or_name: &str) -> Result<usize> {
        let conn = self.conn.lock().map_err(poisoned)?;
        let changed = conn.execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE (id = ?1 OR name = ?1) AND revoked_at IS NULL",
            params![id_or_name, now()],
        )?;
        if changed == 0 && self.given.iter().any(|(info, _)| info.id == id_or_name || info.name == id_or_name) {
            return Err(Error::InvalidRequest(format!(
                "{id_or_name} is given by the deployment (auth.tokens_file or auth.admin_token); remove it there"
            )));
        }
        Ok(changed)
    }

    /// The principal of a token, or `None` (unknown, wrong, revoked, expired: the
    /// same answer after the same comparisons).
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let digest = sha256_hex(token);
        let id = token.strip_prefix("tag_").and_then(|rest| rest.split_once('_')).map(|(id, _)| id).unwrap_or("");
        let stored: Option<(TokenInfo, String)> = self
            .conn
            .lock()
            .ok()?
            .query_row(&format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1"), params![id], info_from_row)
            .optional()
            .ok()
            .flatten();
        let stored_matches = same_digest(&digest, stored.as_ref().map_or(NO_SUCH_TOKEN, |(_, hash)| hash.as_str()));
        let mut found = stored.filter(|_| stored_matches).map(|(info, _)| info);
        for (info, hash) in &self.given {
            if same_digest(&digest, hash) && found.is_none() {
                found = Some(info.clone());
            }
        }
        let info = found?;
        let now = now();
        if info.revoked_at.is_some() || info.expires_at.is_some_and(|t| t <= now) {
            return None;
        }
        Some(self.principal(info))
    }

    /// The SCRAM verifier of the live token with id `id` (a wire-protocol user
    /// name), and its principal once the client's proof checks out.
    pub fn scram(&self, id: &str) -> Option<(ScramVerifier, Principal)> {
        let stored = self
            .conn
            .lock()
            .ok()?
            .query_row(&format!("SELECT {COLUMNS}, scram FROM tokens WHERE id = ?1"), params![id], |row| {
                Ok((info_from_row(row)?.0, row.get::<_, Option<String>>(11)?))
            })
            .optional()
            .ok()
            .flatten();
        let (info, verifier) = match stored {
            Some((info, Some(text))) => (info, ScramVerifier::from_text(&text)?),
            Some((_, None)) => return None,
            None => {
                let (_, verifier) = self.given_scram.iter().find(|(given, _)| given == id)?;
                let (info, _) = self.given.iter().find(|(info, _)| info.id == id)?;
                (info.clone(), verifier.clone())
            }
        };
        if info.revoked_at.is_some() || info.expires_at.is_some_and(|t| t <= now()) {
            return None;
        }
        Some((verifier, self.principal(info)))
    }

    fn principal(&self, info: TokenInfo) -> Principal {
        let limits = Limits {
            requests_per_minute: info.limits.requests_per_minute.or(self.defaults.requests_per_minute),
            tokens_per_day: info.limits.tokens_per_day.or(self.defaults.tokens_per_day),
            confirm_calls: info.limits.confirm_calls.or(self.defaults.confirm_calls),
        };
        Principal {
            name: info.name,
            role: info.role,
            datasets: info.datasets.map(|d| d.into_iter().collect::<BTreeSet<_>>()),
            token: Some(info.id),
            limits,
        }
    }
}

/// The tokens of `auth.tokens_file`: each with its digest, and its secret when
/// the file gives it.
fn read_tokens_file(path: &PathBuf) -> Result<Vec<(TokenInfo, String, Option<String>)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read auth.tokens_file {}: {e}", path.display())))?;
    let file: TokensFile = toml::from_str(&text).map_err(|e| Error::Config(format!("auth.tokens_file {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, token) in file.tokens.into_iter().enumerate() {
        let (hash, secret) = match (token.secret_sha256, token.secret) {
            (Some(hash), None) if hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()) => (hash.to_ascii_lowercase(), None),
            (None, Some(secret)) if secret.len() >= 16 => (sha256_hex(&secret), Some(secret)),
            _ => {
                return Err(Error::Config(format!(
                    "auth.tokens_file {}: token {} needs secret_sha256 (64 hex digits) or a secret of at least 16 characters",
                    path.display(),
                    token.name
                )))
            }
        };
        let info = TokenInfo {
            id: format!("file-{}", i + 1),
            name: token.name,
            role: token.role,
            datasets: token.datasets,
            created_at: 0,
            expires_at: token.expires_at,
            revoked_at: None,
            limits: Limits {
                requests_per_minute: token.requests_per_minute,
                tokens_per_day: token.tokens_per_day,
                confirm_calls: token.confirm_calls,
            },
            origin: "file".into(),
        };
        out.push((info, hash, secret));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, config: &AuthConfig) -> TokenStore {
        TokenStore::open(dir, config).unwrap()
    }

    #[test]
    fn tokens_keep_a_scram_verifier_of_their_secret_never_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let config = AuthConfig { admin_token: Some("an-admin-secret-of-length".into()), ..AuthConfig::default() };
        let s = store(dir.path(), &config);
        let (info, secret) = s.create("ann", Role::Analyst, None, None, Limits::default()).unwrap();
        let (verifier, principal) = s.scram(&info.id).expect("a new token has a verifier");
        assert_eq!(principal.name, "ann");
        assert_eq!(verifier.salt.len(), 16);
        let expected = pgwire::api::auth::sasl::scram::gen_salted_password(&secret, &verifier.salt, SCRAM_ITERATIONS);
        assert_eq!(verifier.salted_password, expected);
        let stored: String = s.conn.lock().unwrap().query_row("SELECT scram FROM tokens", [], |r| r.get(0)).unwrap();
        assert!(!stored.contains(&secret) && !stored.contains(&sha256_hex(&secret)), "{stored}");
        let (bob, _) = s.create("bob", Role::Analyst, None, None, Limits::default()).unwrap();
        assert_ne!(s.scram(&info.id).unwrap().0.salt, s.scram(&bob.id).unwrap().0.salt, "each its own salt");
        let (admin, principal) = s.scram("admin").expect("the deployment's admin token");
        assert_eq!(admin.salted_password, pgwire::api::auth::sasl::scram::gen_salted_password("an-admin-secret-of-length", &admin.salt, SCRAM_ITERATIONS));
        assert_eq!(principal.role, Role::Admin);
        assert!(s.scram("nosuchid").is_none());
        assert!(store(dir.path(), &config).scram(&info.id).is_some(), "kept across a restart");
    }

    #[test]
    fn tokens_authenticate_until_revoked_or_expired_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let config = AuthConfig::default();
        let s = store(dir.path(), &config);
        assert!(!s.any().unwrap());
        let (info, secret) = s.create("ann", Role::Analyst, Some(vec!["movies".into()]), None, Limits::default()).unwrap();
        let principal = s.authenticate(&secret).expect("a fresh token works");
        assert_eq!((principal.name.as_str(), principal.role), ("ann", Role::Analyst));
        assert!(s.authenticate(&format!("{secret}x")).is_none());
        assert!(s.authenticate("tag_nosuchid_0000").is_none());
        let reopened = store(dir.path(), &config);
        assert!(reopened.authenticate(&secret).is_some(), "tokens survive a restart");
        assert_eq!(s.revoke(&info.id).unwrap(), 1);
        assert!(reopened.authenticate(&secret).is_none(), "a revocation takes effect at once, across stores");
        assert!(reopened.any().unwrap(), "revoking the last token does not open the server");
        let (old, expired) = s.create("old", Role::Admin, None, Some(now() - 1), Limits::default()).unwrap();
        assert!(s.authenticate(&expired).is_none());
        assert!(s.scram(&old.id).is_none(), "nor over SCRAM");
        assert!(s.scram(&info.id).is_none(), "a revoked token has no SCRAM sign-in");
        assert!(s.list().unwrap().iter().all(|t| t.origin == "database"));
    }

    #[test]
    fn deployments_give_tokens_by_file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.toml");
        std::fs::write(
            &file,
            format!(
                "[[tokens]]\nname = \"bi\"\nrole = \"analyst\"\ndatasets = [\"support\"]\nsecret_sha256 = \"{}\"\ntokens_per_day = 500\n",
                sha256_hex("a-long-enough-secret")
            ),
        )
        .unwrap();
        let config = AuthConfig { tokens_file: Some(file), admin_token: Some("the-admin-secret-123".into()), ..AuthConfig::default() };
        let s = store(dir.path(), &config);
        assert!(s.any().unwrap());
        let bi = s.authenticate("a-long-enough-secret").unwrap();
        assert_eq!((bi.name.as_str(), bi.limits.tokens_per_day), ("bi", Some(500)));
        assert!(!bi.may_use("movies"));
        assert!(s.authenticate("the-admin-secret-123").unwrap().is_admin());
        assert!(s.revoke("bi").is_err(), "a deployment's token is removed where it is given");
    }
}
