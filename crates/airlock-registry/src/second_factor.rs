//! Second factors: TOTP enrolment as `npm profile enable-2fa` drives it, recovery codes, OTP
//! challenges (`401` + `www-authenticate: OTP`, and npm's web-OTP variant) and their checks.

use std::time::Duration;

use airlock_gate::SecondFactor;
use airlock_store::{TfaRecord, User, WebOtpRedeem};
use airlock_trust::{TotpSecret, random_hex};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Registry;
use crate::auth::Principal;
use crate::error::{RegistryError, Result};

/// Issuer shown in authenticator apps.
const TOTP_ISSUER: &str = "Airlock";
/// Recovery codes handed out when 2FA is enabled.
const RECOVERY_CODES: usize = 10;
/// Prefix of the one-time tokens the web-OTP page hands to npm (sent back as `npm-otp`).
const WEB_OTP_TOKEN_PREFIX: &str = "airlock_otp_";
/// How long a web-OTP challenge stays answerable.
const WEB_OTP_TTL: Duration = Duration::from_secs(5 * 60);

/// A pending OTP challenge npm can answer in the browser: paths relative to the registry.
#[derive(Debug, Clone)]
pub struct OtpChallenge {
    pub auth_path: String,
    pub done_path: String,
}

/// Two-factor modes npm knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TfaMode {
    AuthOnly,
    AuthAndWrites,
}

impl TfaMode {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "auth-only" => Some(Self::AuthOnly),
            "auth-and-writes" => Some(Self::AuthAndWrites),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::AuthOnly => "auth-only",
            Self::AuthAndWrites => "auth-and-writes",
        }
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// `xxxx-xxxx-xxxx-xxxx`: 64 bits, easy to copy by hand.
fn recovery_code() -> String {
    let raw = random_hex(8);
    format!(
        "{}-{}-{}-{}",
        &raw[0..4],
        &raw[4..8],
        &raw[8..12],
        &raw[12..16]
    )
}

fn unix_secs(t: time::OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).unwrap_or(0)
}

impl Registry {
    async fn enabled_tfa(&self, user: &User) -> Result<Option<TfaRecord>> {
        Ok(self.accounts.tfa(user.id).await?.filter(|t| !t.pending))
    }

    /// The `tfa` field of the profile: `false`, or `{pending, mode}`.
    pub(crate) async fn tfa_profile(&self, user: &User) -> Result<Value> {
        Ok(match self.accounts.tfa(user.id).await? {
            None => json!(false),
            Some(t) => json!({ "pending": t.pending, "mode": t.mode }),
        })
    }

    /// A fresh challenge for `user`, answerable with `--otp` or in the browser.
    async fn challenge(&self, user: &User) -> Result<RegistryError> {
        let otp_id = random_hex(16);
        let done_secret = random_hex(32);
        let now = self.now();
        self.accounts
            .create_web_otp(
                &otp_id,
                &sha256_hex(&done_secret),
                user.id,
                now,
                now + WEB_OTP_TTL,
            )
            .await?;
        Ok(RegistryError::OtpRequired(OtpChallenge {
            auth_path: format!("-/web/otp/{otp_id}"),
            done_path: format!("-/v1/done?otpId={done_secret}"),
        }))
    }

    /// Checks the one-time password the caller sent (`npm-otp`): a TOTP code (each step once),
    /// a recovery code (each once) or a web-OTP token. Without one, answers with a challenge.
    pub(crate) async fn verify_second_factor(
        &self,
        user: &User,
        presented: Option<&str>,
    ) -> Result<SecondFactor> {
        let Some(tfa) = self.enabled_tfa(user).await? else {
            return Err(RegistryError::SecondFactorNotEnabled);
        };
        let Some(presented) = presented.map(str::trim).filter(|p| !p.is_empty()) else {
            return Err(self.challenge(user).await?);
        };
        if presented.starts_with(WEB_OTP_TOKEN_PREFIX) {
            return if self
                .accounts
                .consume_web_otp_token(user.id, &sha256_hex(presented), self.now())
                .await?
            {
                Ok(SecondFactor::WebOtp)
            } else {
                Err(RegistryError::OtpInvalid)
            };
        }
        if presented.len() == 19 && presented.matches('-').count() == 3 {
            return if self
                .accounts
                .consume_recovery_code(user.id, &sha256_hex(&presented.to_ascii_lowercase()))
                .await?
            {
                Ok(SecondFactor::RecoveryCode)
            } else {
                Err(RegistryError::OtpInvalid)
            };
        }
        let secret = TotpSecret::from_base32(&tfa.secret).ok_or_else(|| {
            RegistryError::Store(airlock_store::StoreError::Corrupt(format!(
                "TOTP secret of user {}",
                user.name
            )))
        })?;
        let step = secret
            .matching_step(presented, unix_secs(self.now()))
            .ok_or(RegistryError::OtpInvalid)?;
        if self.accounts.consume_totp_step(user.id, step).await? {
            Ok(SecondFactor::Totp)
        } else {
            Err(RegistryError::OtpReplayed)
        }
    }

    /// Writes need a second factor when the user chose `auth-and-writes`.
    pub(crate) async fn require_write_factor(
        &self,
        principal: &Principal,
    ) -> Result<Option<SecondFactor>> {
        match self.enabled_tfa(&principal.user).await? {
            Some(t) if TfaMode::parse(&t.mode) == Some(TfaMode::AuthAndWrites) => self
                .verify_second_factor(&principal.user, principal.otp.as_deref())
                .await
                .map(Some),
            _ => Ok(None),
        }
    }

    /// Logging in needs the second factor whenever one is enabled.
    pub(crate) async fn require_login_factor(&self, user: &User, otp: Option<&str>) -> Result<()> {
        if self.enabled_tfa(user).await?.is_some() {
            self.verify_second_factor(user, otp).await?;
        }
        Ok(())
    }

    /// Whether the user has a second factor enabled (the login page asks for a code then).
    pub async fn has_second_factor(&self, user_name: &str) -> Result<bool> {
        match self.accounts.user_by_name(user_name).await? {
            Some(user) => Ok(self.enabled_tfa(&user).await?.is_some()),
            None => Ok(false),
        }
    }

    /// The `tfa` part of `POST /-/npm/v1/user` (enable-2fa, disable-2fa, mode changes).
    pub(crate) async fn change_tfa(&self, principal: &Principal, tfa: &Value) -> Result<Value> {
        let user = &principal.user;
        // Step 6 of enable-2fa: the code from the authenticator, as a one-element array.
        if let Some(codes) = tfa.as_array() {
            let code = codes.first().and_then(Value::as_str).ok_or_else(|| {
                RegistryError::BadRequest("expected the one-time password as [\"123456\"]".into())
            })?;
            let pending = self
                .accounts
                .tfa(user.id)
                .await?
                .filter(|t| t.pending)
                .ok_or_else(|| {
                    RegistryError::BadRequest(
                        "no two-factor enrolment is pending: run `npm profile enable-2fa`".into(),
                    )
                })?;
            let secret = TotpSecret::from_base32(&pending.secret).ok_or_else(|| {
                RegistryError::Store(airlock_store::StoreError::Corrupt(
                    "pending TOTP secret".into(),
                ))
            })?;
            let step = secret
                .matching_step(code, unix_secs(self.now()))
                .ok_or(RegistryError::OtpInvalid)?;
            let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
            let hashes: Vec<String> = codes.iter().map(|c| sha256_hex(c)).collect();
            self.accounts.enable_tfa(user.id, &hashes, step).await?;
            tracing::info!(actor.name = %user.name, "two-factor authentication enabled");
            return Ok(json!({ "tfa": codes }));
        }
        let object = tfa.as_object().ok_or_else(|| {
            RegistryError::BadRequest("`tfa` must be an object or an array".into())
        })?;
        let password = object
            .get("password")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                RegistryError::BadRequest(
                    "your password is required to change two-factor authentication".into(),
                )
            })?;
        self.check_password(&user.name, password).await?;
        let mode = object
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let current = self.accounts.tfa(user.id).await?;
        if mode == "disable" {
            if current.as_ref().is_some_and(|t| !t.pending) {
                self.verify_second_factor(user, principal.otp.as_deref())
                    .await?;
            }
            self.accounts.disable_tfa(user.id).await?;
            tracing::info!(actor.name = %user.name, "two-factor authentication disabled");
            return Ok(json!({ "tfa": false }));
        }
        let mode = TfaMode::parse(mode).ok_or_else(|| {
            RegistryError::BadRequest(format!(
                "unknown two-factor mode `{mode}`: use auth-only, auth-and-writes or disable"
            ))
        })?;
        match current {
            Some(t) if !t.pending => {
                self.verify_second_factor(user, principal.otp.as_deref())
                    .await?;
                self.accounts.set_tfa_mode(user.id, mode.as_str()).await?;
                Ok(json!({ "tfa": { "pending": false, "mode": mode.as_str() } }))
            }
            _ => {
                let secret = TotpSecret::generate();
                self.accounts
                    .set_pending_tfa(user.id, &secret.to_base32(), mode.as_str(), self.now())
                    .await?;
                Ok(json!({ "tfa": secret.otpauth_uri(TOTP_ISSUER, &user.name) }))
            }
        }
    }

    /// The web-OTP page: whose challenge it is (or `NotFound` when expired or answered).
    pub async fn web_otp_page(&self, otp_id: &str) -> Result<()> {
        self.accounts
            .web_otp_user(otp_id, self.now())
            .await?
            .map(|_| ())
            .ok_or_else(|| RegistryError::NotFound("this one-time password request has expired or was answered: run the command again".into()))
    }

    /// The code typed into the web-OTP page.
    pub async fn answer_web_otp(&self, otp_id: &str, code: &str) -> Result<()> {
        let expired = || {
            RegistryError::NotFound(
                "this one-time password request has expired or was answered: run the command again"
                    .into(),
            )
        };
        let user_id = self
            .accounts
            .web_otp_user(otp_id, self.now())
            .await?
            .ok_or_else(expired)?;
        let user = self
            .accounts
            .user_by_id(user_id)
            .await?
            .ok_or_else(expired)?;
        if code.trim().starts_with(WEB_OTP_TOKEN_PREFIX) {
            return Err(RegistryError::OtpInvalid);
        }
        self.verify_second_factor(&user, Some(code)).await?;
        if self.accounts.verify_web_otp(otp_id, self.now()).await? {
            Ok(())
        } else {
            Err(expired())
        }
    }

    /// npm polling the web-OTP done URL: `None` while pending, then the one-time token.
    pub async fn poll_web_otp(&self, done_secret: &str) -> Result<Option<String>> {
        let token = format!("{WEB_OTP_TOKEN_PREFIX}{}", random_hex(24));
        match self
            .accounts
            .redeem_web_otp(&sha256_hex(done_secret), &sha256_hex(&token), self.now())
            .await?
        {
            WebOtpRedeem::Pending => Ok(None),
            WebOtpRedeem::Redeemed => Ok(Some(token)),
            WebOtpRedeem::Unknown => Err(RegistryError::NotFound(
                "this one-time password request has expired or was answered: run the command again"
                    .into(),
            )),
        }
    }
}
