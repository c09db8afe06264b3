//! Who may ask what. A bearer token resolves to a [`Principal`]: a name, a role
//! (`admin`: everything; `analyst`: ask, sql, its own conversations and feedback)
//! and the datasets it may use, with its budgets. Tokens are created by
//! `tag-server token create` (the secret is shown once and stored only as its
//! SHA-256, in the state database), or given by a deployment through
//! `auth.tokens_file` or `auth.admin_token`. One middleware resolves the principal
//! once per request; handlers receive it, never the raw header. An unknown, wrong,
//! revoked or expired token all get the same answer, after the same work
//! (constant-time comparison of hashes).
//!
//! With no token anywhere the server is open, as before, but only on a loopback
//! address: binding another address refuses to start unless `auth.mode = "none"`
//! says so explicitly.

pub mod budget;
pub mod store;

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use budget::Budgets;
pub use store::TokenStore;

use crate::{
    config::{AuthConfig, AuthMode},
    error::{Error, Result},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Analyst,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
        }
    }

    pub fn parse(text: &str) -> Result<Role> {
        match text {
            "admin" => Ok(Role::Admin),
            "analyst" => Ok(Role::Analyst),
            other => Err(Error::InvalidRequest(format!("role must be admin or analyst, not {other:?}"))),
        }
    }
}

/// Limits of one token; `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub requests_per_minute: Option<u32>,
    /// LLM tokens (prompt plus completion) per day (UTC).
    pub tokens_per_day: Option<u64>,
    /// Estimated LLM calls above which a query waits for the client's confirmation.
    pub confirm_calls: Option<u64>,
}

/// Who is asking, resolved from the request's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name; conversations and feedback belong to it.
    pub name: String,
    pub role: Role,
    /// The datasets it may use; `None`: all.
    pub datasets: Option<BTreeSet<String>>,
    /// The token's id (`None` when access control is off).
    pub token: Option<String>,
    pub limits: Limits,
}

impl Principal {
    /// The principal of every request when access control is off: may do anything
    /// (the deployment's default limits still apply to its queries).
    pub fn open(limits: Limits) -> Principal {
        Principal { name: String::new(), role: Role::Admin, datasets: None, token: None, limits }
    }

    /// The command line's principal: the operator at the console, with no limits.
    pub fn console() -> Principal {
        Principal { name: "console".into(), role: Role::Admin, datasets: None, token: None, limits: Limits::default() }
    }

    /// Refuses a non-admin: `Forbidden`, naming what needs an admin.
    pub fn require_admin(&self, what: &str) -> Result<()> {
        match self.is_admin() {
            true => Ok(()),
            false => Err(Error::Forbidden(format!("{what} needs an admin token; this token ({}) is an analyst's", self.name))),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn may_use(&self, dataset: &str) -> bool {
        self.datasets.as_ref().is_none_or(|allowed| allowed.contains(dataset))
    }

    /// The owner a conversation of this principal carries; `None` sees everyone's
    /// (an admin).
    pub fn owner_filter(&self) -> Option<&str> {
        (!self.is_admin()).then_some(self.name.as_str())
    }
}

/// A token as stored and listed (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// `None`: every dataset.
    pub datasets: Option<Vec<String>>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    #[serde(flatten)]
    pub limits: Limits,
    /// Where it comes from: `database`, `file` or `environment`.
    pub origin: String,
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub(crate) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh token secret: `tag_<id>_<32 random bytes, hex>`; the id is public and
/// finds the stored hash.
pub(crate) fn new_secret() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    (id.clone(), format!("tag_{id}_{secret}"))
}

/// Resolves bearer tokens to principals.
pub struct Auth {
    mode: AuthMode,
    store: Arc<TokenStore>,
    /// Once tokens are required they stay required (a token, even revoked, never
    /// goes away), so the store is asked only until then.
    seen_tokens: std::sync::atomic::AtomicBool,
}

/// Why a request was refused before it reached a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    Malformed,
    /// Unknown, wrong, revoked or expired: said the same way.
    Invalid,
}

impl Auth {
    /// Access control as the configuration says, with the database's tokens and
    /// those the deployment gives.
    pub fn new(config: &AuthConfig, data_dir: &Path) -> Result<Auth> {
        let store = Arc::new(TokenStore::open(data_dir, config)?);
        Ok(Auth { mode: config.mode, store, seen_tokens: Default::default() })
    }

    pub fn store(&self) -> &Arc<TokenStore> {
        &self.store
    }

    /// Whether requests must carry a token: `tokens`, or `auto` with any token.
    pub fn required(&self) -> Result<bool> {
        Ok(match self.mode {
            AuthMode::None => false,
            AuthMode::Tokens => true,
            AuthMode::Auto => {
                use std::sync::atomic::Ordering;
                if self.seen_tokens.load(Ordering::Relaxed) {
                    return Ok(true);
                }
                let any = self.store.any()?;
                self.seen_tokens.store(any, Ordering::Relaxed);
                any
            }
        })
    }

    /// Refuses to serve on a non-loopback address with access control off by
    /// accident: with no token, only an explicit `auth.mode = "none"` allows it.
    pub fn check_listen(&self, address: SocketAddr) -> Result<()> {
        if address.ip().is_loopback() || self.mode == AuthMode::None || self.required()? {
            return Ok(());
        }
        Err(Error::Config(format!(
            "refusing to listen on {address} with no access tokens: anyone who reaches it could read every dataset \
and spend the LLM. Create a token with `tag-server token create --name NAME --role admin` (or give one through \
auth.admin_token / TAG_AUTH_ADMIN_TOKEN or auth.tokens_file), or set auth.mode = \"none\" (TAG_AUTH_MODE=none) \
to serve without access control on purpose"
        )))
    }

    /// The principal of a request's `Authorization` header value.
    pub fn resolve(&self, header: Option<&str>) -> std::result::Result<Principal, Refusal> {
        match self.required() {
            Ok(false) => return Ok(self.store.open_principal()),
            Ok(true) => {}
            Err(_) => return Err(Refusal::Invalid),
        }
        let Some(header) = header else { return Err(Refusal::Missing) };
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
            _ => return Err(Refusal::Malformed),
        };
        self.store.authenticate(token).ok_or(Refusal::Invalid)
    }
}

/// Constant-time equality of two hex digests.
pub(crate) fn same_digest(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_carry_their_id() {
        let (id, secret) = new_secret();
        let (_, other) = new_secret();
        assert_ne!(secret, other);
        assert!(secret.starts_with(&format!("tag_{id}_")) && secret.len() == 4 + 12 + 1 + 64, "{secret}");
        assert!(same_digest(&sha256_hex(&secret), &sha256_hex(&secret)));
        assert!(!same_digest(&sha256_hex(&secret), &sha256_hex(&other)));
        assert!(!same_digest("ab", "abc"));
    }

    #[test]
    fn principals_see_their_datasets_and_conversations() {
        let analyst = Principal {
            name: "ann".into(),
            role: Role::Analyst,
            datasets: Some(["movies".to_string()].into()),
            token: Some("t".into()),
            limits: Limits::default(),
        };
        assert!(analyst.may_use("movies") && !analyst.may_use("support"));
        assert_eq!(analyst.owner_filter(), Some("ann"));
        let open = Principal::open(Limits::default());
        assert!(open.may_use("anything") && open.owner_filter().is_none());
        assert!(analyst.require_admin("the cache").is_err() && open.require_admin("the cache").is_ok());
    }
}
