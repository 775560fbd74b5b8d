//! Who is asking, and what they may do.

use std::net::IpAddr;

use airlock_npm::PackageName;
use airlock_store::{PackageState, TokenRecord, User};
use airlock_trust::{ApiToken, verify_password};
use ipnet::IpNet;

use crate::Registry;
use crate::error::{RegistryError, Result};

/// Credentials as presented in an `Authorization` header, not yet checked.
pub enum Credentials {
    Bearer(String),
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: User,
    /// The token used, or `None` for username and password.
    pub token: Option<TokenRecord>,
    /// The one-time password sent with the request (`npm-otp`), not yet checked.
    pub otp: Option<String>,
}

impl Principal {
    /// May this principal change packages at all?
    pub(crate) fn require_write(&self) -> Result<()> {
        match &self.token {
            Some(token) if token.readonly => Err(RegistryError::ReadOnlyToken),
            _ => Ok(()),
        }
    }

    /// May this principal's token touch `name` (granular tokens list packages and `@scope`s)?
    pub(crate) fn require_token_covers(&self, name: &PackageName) -> Result<()> {
        let Some(allowed) = self.token.as_ref().and_then(|t| t.packages.as_ref()) else {
            return Ok(());
        };
        let scope = name.scope().map(|s| format!("@{s}"));
        if allowed
            .iter()
            .any(|a| a == name.as_str() || Some(a) == scope.as_ref())
        {
            Ok(())
        } else {
            Err(RegistryError::Forbidden(format!(
                "this token is limited to {}; it may not change `{name}`",
                allowed.join(", ")
            )))
        }
    }

    pub(crate) fn is_maintainer(&self, state: &PackageState) -> bool {
        state.maintainers.iter().any(|m| m.id == self.user.id)
    }

    /// Checks everything needed to change an existing package.
    pub(crate) fn require_maintainer(
        &self,
        name: &PackageName,
        state: &PackageState,
    ) -> Result<()> {
        self.require_write()?;
        self.require_token_covers(name)?;
        if self.is_maintainer(state) {
            Ok(())
        } else {
            Err(self.not_maintainer(name))
        }
    }

    pub(crate) fn not_maintainer(&self, name: &PackageName) -> RegistryError {
        RegistryError::Forbidden(format!(
            "you are not a maintainer of `{name}`: ask one of its maintainers to run `npm owner add {} {name}`",
            self.user.name
        ))
    }
}

impl Registry {
    /// Checks presented credentials. `Ok(None)` means anonymous.
    pub async fn authenticate(
        &self,
        credentials: Option<Credentials>,
        otp: Option<String>,
        client_ip: IpAddr,
    ) -> Result<Option<Principal>> {
        match credentials {
            None => Ok(None),
            Some(Credentials::Bearer(presented)) => {
                let token = ApiToken::parse(&presented).map_err(|_| RegistryError::InvalidToken)?;
                let (record, user) = self
                    .accounts
                    .token_by_hash(&token.hash().to_hex(), self.now())
                    .await?
                    .ok_or(RegistryError::InvalidToken)?;
                if let Some(cidrs) = &record.cidr_whitelist {
                    let allowed = cidrs
                        .iter()
                        .filter_map(|c| c.parse::<IpNet>().ok())
                        .any(|net| net.contains(&canonical_ip(client_ip)));
                    if !allowed {
                        return Err(RegistryError::IpNotAllowed(client_ip));
                    }
                }
                Ok(Some(Principal {
                    user,
                    token: Some(record),
                    otp,
                }))
            }
            Some(Credentials::Basic { username, password }) => {
                let user = self.check_password(&username, &password).await?;
                Ok(Some(Principal {
                    user,
                    token: None,
                    otp,
                }))
            }
        }
    }

    /// The user with this name and password. Unknown users and wrong passwords answer the same.
    pub(crate) async fn check_password(&self, username: &str, password: &str) -> Result<User> {
        match self.accounts.user_by_name(username).await? {
            Some(user) if verify_password(password, &user.password_hash) => Ok(user),
            Some(_) => Err(RegistryError::BadCredentials),
            None => {
                // Spend the same time as a real check, so timing does not tell which names exist.
                let _ = verify_password(password, &DUMMY_HASH);
                Err(RegistryError::BadCredentials)
            }
        }
    }

    /// Reads are open unless the registry is private.
    pub(crate) fn require_reader(&self, principal: Option<&Principal>) -> Result<()> {
        if self.config.read_requires_auth && principal.is_none() {
            Err(RegistryError::Unauthenticated)
        } else {
            Ok(())
        }
    }
}

/// A real argon2id hash, verified against when the user does not exist.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    airlock_trust::hash_password(&airlock_trust::random_hex(16)).unwrap_or_default()
});

/// `::ffff:10.0.0.1` and `10.0.0.1` are the same client.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

pub(crate) fn require_principal(principal: Option<&Principal>) -> Result<&Principal> {
    principal.ok_or(RegistryError::Unauthenticated)
}
