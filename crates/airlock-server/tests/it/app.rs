use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_registry::{
    Clock, CreateTokenRequest, NewAccount, Registry, RegistryConfig, SigningKeys,
};
use airlock_server::ServerConfig;
use airlock_store::{KeyringFile, SqliteStore, TarballBlobs};
use airlock_testkit::PublishBody;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;
use tower::ServiceExt;

pub const BASE: &str = "http://registry.test/";

pub struct TestClock(Mutex<OffsetDateTime>);

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

pub struct TestApp {
    pub registry: Registry,
    router: axum::Router,
    clock: Arc<TestClock>,
    _dir: tempfile::TempDir,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no `error` in {}", self.json()))
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request under construction.
pub struct Req {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    peer: IpAddr,
}

impl Req {
    pub fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            peer: [127, 0, 0, 1].into(),
        }
    }
    pub fn get(path: &str) -> Self {
        Self::new(Method::GET, path)
    }
    pub fn token(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn json(mut self, value: &Value) -> Self {
        self.body = serde_json::to_vec(value).unwrap();
        self.header("content-type", "application/json")
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    pub fn with_peer(mut self, ip: IpAddr) -> Self {
        self.peer = ip;
        self
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_config(RegistryConfig::default()).await
    }

    pub async fn with_config(config: RegistryConfig) -> Self {
        Self::with_setup(config, |registry, _| registry).await
    }

    /// Like [`TestApp::with_config`], with `setup` adding to the registry before the router is
    /// built (provenance roots, trusted publishing over the same store).
    pub async fn with_setup(
        config: RegistryConfig,
        setup: impl FnOnce(Registry, Arc<SqliteStore>) -> Registry,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("airlock.db"))
                .await
                .unwrap(),
        );
        let blobs = TarballBlobs::local(&dir.path().join("tarballs")).unwrap();
        let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let clock = Arc::new(TestClock(Mutex::new(start)));
        // Signing keys in the data directory, as `airlock serve` keeps them.
        let keys = SigningKeys::open(KeyringFile::in_data_dir(dir.path()), start).unwrap();
        let registry = Registry::new(
            store.clone(),
            store.clone(),
            store.clone(),
            blobs,
            config,
            clock.clone(),
        )
        .with_signing_keys(keys);
        let registry = setup(registry, store);
        let router = airlock_server::router(
            registry.clone(),
            ServerConfig {
                public_url: Some(BASE.to_owned()),
                max_body_bytes: 10 * 1024 * 1024,
            },
        );
        Self {
            registry,
            router,
            clock,
            _dir: dir,
        }
    }

    /// The temp directory holding the database (`airlock.db`) and the tarballs
    /// (`tarballs/sha512/ab/cd/<hex>`).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// The registry's clock as Unix seconds.
    pub fn registry_now(&self) -> u64 {
        u64::try_from(self.clock.0.lock().unwrap().unix_timestamp()).unwrap()
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.clock.0.lock().unwrap();
        *now += by;
    }

    /// Creates a user and returns a read-write token for them.
    pub async fn user(&self, name: &str) -> String {
        self.user_with(name, CreateTokenRequest::default()).await
    }

    pub async fn user_with(&self, name: &str, request: CreateTokenRequest) -> String {
        let user = match self.registry.user_by_name(name).await.unwrap() {
            Some(user) => user,
            None => self
                .registry
                .create_account(NewAccount {
                    name: name.to_owned(),
                    email: format!("{name}@example.com"),
                    password: format!("{name}-password"),
                    is_admin: false,
                })
                .await
                .unwrap(),
        };
        self.registry
            .issue_token(&user, &request)
            .await
            .unwrap()
            .token
            .expose()
            .to_owned()
    }

    pub async fn send(&self, req: Req) -> Response {
        let mut builder = Request::builder()
            .method(req.method)
            .uri(&req.path)
            .header("host", "registry.test");
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let mut request = builder.body(Body::from(req.body)).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(req.peer, 50000)));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Response {
            status,
            headers,
            body,
        }
    }

    pub async fn publish(&self, token: &str, body: &PublishBody) -> Response {
        self.send(
            Req::new(Method::PUT, &body.path())
                .token(token)
                .json(&body.to_json(BASE)),
        )
        .await
    }

    /// Publishes and asserts success.
    pub async fn published(&self, token: &str, body: &PublishBody) {
        let r = self.publish(token, body).await;
        assert!(
            r.status.is_success(),
            "publish of {}@{} failed: {} {}",
            body.name,
            body.version,
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }

    pub async fn packument(&self, name: &str) -> Response {
        self.send(Req::get(&format!(
            "/{}",
            airlock_testkit::escaped_name(name)
        )))
        .await
    }
}
