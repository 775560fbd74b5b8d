//! Who is asking, and what they may do.

use std::net::IpAddr;

use airlock_npm::PackageName;
use airlock_store::{PackageState, TokenRecord, User};
use airlock_trust::{ApiToken, verify_password};
use ipnet::IpNet;

use crate::Registry;
use crate::error::{RegistryError, Result};
use crate::trusted_publishing::PublisherGrant;

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
    /// Set for a trusted-publishing credential: its authority (one package, some
    /// permissions). `user` is then the maintainer who configured the publisher, accountable
    /// for it; the credential acts only through [`PublisherGrant`], never as that user.
    pub publisher: Option<PublisherGrant>,
}

impl Principal {
    /// May this principal change packages at all?
    pub(crate) fn require_write(&self) -> Result<()> {
        // A trusted publisher's permissions are checked by `PublisherGrant::require`.
        if self.publisher.is_some() {
            return Ok(());
        }
        match &self.token {
            Some(token) if token.readonly => Err(RegistryError::ReadOnlyToken),
            _ => Ok(()),
        }
    }

    /// May this principal's token touch `name` (granular tokens list packages and `@scope`s)?
    pub(crate) fn require_token_covers(&self, name: &PackageName) -> Result<()> {
        if let Some(grant) = &self.publisher {
            return grant.require_package(name);
        }
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

    /// Who acts, for logs: the user, or the trusted publisher's CI identity.
    pub(crate) fn actor_name(&self) -> String {
        self.publisher
            .as_ref()
            .map_or_else(|| self.user.name.clone(), |g| g.actor().name)
    }

    /// A trusted publisher counts as a maintainer of its one package (for publishing and
    /// staging only: the server lets its credential reach nothing else).
    pub(crate) fn is_maintainer(&self, state: &PackageState) -> bool {
        if let Some(grant) = &self.publisher {
            return grant.package == state.name;
        }
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
                let hash = token.hash().to_hex();
                let Some((record, user)) = self.accounts.token_by_hash(&hash, self.now()).await?
                else {
                    return self.publisher_principal(&hash).await.map(Some);
                };
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
                    publisher: None,
                }))
            }
            Some(Credentials::Basic { username, password }) => {
                let user = self.check_password(&username, &password).await?;
                Ok(Some(Principal {
                    user,
                    token: None,
                    otp,
                    publisher: None,
                }))
            }
        }
    }

    /// A trusted-publishing credential (minted by the OIDC exchange), or an invalid token.
    async fn publisher_principal(&self, hash: &str) -> Result<Principal> {
        let (grant, configured_by) = self
            .publisher_grant(hash)
            .await?
            .ok_or(RegistryError::InvalidToken)?;
        let user = self
            .accounts
            .user_by_id(configured_by)
            .await?
            .ok_or(RegistryError::InvalidToken)?;
        Ok(Principal {
            user,
            token: None,
            otp: None,
            publisher: Some(grant),
        })
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
