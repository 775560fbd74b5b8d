#![doc = include_str!("../README.md")]

mod config;
mod keys_cli;
mod policy_cli;
mod verify_bundle;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use airlock_registry::{
    CreateTokenRequest, HttpJwksFetcher, NewAccount, Registry, RegistryConfig, RegistryError,
    SystemClock, TrustedPublishing,
};
use airlock_server::ServerConfig;
use airlock_store::{SqliteStore, TarballBlobs, format_time};
use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand};

use crate::config::{
    DEFAULT_GATE_TICK_MS, DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES, FileConfig, OidcConfig,
    ProvenanceFileConfig, ServeConfig, normalise_public_url, parse_listen,
};

/// Airlock: an npm registry where no single stolen credential can ship a release.
#[derive(Parser)]
#[command(name = "airlock", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Directory holding the database and tarballs [default: ./airlock-data]
    #[arg(long, global = true, env = "AIRLOCK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML config file (keys: data_dir, listen, public_url, open_signup, read_requires_auth, max_body_bytes, gate_tick_ms, cache_bytes, tarball_cache_bytes)
    #[arg(long, global = true, env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry
    Serve {
        /// Address to listen on [default: 127.0.0.1:4873]
        #[arg(long, env = "AIRLOCK_LISTEN")]
        listen: Option<String>,
        /// URL clients use to reach the registry (used in tarball URLs) [default: from the request's Host]
        #[arg(long, env = "AIRLOCK_PUBLIC_URL")]
        public_url: Option<String>,
    },
    /// Manage user accounts
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage who may publish in a scope
    #[command(subcommand)]
    Scope(ScopeCommand),
    /// Show or change release policy (through the registry's API, with your token and a second factor)
    #[command(subcommand)]
    Policy(policy_cli::PolicyCommand),
    /// Rotate or list the registry's signing keys (`dist.signatures`, `npm audit signatures`)
    #[command(subcommand)]
    Keys(keys_cli::KeysCommand),
    /// Verify a Sigstore bundle offline (the sigstore-conformance CLI protocol)
    VerifyBundle(verify_bundle::VerifyBundleArgs),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input
    Add {
        name: String,
        #[arg(long)]
        email: String,
        /// Make the user an administrator
        #[arg(long)]
        admin: bool,
        /// Read the password from stdin (required: passwords never go on the command line)
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users
    List,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token for USER and print it (only the token, on stdout)
    Create {
        user: String,
        /// The token can read but not publish or change anything
        #[arg(long)]
        read_only: bool,
        /// A name to recognise the token by
        #[arg(long)]
        name: Option<String>,
    },
    /// List a user's tokens (never the secrets)
    List { user: String },
    /// Revoke a token by its id (or an unambiguous prefix of at least 6 characters)
    Revoke { id: String },
}

#[derive(Subcommand)]
enum ScopeCommand {
    /// Let USER publish new packages in @SCOPE (assigning it before anyone claims it by publishing)
    Assign { scope: String, user: String },
}

/// A refusal the user can act on (exit 1), as opposed to an unexpected failure (exit 2).
#[derive(Debug)]
struct UserError(anyhow::Error);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime\n  caused by: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (error, code) = match e.downcast::<UserError>() {
                Ok(UserError(inner)) => (inner, 1),
                Err(other) => (other, 2),
            };
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(code)
        }
    }
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for UserError {}

/// Registry refusals are the user's to fix; storage failures are not.
fn classify(e: RegistryError) -> anyhow::Error {
    match e {
        RegistryError::Store(_)
        | RegistryError::Blob(_)
        | RegistryError::Keyring(_)
        | RegistryError::Signing(_) => anyhow::Error::new(e),
        other => anyhow::Error::new(UserError(anyhow::Error::new(other))),
    }
}

fn user_error(message: String) -> anyhow::Error {
    anyhow::Error::new(UserError(anyhow!(message)))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let file = match &cli.global.config {
        Some(path) => FileConfig::load(path).map_err(|e| anyhow::Error::new(UserError(e)))?,
        None => FileConfig::default(),
    };
    let data_dir = cli
        .global
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("airlock-data"));
    match cli.command {
        Command::Serve { listen, public_url } => {
            let listen = listen
                .or_else(|| file.listen.clone())
                .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
            let public_url = public_url.or_else(|| file.public_url.clone());
            let config = ServeConfig {
                data_dir,
                listen: parse_listen(&listen).map_err(|e| anyhow::Error::new(UserError(e)))?,
                public_url: public_url
                    .as_deref()
                    .map(normalise_public_url)
                    .transpose()
                    .map_err(|e| anyhow::Error::new(UserError(e)))?,
                open_signup: file.open_signup.unwrap_or(false),
                read_requires_auth: file.read_requires_auth.unwrap_or(false),
                max_body_bytes: file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
                gate_tick: std::time::Duration::from_millis(
                    file.gate_tick_ms.unwrap_or(DEFAULT_GATE_TICK_MS),
                ),
                cache_bytes: file
                    .cache_bytes
                    .unwrap_or(airlock_registry::DEFAULT_CACHE_BYTES),
                tarball_cache_bytes: file
                    .tarball_cache_bytes
                    .unwrap_or(airlock_store::DEFAULT_BLOB_CACHE_BYTES),
                oidc: file
                    .oidc_config()
                    .map_err(|e| anyhow::Error::new(UserError(e)))?,
                provenance_roots: file
                    .provenance
                    .as_ref()
                    .map_or_else(
                        || ProvenanceFileConfig::default().load_roots(),
                        ProvenanceFileConfig::load_roots,
                    )
                    .map_err(|e| anyhow::Error::new(UserError(e)))?,
            };
            serve(config).await
        }
        Command::User(command) => {
            let registry = open(&data_dir, &file).await?;
            user_command(&registry, command).await
        }
        Command::Token(command) => {
            let registry = open(&data_dir, &file).await?;
            token_command(&registry, command).await
        }
        Command::VerifyBundle(args) => verify_bundle::run(args),
        Command::Keys(command) => keys_cli::run(&data_dir, command),
        Command::Policy(command) => policy_cli::run(command)
            .await
            .map_err(|e| anyhow::Error::new(UserError(e))),
        Command::Scope(ScopeCommand::Assign { scope, user }) => {
            let registry = open(&data_dir, &file).await?;
            let found = registry
                .user_by_name(&user)
                .await
                .map_err(classify)?
                .ok_or_else(|| user_error(format!("there is no user named `{user}`")))?;
            registry
                .assign_scope(&scope, &found)
                .await
                .map_err(classify)?;
            println!(
                "{user} may now publish in @{}",
                scope.trim_start_matches('@')
            );
            Ok(())
        }
    }
}

/// Opens the data directory: `airlock.db` (SQLite, WAL) and `tarballs/`.
async fn open_with(
    data_dir: &Path,
    registry_config: RegistryConfig,
    tarball_cache_bytes: usize,
    oidc: OidcConfig,
) -> anyhow::Result<Registry> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("could not create the data directory {}", data_dir.display()))?;
    let store = Arc::new(
        SqliteStore::open(&data_dir.join("airlock.db"))
            .await
            .with_context(|| format!("could not open the database in {}", data_dir.display()))?,
    );
    let blobs = TarballBlobs::local(&data_dir.join("tarballs"))
        .context("could not open the tarball directory")?
        .with_cache_bytes(tarball_cache_bytes);
    let fetcher = HttpJwksFetcher::new(oidc.fetch_timeout)
        .context("could not set up the HTTP client for OIDC key sets")?;
    let trusted = TrustedPublishing::new(store.clone(), oidc.settings, Arc::new(fetcher));
    Ok(Registry::new(
        store.clone(),
        store.clone(),
        store,
        blobs,
        registry_config,
        Arc::new(SystemClock),
    )
    .with_trusted_publishing(trusted))
}

async fn open(data_dir: &Path, file: &FileConfig) -> anyhow::Result<Registry> {
    let config = RegistryConfig {
        open_signup: file.open_signup.unwrap_or(false),
        read_requires_auth: file.read_requires_auth.unwrap_or(false),
        ..RegistryConfig::default()
    };
    let oidc = file
        .oidc_config()
        .map_err(|e| anyhow::Error::new(UserError(e)))?;
    // Admin commands read no tarballs.
    open_with(data_dir, config, 0, oidc).await
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let registry_config = RegistryConfig {
        open_signup: config.open_signup,
        read_requires_auth: config.read_requires_auth,
        cache_bytes: config.cache_bytes,
        ..RegistryConfig::default()
    };
    let registry = open_with(
        &config.data_dir,
        registry_config,
        config.tarball_cache_bytes,
        config.oidc.clone(),
    )
    .await?;
    let registry = registry.with_provenance_roots(config.provenance_roots);
    let registry = keys_cli::attach_signing_keys(registry, &config.data_dir).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| user_error(format!("could not listen on {}: {e}", config.listen)))?;
    let local = listener
        .local_addr()
        .context("could not read the bound address")?;
    spawn_gate_job(registry.clone(), config.gate_tick);
    keys_cli::spawn_signing_job(registry.clone(), config.gate_tick);
    spawn_webhook_worker(registry.clone(), config.gate_tick)?;
    let app = airlock_server::router(
        registry,
        ServerConfig {
            public_url: config.public_url.clone(),
            max_body_bytes: config.max_body_bytes,
        },
    );
    let shutdown = shutdown_signal()?;
    {
        // One line, always with the address actually bound (tests listen on port 0).
        let mut out = std::io::stdout().lock();
        let public = config
            .public_url
            .as_deref()
            .map(|u| format!(", public URL {u}"))
            .unwrap_or_default();
        writeln!(
            out,
            "airlock: serving http://{local}/ (data dir {}{public})",
            config.data_dir.display()
        )?;
        out.flush()?;
    }
    airlock_server::serve(listener, app, shutdown)
        .await
        .context("the server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Promotes releases whose cooling-off ended and expires old stages, without waiting for a
/// request. State lives in the database, so a restart picks up where it left off.
fn spawn_gate_job(registry: Registry, tick: std::time::Duration) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            match registry.run_due().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(stages = n, "release gate advanced stages"),
                Err(e) => tracing::error!(
                    error = &e as &dyn std::error::Error,
                    "release gate job failed"
                ),
            }
        }
    });
}

/// Delivers the webhook outbox (queued with each gate event) in the background, so no request
/// ever waits on a receiver. Undelivered notifications survive a restart in the database.
fn spawn_webhook_worker(registry: Registry, tick: std::time::Duration) -> anyhow::Result<()> {
    let client = airlock_registry::HttpWebhookClient::new()?;
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            match registry.deliver_webhooks(&client).await {
                Ok(round) if round.is_empty() => {}
                Ok(round) => tracing::info!(
                    delivered = round.delivered,
                    retrying = round.retrying,
                    gave_up = round.gave_up,
                    "webhooks sent"
                ),
                Err(e) => tracing::error!(
                    error = &e as &dyn std::error::Error,
                    "webhook delivery job failed"
                ),
            }
        }
    });
    Ok(())
}

/// Installs the SIGTERM and Ctrl-C handlers now (so a signal that arrives right after the
/// ready line is handled, not fatal) and resolves when either arrives.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("could not install the SIGTERM handler")?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("could not install the Ctrl-C handler")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutting down: finishing requests in flight");
    })
}

async fn user_command(registry: &Registry, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name,
            email,
            admin,
            password_stdin: _,
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("could not read the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']).to_owned();
            let user = registry
                .create_account(NewAccount {
                    name,
                    email,
                    password,
                    is_admin: admin,
                })
                .await
                .map_err(classify)?;
            println!(
                "created user {}{}",
                user.name,
                if user.is_admin { " (admin)" } else { "" }
            );
        }
        UserCommand::List => {
            for user in registry.list_users().await.map_err(classify)? {
                println!(
                    "{}\t{}\t{}{}",
                    user.name,
                    user.email,
                    format_time(user.created_at),
                    if user.is_admin { "\tadmin" } else { "" }
                );
            }
        }
    }
    Ok(())
}

async fn token_command(registry: &Registry, command: TokenCommand) -> anyhow::Result<()> {
    let find = |name: String| async move {
        registry
            .user_by_name(&name)
            .await
            .map_err(classify)?
            .ok_or_else(|| user_error(format!("there is no user named `{name}`")))
    };
    match command {
        TokenCommand::Create {
            user,
            read_only,
            name,
        } => {
            let user = find(user).await?;
            let request = CreateTokenRequest {
                readonly: Some(read_only),
                name: name.or(Some("airlock token create".into())),
                ..CreateTokenRequest::default()
            };
            let created = registry
                .issue_token(&user, &request)
                .await
                .map_err(classify)?;
            println!("{}", created.token.expose());
        }
        TokenCommand::List { user } => {
            let user = find(user).await?;
            for t in registry.tokens_of(&user).await.map_err(classify)? {
                println!(
                    "{}\t{}…\t{}\t{}\t{}",
                    t.key,
                    t.display,
                    if t.readonly {
                        "read-only"
                    } else {
                        "read-write"
                    },
                    format_time(t.created_at),
                    t.name.unwrap_or_default()
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let revoked = registry
                .revoke_token_by_prefix(&id)
                .await
                .map_err(classify)?;
            println!("revoked token {}", revoked.key);
        }
    }
    Ok(())
}
