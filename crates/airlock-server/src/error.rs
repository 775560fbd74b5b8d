//! Turning registry errors into npm-compatible responses: `{"error": "..."}` (npm prints
//! `body.error`), the right status, and `www-authenticate` where npm reacts to it.

use airlock_registry::{ExchangeRefusal, ProvenanceRefusal, RegistryError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::route::RouteError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    www_authenticate: Option<&'static str>,
    /// A web-OTP challenge's paths, made absolute by [`ApiError::with_base_url`].
    otp_challenge: Option<(String, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            www_authenticate: None,
            otp_challenge: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let (status, www_authenticate) = match &e {
            RegistryError::Unauthenticated | RegistryError::InvalidToken => {
                (StatusCode::UNAUTHORIZED, Some("Bearer realm=\"airlock\""))
            }
            RegistryError::BadCredentials => (StatusCode::UNAUTHORIZED, Some("Basic realm=\"airlock\"")),
            // npm turns `ipaddress` into EAUTHIP, "Login is not allowed from your IP address".
            RegistryError::IpNotAllowed(_) => (StatusCode::UNAUTHORIZED, Some("ipaddress")),
            RegistryError::ReadOnlyToken
            | RegistryError::Forbidden(_)
            | RegistryError::SignupDisabled
            // npmjs answers 403 to "cannot publish over", and npm's output expects it.
            | RegistryError::VersionExists(_) => (StatusCode::FORBIDDEN, None),
            RegistryError::NotFound(_) => (StatusCode::NOT_FOUND, None),
            // `www-authenticate: OTP` makes npm prompt for a code (or open authUrl) and retry.
            RegistryError::OtpRequired(challenge) => {
                let mut error = Self::new(StatusCode::UNAUTHORIZED, e.to_string());
                error.www_authenticate = Some("OTP");
                error.otp_challenge = Some((challenge.auth_path.clone(), challenge.done_path.clone()));
                return error;
            }
            // A wrong or replayed code is plain 401 so npm prints our message instead of its
            // generic OTP prompt text.
            RegistryError::OtpInvalid | RegistryError::OtpReplayed => (StatusCode::UNAUTHORIZED, None),
            RegistryError::SecondFactorNotEnabled => (StatusCode::FORBIDDEN, None),
            // A refusal by the release gate: the release's state or policy does not allow it.
            RegistryError::GateRefused(_) => (StatusCode::FORBIDDEN, None),
            RegistryError::Conflict(_) => (StatusCode::CONFLICT, None),
            RegistryError::ExchangeRefused(refusal) => (
                match refusal {
                    ExchangeRefusal::NoIdToken
                    | ExchangeRefusal::WrongIssuer { .. }
                    | ExchangeRefusal::IssuerRemoved(_)
                    | ExchangeRefusal::InvalidIdToken(_)
                    | ExchangeRefusal::NoTokenId
                    | ExchangeRefusal::Replayed => StatusCode::UNAUTHORIZED,
                    ExchangeRefusal::NotConfigured(_) => StatusCode::NOT_FOUND,
                    ExchangeRefusal::NotTrusted { .. } => StatusCode::FORBIDDEN,
                    // The issuer, not the caller, failed: like a gateway error.
                    ExchangeRefusal::IssuerUnavailable { .. } => StatusCode::BAD_GATEWAY,
                },
                None,
            ),
            RegistryError::ProvenanceRefused(refusal) => (
                match refusal.as_ref() {
                    // The bundle itself is wrong: a bad request.
                    ProvenanceRefusal::Invalid { .. } | ProvenanceRefusal::NotProvenance { .. } => {
                        StatusCode::BAD_REQUEST
                    }
                    // A valid bundle (or none) that this package's rules do not allow.
                    ProvenanceRefusal::NotTrustedPublisher { .. }
                    | ProvenanceRefusal::OtherCiRun { .. }
                    | ProvenanceRefusal::Required { .. }
                    | ProvenanceRefusal::Downgrade { .. }
                    | ProvenanceRefusal::IdentityChanged { .. } => StatusCode::FORBIDDEN,
                },
                None,
            ),
            RegistryError::BadRequest(_)
            | RegistryError::InvalidName(_)
            | RegistryError::InvalidVersion(_)
            | RegistryError::InvalidTag(_)
            | RegistryError::InvalidPublish(_)
            | RegistryError::InvalidWebhook(_)
            | RegistryError::InvalidTrust(_) => (StatusCode::BAD_REQUEST, None),
            RegistryError::Store(_)
            | RegistryError::Blob(_)
            | RegistryError::Keyring(_)
            | RegistryError::Signing(_) => {
                tracing::error!(error = &e as &dyn std::error::Error, "internal error");
                return Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error: the registry logged the details");
            }
        };
        Self {
            status,
            message: e.to_string(),
            www_authenticate,
            otp_challenge: None,
        }
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        let status = match e {
            RouteError::Unknown(_) => StatusCode::NOT_FOUND,
            RouteError::BadSegment(_) => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.to_string())
    }
}

impl ApiError {
    /// Makes a web-OTP challenge's URLs absolute (npm requires `http(s)` URLs there).
    #[must_use]
    pub fn with_base_url(mut self, base_url: &str) -> Self {
        if let Some((auth, done)) = self.otp_challenge.take() {
            self.otp_challenge = Some((format!("{base_url}{auth}"), format!("{base_url}{done}")));
        }
        self
    }
}

impl ApiError {
    /// The same error with its text under `message` (what npm logs for the OIDC exchange).
    pub fn into_message_response(self) -> Response {
        (self.status, axum::Json(json!({ "message": self.message }))).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some((auth_url, done_url)) = &self.otp_challenge {
            body["authUrl"] = json!(auth_url);
            body["doneUrl"] = json!(done_url);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(value) = self.www_authenticate {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        response
    }
}
