//! Accounts, logins and tokens.

use std::time::Duration;

use airlock_store::{
    NewToken, NewUser, ProfileChange, TokenRecord, User, WebLoginRedeem, format_time,
};
use airlock_trust::{ApiToken, hash_password, random_hex};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Registry;
use crate::auth::{Principal, require_principal};
use crate::error::{RegistryError, Result};

/// Tokens listed per page of `GET /-/npm/v1/tokens`.
const TOKENS_PER_PAGE: usize = 100;

/// Account names follow the rules for unscoped package names (URL-safe, lower case), so they
/// are safe in URLs and scopes.
fn check_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
        && !name.starts_with(['.', '_', '-']);
    if ok {
        Ok(())
    } else {
        Err(RegistryError::BadRequest(format!(
            "`{name}` is not a valid user name: use 1-64 lower-case letters, digits, '-', '_' or '.', not starting with a symbol"
        )))
    }
}

fn check_email(email: &str) -> Result<()> {
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
        && !email.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(RegistryError::BadRequest(format!(
            "`{email}` is not a valid email address"
        )))
    }
}

/// A new account, as the admin CLI or open sign-up asks for it.
pub struct NewAccount {
    pub name: String,
    pub email: String,
    pub password: String,
    pub is_admin: bool,
}

/// What `npm token create` may send (protocol §2.5).
#[derive(Debug, Default, Deserialize)]
pub struct CreateTokenRequest {
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub readonly: Option<bool>,
    #[serde(default)]
    pub cidr_whitelist: Option<Vec<String>>,
    #[serde(default)]
    pub packages: Option<Vec<String>>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub packages_and_scopes_permission: Option<String>,
    /// Days until the token expires.
    #[serde(default)]
    pub expires: Option<u32>,
}

pub struct CreatedToken {
    pub token: ApiToken,
    pub record: TokenRecord,
}

pub struct TokenListEntry(pub TokenRecord);

pub struct TokenList {
    pub objects: Vec<TokenRecord>,
    pub total: usize,
    pub next_page: Option<usize>,
}

/// Result of a legacy (CouchDB) login or sign-up.
pub struct LoginOutcome {
    pub token: ApiToken,
    pub user: User,
    pub created: bool,
}

pub struct WebLoginStart {
    pub login_id: String,
    pub done_secret: String,
}

pub enum DoneStatus {
    Pending,
    Done(ApiToken),
}

/// `POST /-/npm/v1/user` fields.
#[derive(Debug, Default, Deserialize)]
pub struct ProfileUpdate {
    #[serde(default)]
    pub email: Option<Option<String>>,
    #[serde(default)]
    pub fullname: Option<Option<String>>,
    #[serde(default)]
    pub homepage: Option<Option<String>>,
    #[serde(default)]
    pub freenode: Option<Option<String>>,
    #[serde(default)]
    pub twitter: Option<Option<String>>,
    #[serde(default)]
    pub github: Option<Option<String>>,
    #[serde(default)]
    pub password: Option<PasswordChange>,
    #[serde(default)]
    pub tfa: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct PasswordChange {
    pub old: String,
    pub new: String,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl Registry {
    pub async fn create_account(&self, account: NewAccount) -> Result<User> {
        check_user_name(&account.name)?;
        check_email(&account.email)?;
        let password_hash = hash_password(&account.password)
            .map_err(|e| RegistryError::BadRequest(e.to_string()))?;
        match self
            .accounts
            .create_user(NewUser {
                name: account.name.clone(),
                email: account.email,
                password_hash,
                is_admin: account.is_admin,
                now: self.now(),
            })
            .await
        {
            Ok(user) => Ok(user),
            Err(airlock_store::StoreError::AlreadyExists(_)) => Err(RegistryError::Conflict(
                format!("the user name `{}` is taken", account.name),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        Ok(self.accounts.list_users().await?)
    }

    pub async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        Ok(self.accounts.user_by_name(name).await?)
    }

    /// Mints and stores a token for `user`.
    pub async fn issue_token(
        &self,
        user: &User,
        request: &CreateTokenRequest,
    ) -> Result<CreatedToken> {
        let token = ApiToken::generate();
        let now = self.now();
        if let Some(cidrs) = &request.cidr_whitelist {
            for cidr in cidrs {
                cidr.parse::<IpNet>().map_err(|_| {
                    RegistryError::BadRequest(format!(
                        "`{cidr}` is not a CIDR range (for example 10.0.0.0/8)"
                    ))
                })?;
            }
        }
        let permission = request.packages_and_scopes_permission.as_deref();
        let readonly = request.readonly.unwrap_or(false)
            || matches!(permission, Some("read-only" | "no-access"));
        let mut packages: Option<Vec<String>> = None;
        if request.packages.is_some() || request.scopes.is_some() || permission == Some("no-access")
        {
            let mut list = request.packages.clone().unwrap_or_default();
            list.extend(request.scopes.iter().flatten().map(|s| {
                if s.starts_with('@') {
                    s.clone()
                } else {
                    format!("@{s}")
                }
            }));
            if permission == Some("no-access") {
                list.clear();
            }
            packages = Some(list);
        }
        let record = TokenRecord {
            key: random_hex(32),
            user_id: user.id,
            display: token.display_prefix(),
            name: request.name.clone(),
            description: request.description.clone(),
            readonly,
            cidr_whitelist: request.cidr_whitelist.clone().filter(|l| !l.is_empty()),
            packages,
            created_at: now,
            expires_at: request
                .expires
                .map(|days| now + Duration::from_secs(u64::from(days) * 86_400)),
        };
        self.accounts
            .insert_token(NewToken {
                record: record.clone(),
                hash: token.hash().to_hex(),
            })
            .await?;
        Ok(CreatedToken { token, record })
    }

    /// `PUT /-/user/org.couchdb.user:NAME`: npm's legacy login and adduser.
    pub async fn couch_login(
        &self,
        url_name: &str,
        body: &[u8],
        otp: Option<&str>,
    ) -> Result<LoginOutcome> {
        #[derive(Deserialize)]
        struct Body {
            name: Option<String>,
            password: Option<String>,
            email: Option<String>,
        }
        let body: Body = serde_json::from_slice(body).map_err(|e| {
            RegistryError::BadRequest(format!("the login body is not valid JSON: {e}"))
        })?;
        let name = body.name.unwrap_or_else(|| url_name.to_owned());
        if name != url_name {
            return Err(RegistryError::BadRequest(format!(
                "the body names `{name}` but the URL names `{url_name}`"
            )));
        }
        let password = body
            .password
            .ok_or_else(|| RegistryError::BadRequest("a password is required".into()))?;
        let (user, created) = match self.accounts.user_by_name(&name).await? {
            Some(_) => {
                let user = self.check_password(&name, &password).await?;
                self.require_login_factor(&user, otp).await?;
                (user, false)
            }
            None => match body.email {
                Some(email) if self.config.open_signup => {
                    let user = self
                        .create_account(NewAccount {
                            name: name.clone(),
                            email,
                            password,
                            is_admin: false,
                        })
                        .await?;
                    (user, true)
                }
                Some(_) => return Err(RegistryError::SignupDisabled),
                None => {
                    return Err(self
                        .check_password(&name, &password)
                        .await
                        .err()
                        .unwrap_or(RegistryError::BadCredentials));
                }
            },
        };
        let created_token = self
            .issue_token(
                &user,
                &CreateTokenRequest {
                    name: Some("npm login".into()),
                    ..CreateTokenRequest::default()
                },
            )
            .await?;
        tracing::info!(actor.name = %user.name, created, "logged in (legacy)");
        Ok(LoginOutcome {
            token: created_token.token,
            user,
            created,
        })
    }

    /// `POST /-/v1/login`: starts a browser login.
    pub async fn start_web_login(&self, create_account: bool) -> Result<WebLoginStart> {
        let login_id = random_hex(16);
        let done_secret = random_hex(32);
        let now = self.now();
        self.accounts
            .create_web_login(
                &login_id,
                &sha256_hex(&done_secret),
                create_account,
                now,
                now + self.config.web_login_ttl,
            )
            .await?;
        Ok(WebLoginStart {
            login_id,
            done_secret,
        })
    }

    /// Whether the browser page for `login_id` is still usable, and whether it offers sign-up.
    pub async fn web_login_page(&self, login_id: &str) -> Result<bool> {
        match self.accounts.web_login(login_id, self.now()).await? {
            Some(login) if login.user_id.is_none() => {
                Ok(login.create_account && self.config.open_signup)
            }
            _ => Err(RegistryError::NotFound(
                "this login link has expired or was already used: run `npm login` again".into(),
            )),
        }
    }

    /// The browser form was submitted.
    pub async fn complete_web_login(
        &self,
        login_id: &str,
        username: &str,
        password: &str,
        email: Option<&str>,
        otp: Option<&str>,
    ) -> Result<User> {
        let login = self
            .accounts
            .web_login(login_id, self.now())
            .await?
            .filter(|l| l.user_id.is_none())
            .ok_or_else(|| {
                RegistryError::NotFound(
                    "this login link has expired or was already used: run `npm login` again".into(),
                )
            })?;
        let user = match email {
            Some(email)
                if login.create_account
                    && self.config.open_signup
                    && self.accounts.user_by_name(username).await?.is_none() =>
            {
                self.create_account(NewAccount {
                    name: username.to_owned(),
                    email: email.to_owned(),
                    password: password.to_owned(),
                    is_admin: false,
                })
                .await?
            }
            _ => {
                let user = self.check_password(username, password).await?;
                self.require_login_factor(&user, otp).await?;
                user
            }
        };
        if !self
            .accounts
            .complete_web_login(login_id, user.id, self.now())
            .await?
        {
            return Err(RegistryError::NotFound(
                "this login link has expired or was already used: run `npm login` again".into(),
            ));
        }
        tracing::info!(actor.name = %user.name, "logged in (web)");
        Ok(user)
    }

    /// `GET /-/v1/done?authId=SECRET`, polled by npm.
    pub async fn poll_web_login(&self, done_secret: &str) -> Result<DoneStatus> {
        let token = ApiToken::generate();
        let now = self.now();
        let record = TokenRecord {
            key: random_hex(32),
            user_id: 0,
            display: token.display_prefix(),
            name: Some("npm login".into()),
            description: None,
            readonly: false,
            cidr_whitelist: None,
            packages: None,
            created_at: now,
            expires_at: None,
        };
        match self
            .accounts
            .redeem_web_login(
                &sha256_hex(done_secret),
                NewToken {
                    record,
                    hash: token.hash().to_hex(),
                },
                now,
            )
            .await?
        {
            WebLoginRedeem::Pending => Ok(DoneStatus::Pending),
            WebLoginRedeem::Redeemed(_) => Ok(DoneStatus::Done(token)),
            WebLoginRedeem::Unknown => Err(RegistryError::NotFound(
                "this login has expired or was already completed: run `npm login` again".into(),
            )),
        }
    }

    /// `DELETE /-/user/token/{token}` (npm logout): revokes the given token, which must be the caller's.
    pub async fn logout(&self, principal: Option<&Principal>, presented: &str) -> Result<()> {
        let principal = require_principal(principal)?;
        let token = ApiToken::parse(presented).map_err(|_| RegistryError::InvalidToken)?;
        match self
            .accounts
            .token_by_hash(&token.hash().to_hex(), self.now())
            .await?
        {
            Some((record, _)) if record.user_id == principal.user.id => {
                self.accounts.delete_token(&record.key).await?;
                Ok(())
            }
            _ => Err(RegistryError::NotFound("no such token of yours".into())),
        }
    }

    pub async fn list_tokens(
        &self,
        principal: Option<&Principal>,
        page: usize,
    ) -> Result<TokenList> {
        let principal = require_principal(principal)?;
        let all = self.accounts.list_tokens(principal.user.id).await?;
        let total = all.len();
        let objects: Vec<TokenRecord> = all
            .into_iter()
            .skip(page * TOKENS_PER_PAGE)
            .take(TOKENS_PER_PAGE)
            .collect();
        let next_page = ((page + 1) * TOKENS_PER_PAGE < total).then_some(page + 1);
        Ok(TokenList {
            objects,
            total,
            next_page,
        })
    }

    /// `POST /-/npm/v1/tokens`. The caller re-proves their password; a read-only token cannot
    /// mint a read-write one.
    pub async fn create_token(
        &self,
        principal: Option<&Principal>,
        request: &CreateTokenRequest,
    ) -> Result<CreatedToken> {
        let principal = require_principal(principal)?;
        self.require_write_factor(principal).await?;
        let password = request.password.as_deref().ok_or_else(|| {
            RegistryError::BadRequest("your password is required to create a token".into())
        })?;
        let user = self.check_password(&principal.user.name, password).await?;
        let mut request_readonly = request.readonly.unwrap_or(false);
        if principal.token.as_ref().is_some_and(|t| t.readonly) {
            request_readonly = true;
        }
        let request = CreateTokenRequest {
            password: None,
            name: request.name.clone(),
            description: request.description.clone(),
            readonly: Some(request_readonly),
            cidr_whitelist: request.cidr_whitelist.clone(),
            packages: request.packages.clone(),
            scopes: request.scopes.clone(),
            packages_and_scopes_permission: request.packages_and_scopes_permission.clone(),
            expires: request.expires,
        };
        self.issue_token(&user, &request).await
    }

    /// `DELETE /-/npm/v1/tokens/token/{key}`.
    pub async fn revoke_token(&self, principal: Option<&Principal>, key: &str) -> Result<()> {
        let principal = require_principal(principal)?;
        self.require_write_factor(principal).await?;
        let mine = self.accounts.list_tokens(principal.user.id).await?;
        if !mine.iter().any(|t| t.key == key) {
            return Err(RegistryError::NotFound(format!(
                "you have no token with id `{key}`"
            )));
        }
        self.accounts.delete_token(key).await?;
        Ok(())
    }

    /// Admin CLI: revokes the token whose key starts with `prefix` (at least 6 characters,
    /// and it must be unambiguous).
    pub async fn revoke_token_by_prefix(&self, prefix: &str) -> Result<TokenRecord> {
        if prefix.len() < 6 {
            return Err(RegistryError::BadRequest(
                "give at least 6 characters of the token id".into(),
            ));
        }
        let matching: Vec<TokenRecord> = self
            .accounts
            .all_tokens()
            .await?
            .into_iter()
            .filter(|t| t.key.starts_with(prefix))
            .collect();
        match matching.as_slice() {
            [one] => {
                self.accounts.delete_token(&one.key).await?;
                Ok(one.clone())
            }
            [] => Err(RegistryError::NotFound(format!(
                "no token id starts with `{prefix}`"
            ))),
            _ => Err(RegistryError::BadRequest(format!(
                "`{prefix}` matches {} tokens: give more characters",
                matching.len()
            ))),
        }
    }

    pub async fn tokens_of(&self, user: &User) -> Result<Vec<TokenRecord>> {
        Ok(self.accounts.list_tokens(user.id).await?)
    }

    /// `GET /-/npm/v1/user`.
    pub async fn profile(&self, principal: Option<&Principal>) -> Result<Value> {
        let principal = require_principal(principal)?;
        let u = &principal.user;
        Ok(json!({
            "name": u.name,
            "email": u.email,
            "email_verified": false,
            "tfa": self.tfa_profile(u).await?,
            "fullname": u.fullname.clone().unwrap_or_default(),
            "homepage": u.homepage.clone().unwrap_or_default(),
            "freenode": u.freenode.clone().unwrap_or_default(),
            "twitter": u.twitter.clone().unwrap_or_default(),
            "github": u.github.clone().unwrap_or_default(),
            "created": format_time(u.created_at),
            "updated": format_time(u.updated_at),
            "cidr_whitelist": principal.token.as_ref().and_then(|t| t.cidr_whitelist.clone()),
        }))
    }

    /// `POST /-/npm/v1/user` (npm profile set).
    pub async fn update_profile(
        &self,
        principal: Option<&Principal>,
        update: ProfileUpdate,
    ) -> Result<Value> {
        let principal = require_principal(principal)?;
        principal.require_write()?;
        if let Some(tfa) = &update.tfa {
            let mut answer = self.profile(Some(principal)).await?;
            let changed = self.change_tfa(principal, tfa).await?;
            answer["tfa"] = changed["tfa"].clone();
            return Ok(answer);
        }
        self.require_write_factor(principal).await?;
        let mut change = ProfileChange::default();
        if let Some(email) = update.email {
            let email = email.ok_or_else(|| {
                RegistryError::BadRequest("the email address cannot be removed".into())
            })?;
            check_email(&email)?;
            change.email = Some(email);
        }
        let blank_is_none = |v: Option<Option<String>>| v.map(|v| v.filter(|s| !s.is_empty()));
        change.fullname = blank_is_none(update.fullname);
        change.homepage = blank_is_none(update.homepage);
        change.freenode = blank_is_none(update.freenode);
        change.twitter = blank_is_none(update.twitter);
        change.github = blank_is_none(update.github);
        if let Some(pw) = update.password {
            self.check_password(&principal.user.name, &pw.old).await?;
            change.password_hash =
                Some(hash_password(&pw.new).map_err(|e| RegistryError::BadRequest(e.to_string()))?);
        }
        let user = self
            .accounts
            .update_profile(principal.user.id, change, self.now())
            .await?;
        self.profile(Some(&Principal {
            user,
            token: principal.token.clone(),
            otp: None,
            publisher: None,
        }))
        .await
    }

    /// `GET /-/user/org.couchdb.user:NAME`, which npm owner add reads: name and email.
    pub async fn user_document(&self, principal: Option<&Principal>, name: &str) -> Result<Value> {
        require_principal(principal)?;
        let user =
            self.accounts.user_by_name(name).await?.ok_or_else(|| {
                RegistryError::NotFound(format!("there is no user named `{name}`"))
            })?;
        Ok(
            json!({ "_id": format!("org.couchdb.user:{}", user.name), "name": user.name, "email": user.email, "type": "user", "roles": [] }),
        )
    }

    /// Admin: lets `user` publish new packages in `scope`.
    pub async fn assign_scope(&self, scope: &str, user: &User) -> Result<()> {
        let bare = scope.strip_prefix('@').unwrap_or(scope);
        airlock_npm::PackageName::parse(&format!("@{bare}/x"))?;
        self.packages
            .assign_scope(bare, user.id, self.now())
            .await?;
        Ok(())
    }
}
