//! The command line. Every flag can also be set with an `MSA_<FLAG>` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "msa",
    version,
    about = "A chat platform with user accounts and paid message credits: one server on day one, \
             microservices on Kafka and PostgreSQL when you grow.",
    after_help = "Run with no subcommand to start the single server on SQLite (same as `msa serve`)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, env = "MSA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// OTLP/HTTP collector to export traces to (e.g. http://localhost:4318; `/v1/traces` is
    /// added unless given). Empty or absent: no trace is exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,

    /// The `service.name` exported traces carry. Default: `msa-<service>` for `serve
    /// <service>`, `msa-gateway` for the gateway, `msa` otherwise.
    #[arg(long, env = "OTEL_SERVICE_NAME", global = true)]
    pub otel_service_name: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the single server: every context's API, projections and relays in one process.
    Serve(Box<ServeArgs>),
    /// Run the API gateway in front of the services of the microservice deployment.
    Gateway(GatewayArgs),
    /// Apply the database migrations of every context, then exit.
    Migrate(StorageArgs),
    /// Run only the outbox relays: publish each context's events to `<context>.events` on Kafka.
    /// One relay per context is active at a time; run several for fail-over.
    Relay(RelayArgs),
    /// List the projections (read models) or rebuild one from the events.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Inspect and re-drive the events consumers gave up on (the dead letters).
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Everything one request set off, across every context, in causal order: its events, their
    /// publishing by the relays and their handling by consumers, read from the stores (works
    /// with tracing off and for events of any age). Give a correlation id, an event id, a
    /// message id or a payment id.
    Trail(TrailArgs),
    /// Payment operations.
    #[command(subcommand)]
    Payments(PaymentsCommand),
    /// Account operations: the operator grants and takes away the admin role.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Measure the system; each benchmark reports a same-run baseline and the ratio to it.
    #[command(subcommand)]
    Bench(msa_bench::BenchCommand),
    /// Start a deployment of its own, put the chat load on it, inject faults (kills, PostgreSQL
    /// restarts, broker outages, partitions, a full disk, clock steps), then audit it from
    /// outside: every acknowledged send in history once and on every member's stream once,
    /// every spend posted or refunded, every wallet equal to its ledger, no dead letter. Exits
    /// non-zero on any loss, duplicate, stuck spend or mismatch.
    Chaos(ChaosArgs),
}

impl Default for Command {
    fn default() -> Self {
        Command::Serve(Box::new(ServeArgs::parse_from(["serve"])))
    }
}

/// Where the contexts keep their events and read models.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Directory for the SQLite files of the embedded default (created if missing).
    #[arg(long, env = "MSA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// PostgreSQL URL (postgres://user@host:port/db). When set, every context keeps its events
    /// and read models there, each in a schema of its own, instead of SQLite files.
    #[arg(long, env = "MSA_DATABASE_URL")]
    pub database_url: Option<String>,

    /// PostgreSQL connections each context may open (shared between its event store and query
    /// side); mind the server's max_connections across every process.
    #[arg(long, env = "MSA_DATABASE_POOL_SIZE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub database_pool_size: u32,

    /// File holding the master key (32 bytes, base64; make one with `openssl rand -base64 32`)
    /// that encrypts the stored keys: token signing keys and personal-data keys. Without it (or
    /// MSA_MASTER_KEY) one is generated into the data directory (`master.key`), with a warning.
    #[arg(long, env = "MSA_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,

    /// The master key itself (base64), for platforms that pass secrets as environment variables;
    /// prefer MSA_MASTER_KEY_FILE, and never put it on a command line.
    #[arg(long, env = "MSA_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
}

/// The event bus: in-process by default, Kafka when brokers are given.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,host:port). When set, each context's events leave
    /// through its outbox relay to `<context>.events`; without it the in-process bus is used.
    #[arg(long, env = "MSA_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Partitions of each topic created at start (topics that exist are left as they are).
    #[arg(long, env = "MSA_KAFKA_PARTITIONS", default_value_t = 8, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub kafka_partitions: i32,

    /// Extra librdkafka properties for every Kafka client, key=value, comma-separated
    /// (e.g. security.protocol=SASL_SSL,sasl.mechanism=PLAIN).
    #[arg(long, env = "MSA_KAFKA_CONFIG", value_delimiter = ',')]
    pub kafka_config: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceName {
    User,
    Chat,
    Payment,
    UserChat,
}

impl ServiceName {
    /// The context whose stores the service opens.
    pub fn context(self) -> &'static str {
        match self {
            ServiceName::User => "user",
            ServiceName::Chat => "chat",
            ServiceName::Payment => "payment",
            ServiceName::UserChat => "user-chat",
        }
    }
}

/// Where the other services answer (microservices).
#[derive(Debug, Clone, Args)]
pub struct ServiceUrls {
    /// The user service's base URL (its JWKS checks access tokens; user-chat reads profiles).
    #[arg(long = "user", env = "MSA_USER_URL")]
    pub user: Option<String>,

    /// The chat service's base URL.
    #[arg(long = "chat", env = "MSA_CHAT_URL")]
    pub chat: Option<String>,

    /// The payment service's base URL.
    #[arg(long = "payment", env = "MSA_PAYMENT_URL")]
    pub payment: Option<String>,

    /// The user-chat service's base URL: chat and payment take `/internal` calls only from it,
    /// checked with the keys it publishes there (`/.well-known/service-jwks.json`). Several
    /// user-chat instances: every instance's URL, comma-separated (each has its own key).
    #[arg(long = "user-chat", env = "MSA_USER_CHAT_URL")]
    pub user_chat: Option<String>,

    /// How long a call to another service may take before it counts as failed, e.g. 10s.
    #[arg(long, env = "MSA_UPSTREAM_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,
}

impl ServiceUrls {
    /// The URL of `service`, or the one clear line saying which setting is missing.
    pub fn require(&self, service: &str, needed_by: &str) -> anyhow::Result<String> {
        let (url, flag, env) = match service {
            "user" => (&self.user, "--user", "MSA_USER_URL"),
            "chat" => (&self.chat, "--chat", "MSA_CHAT_URL"),
            "user-chat" => (&self.user_chat, "--user-chat", "MSA_USER_CHAT_URL"),
            _ => (&self.payment, "--payment", "MSA_PAYMENT_URL"),
        };
        url.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "{env} ({flag}) is required by {needed_by}: the {service} service's base URL"
            )
        })
    }
}

/// The edge's rate limits (the gateway's; the single server's, which is its own edge).
#[derive(Debug, Clone, Parser)]
pub struct RateLimitArgs {
    /// Requests per second a client address may make (bursts of twice that).
    #[arg(long, env = "MSA_RATE_LIMIT_PER_ADDRESS", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_address: u32,

    /// Requests per second a signed-in user may make (bursts of twice that).
    #[arg(long, env = "MSA_RATE_LIMIT_PER_USER", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_user: u32,

    /// Sign-ups, log-ins and password changes a client address may make per minute (each hashes
    /// a password, which costs tens of milliseconds of a core).
    #[arg(long, env = "MSA_PASSWORD_ATTEMPTS_PER_MINUTE", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub password_attempts_per_minute: u32,

    /// Chat streams (WebSockets) a client address may hold open, counted from the upgrade.
    #[arg(long, env = "MSA_STREAMS_PER_ADDRESS", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub streams_per_address: u32,

    /// How long a connection may take to send a request's headers before it is closed (a
    /// client trickling them holds a connection for nothing), e.g. 10s.
    #[arg(long, env = "MSA_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
}

impl RateLimitArgs {
    pub fn settings(&self) -> msa_http::rate_limits::RateLimitSettings {
        let at_least_one =
            |n: u32| std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN);
        msa_http::rate_limits::RateLimitSettings {
            per_address: at_least_one(self.rate_limit_per_address),
            per_user: at_least_one(self.rate_limit_per_user),
            password_attempts_per_minute: at_least_one(self.password_attempts_per_minute),
            streams_per_address: self.streams_per_address as usize,
        }
    }

    /// How the edge's HTTP server treats connections.
    pub fn server(&self) -> msa_http::server::ServerSettings {
        msa_http::server::ServerSettings {
            header_read_timeout: self.header_read_timeout,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Parser)]
pub struct ServeArgs {
    /// Run one service (user, chat, payment, user-chat) for the microservice deployment, behind
    /// `msa gateway`. Without it: the single server, every context in one process.
    #[arg(value_enum, env = "MSA_SERVICE")]
    pub service: Option<ServiceName>,

    /// Address to listen on (use 0.0.0.0:8080 to accept other machines, port 0 for any free port).
    #[arg(long, env = "MSA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Address to serve Prometheus metrics (`/metrics`) on, apart from the API so clients
    /// cannot read them (e.g. 0.0.0.0:9464 for a scraper on the network). Without it: none.
    #[arg(long, env = "MSA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// The single server's rate limits (a service behind the gateway leaves them to it).
    #[command(flatten)]
    pub rate_limits: RateLimitArgs,

    #[command(flatten)]
    pub cors: CorsArgs,

    #[command(flatten)]
    pub services: ServiceUrls,

    #[command(flatten)]
    pub storage: StorageArgs,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub user: UserArgs,

    #[command(flatten)]
    pub payment: PaymentArgs,

    #[command(flatten)]
    pub user_chat: UserChatArgs,
}

/// Settings of user-chat.
#[derive(Debug, Clone, Args)]
pub struct UserChatArgs {
    /// How long after a message's credit was spent a send that has not finished (its post failed,
    /// was never made, or its answer was lost) is settled without the client, e.g. 60s: chat
    /// says whether its message exists; if not, the send is withdrawn (a later retry of the same
    /// txn_id is refused) and the credit given back. Settled within this plus a sixth of it (at
    /// most 10 s more), while chat and payment answer. Keep it longer than a send takes (two calls
    /// of at most MSA_UPSTREAM_TIMEOUT each).
    #[arg(long, env = "MSA_SEND_RECOVERY_AFTER", default_value = "60s", value_parser = humantime::parse_duration)]
    pub send_recovery_after: Duration,

    /// Sends (POST /v1/rooms/{id}/messages) this process works on at once. More wait up to
    /// MSA_SEND_QUEUE_WAIT for a place, then are refused (503 with Retry-After) instead of
    /// queuing until they time out. About the sends per second the deployment takes times the
    /// send latency you accept (`msa bench chat` shows both).
    #[arg(long, env = "MSA_SENDS_IN_FLIGHT", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sends_in_flight: u32,

    /// How long a send may wait for a place among MSA_SENDS_IN_FLIGHT before it is refused,
    /// e.g. 100ms.
    #[arg(long, env = "MSA_SEND_QUEUE_WAIT", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub send_queue_wait: Duration,
}

impl UserChatArgs {
    pub fn recovery(&self) -> msa_user_chat::application::send_recovery::RecoverySettings {
        msa_user_chat::application::send_recovery::RecoverySettings {
            after: self.send_recovery_after,
        }
    }

    pub fn admission(&self) -> msa_http::admission::AdmissionSettings {
        msa_http::admission::AdmissionSettings {
            in_flight: self.sends_in_flight as usize,
            wait: self.send_queue_wait,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    /// A stand-in whose outcome is chosen by the payment key's prefix (approve…, decline…, timeout…).
    Sandbox,
    /// Toss Payments (needs --toss-secret-key).
    Toss,
}

/// Settings of the payment context.
#[derive(Debug, Clone, Args)]
pub struct PaymentArgs {
    /// Credit packs on sale: id=credits:amount:currency, comma-separated (amount in minor units).
    #[arg(long, env = "MSA_PRODUCTS", default_value = msa_payment::domain::DEFAULT_CATALOG)]
    pub products: String,

    /// The payment provider, by name. `toss` for real payments. `sandbox` (no money: any
    /// `approve…` key approves) only when named, or when none is named and the server listens on
    /// a loopback address only (a trial on a laptop); with none named on any other address the
    /// server refuses to start.
    #[arg(long, env = "MSA_PAYMENT_PROVIDER", value_enum)]
    pub payment_provider: Option<ProviderKind>,

    /// Toss Payments secret key (test_sk_… or live_sk_…); prefer the environment variable.
    #[arg(long, env = "MSA_TOSS_SECRET_KEY", hide_env_values = true)]
    pub toss_secret_key: Option<String>,

    /// Toss Payments API server.
    #[arg(long, env = "MSA_TOSS_BASE_URL", default_value = msa_payment::adapters::toss::TOSS_BASE_URL)]
    pub toss_base_url: String,

    /// Toss Payments client key (test_ck_… or live_ck_…; public: the browser's SDK shows it to
    /// Toss). With --payment-provider toss the web client opens Toss's payment window with it,
    /// and its Content-Security-Policy admits Toss's hosts; without it the page cannot pay.
    #[arg(long, env = "MSA_TOSS_CLIENT_KEY")]
    pub toss_client_key: Option<String>,

    /// How long a call to the provider may take before its outcome counts as unknown, e.g. 10s.
    #[arg(long, env = "MSA_PROVIDER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub provider_timeout: Duration,

    /// Secret that signs the sandbox provider's webhook deliveries (HMAC-SHA256). Without it a
    /// random one is generated at start (never printed), so no delivery verifies. Prefer the
    /// environment variable or --sandbox-webhook-secret-file.
    #[arg(long, env = "MSA_SANDBOX_WEBHOOK_SECRET", hide_env_values = true)]
    pub sandbox_webhook_secret: Option<String>,

    /// A file holding the sandbox webhook secret (e.g. a mounted secret).
    #[arg(
        long,
        env = "MSA_SANDBOX_WEBHOOK_SECRET_FILE",
        conflicts_with = "sandbox_webhook_secret"
    )]
    pub sandbox_webhook_secret_file: Option<std::path::PathBuf>,

    /// Open payments (requested, or waiting for the provider's verdict) one user may have at
    /// once; more are refused with 429 until one is confirmed, canceled or expired.
    #[arg(long, env = "MSA_OPEN_PAYMENTS_PER_USER", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub open_payments_per_user: u32,

    /// How long after approval a buyer may ask for a refund (admins any time), e.g. 7days.
    #[arg(long, env = "MSA_REFUND_WINDOW", default_value = "7days", value_parser = humantime::parse_duration)]
    pub refund_window: Duration,

    /// A payment requested but never confirmed expires after this, e.g. 30m.
    #[arg(long, env = "MSA_PAYMENT_EXPIRY", default_value = "30m", value_parser = humantime::parse_duration)]
    pub payment_expiry: Duration,

    /// Free messages per user per UTC day, spent before purchased credits.
    #[arg(long, env = "MSA_FREE_MESSAGES_PER_DAY", default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub free_messages_per_day: u32,

    /// How often unknown payments are looked up, unconfirmed refunds retried and stale
    /// payments expired, e.g. 5s.
    #[arg(long, env = "MSA_PAYMENT_SWEEP_EVERY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub payment_sweep_every: Duration,
}

/// Settings of the user context.
#[derive(Debug, Clone, Args)]
pub struct UserArgs {
    /// Proxies whose X-Forwarded-For names the client (addresses or networks, comma-separated),
    /// for the login throttle per client address: the gateway's network in the microservice
    /// deployment, a reverse proxy's address. From any other peer the header is ignored.
    #[arg(long, env = "MSA_TRUSTED_PROXIES", default_value = msa_http::TrustedProxies::LOOPBACK)]
    pub trusted_proxies: String,

    /// argon2id memory cost in KiB (OWASP: 19456). Lower it only for tests.
    #[arg(long, env = "MSA_PASSWORD_HASH_MEMORY_KIB", default_value_t = 19_456, value_parser = clap::value_parser!(u32).range(8..=4_194_304))]
    pub password_hash_memory_kib: u32,

    /// argon2id iterations (OWASP: 2). Lower it only for tests.
    #[arg(long, env = "MSA_PASSWORD_HASH_ITERATIONS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub password_hash_iterations: u32,

    /// How long an access token is valid, e.g. 15m.
    #[arg(long, env = "MSA_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub access_token_ttl: Duration,

    /// How long a login lasts without use (a refresh token's lifetime), e.g. 30days.
    #[arg(long, env = "MSA_REFRESH_TOKEN_TTL", default_value = "30days", value_parser = humantime::parse_duration)]
    pub refresh_token_ttl: Duration,

    /// How long an erased account's nickname (and its look-alikes) stays held before someone
    /// else may register it, e.g. 30days: people who knew the erased user by it should not meet
    /// a stranger under it. Decided from the erasure's time on every sign-up or rename, so a
    /// change applies to names held already. 0s frees it at once.
    #[arg(long, env = "MSA_NICKNAME_HOLD", default_value = "30days", value_parser = humantime::parse_duration)]
    pub nickname_hold: Duration,

    /// Kakao app REST API key; set it to enable Kakao Login (/v1/auth/kakao/start).
    #[arg(long, env = "MSA_KAKAO_CLIENT_ID")]
    pub kakao_client_id: Option<String>,

    /// Kakao client secret, if the app has one enabled (prefer the environment variable).
    #[arg(long, env = "MSA_KAKAO_CLIENT_SECRET", hide_env_values = true)]
    pub kakao_client_secret: Option<String>,

    /// The callback URL registered with Kakao: this server's public /v1/auth/kakao/callback.
    #[arg(long, env = "MSA_KAKAO_REDIRECT_URI")]
    pub kakao_redirect_uri: Option<String>,

    /// Kakao's authorization server.
    #[arg(
        long,
        env = "MSA_KAKAO_AUTH_URL",
        default_value = "https://kauth.kakao.com"
    )]
    pub kakao_auth_url: String,

    /// Kakao's API server.
    #[arg(
        long,
        env = "MSA_KAKAO_API_URL",
        default_value = "https://kapi.kakao.com"
    )]
    pub kakao_api_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    #[command(flatten)]
    pub storage: StorageArgs,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Contexts to relay (repeat or comma-separate; default: all).
    #[arg(long = "context", env = "MSA_RELAY_CONTEXTS", value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(crate::contexts::event_sources()))]
    pub contexts: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// List the projections with their context, live generation and checkpoint.
    List(StorageArgs),
    /// Rebuild a projection from the start of its context's events into fresh tables, then swap
    /// them in at once; readers (and a running server) see the old rows until the swap.
    Rebuild(RebuildArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    /// The projection, e.g. user.directory (see `msa projections list`).
    pub name: String,

    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Address to listen on (port 0 for any free port).
    #[arg(long, env = "MSA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The user service's base URL; several, comma-separated, for several instances (taken in
    /// turn, each left out while its /readyz fails or it cannot be reached).
    #[arg(long = "user", env = "MSA_USER_URL")]
    pub user: String,

    /// The chat service's base URL; several, comma-separated, for several instances (taken in
    /// turn, each left out while its /readyz fails or it cannot be reached).
    #[arg(long = "chat", env = "MSA_CHAT_URL")]
    pub chat: String,

    /// The payment service's base URL; several, comma-separated, for several instances (taken in
    /// turn, each left out while its /readyz fails or it cannot be reached).
    #[arg(long = "payment", env = "MSA_PAYMENT_URL")]
    pub payment: String,

    /// The user-chat service's base URL; several, comma-separated, for several instances (taken in
    /// turn, each left out while its /readyz fails or it cannot be reached).
    #[arg(long = "user-chat", env = "MSA_USER_CHAT_URL")]
    pub user_chat: String,

    #[command(flatten)]
    pub rate_limits: RateLimitArgs,

    /// The largest request body passed on, in bytes (larger: 413).
    #[arg(long, env = "MSA_MAX_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_body_bytes: usize,

    /// How long a service may take to answer before the gateway answers 504, e.g. 10s.
    #[arg(long, env = "MSA_UPSTREAM_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,

    #[command(flatten)]
    pub cors: CorsArgs,

    /// Proxies in front of the gateway (a load balancer, an ingress) whose X-Forwarded-For names
    /// the client, for the limits per client address (addresses or networks, comma-separated).
    /// Empty: none, the gateway is the edge.
    #[arg(long, env = "MSA_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// Toss Payments client key (test_ck_… or live_ck_…), when the payment service takes
    /// payments through Toss: the web client served here opens Toss's payment window with it,
    /// and its Content-Security-Policy admits Toss's hosts. Empty or absent: neither.
    #[arg(long, env = "MSA_TOSS_CLIENT_KEY")]
    pub toss_client_key: Option<String>,

    /// Address to serve Prometheus metrics (`/metrics`) on, apart from the API (e.g.
    /// 0.0.0.0:9464 for a scraper on the network). Without it: none.
    #[arg(long, env = "MSA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// The API's CORS policy, the same in the gateway and in `msa serve`.
#[derive(Debug, Clone, Parser)]
pub struct CorsArgs {
    /// Origins browsers may call the API from, comma-separated (`*`: any).
    #[arg(
        long,
        env = "MSA_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Make the account registered with EMAIL an admin (recorded as a user.RoleGranted event).
    GrantAdmin(UserRoleArgs),
    /// Take the admin role away; the account's access tokens are void at once.
    RevokeAdmin(UserRoleArgs),
    /// Add a new token signing key and list the keys. Restart the user service's instances to
    /// sign with it; the JWKS serves every stored key, so earlier tokens keep verifying.
    RotateSigningKey(StorageArgs),
    /// Remove an older signing key (by kid) once the tokens it signed have expired (the access
    /// token lifetime after the rotation), then restart the user service's instances.
    RetireSigningKey(RetireKeyArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RetireKeyArgs {
    /// The key's id (`kid`), as `rotate-signing-key` lists it.
    pub kid: String,

    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Clone, Args)]
pub struct UserRoleArgs {
    /// The account's email address.
    pub email: String,

    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Subcommand)]
pub enum PaymentsCommand {
    /// Compare every approved payment with the provider's records; record a mismatch event for
    /// each difference and list them (exit status 1 when there is any).
    Reconcile(ReconcileArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub storage: StorageArgs,

    #[command(flatten)]
    pub payment: PaymentArgs,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters: which consumer gave up on which event, when and why.
    List(DlqListArgs),
    /// Hand a consumer's unsettled dead letters to its handler again, each at most once.
    Replay(DlqReplayArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TrailArgs {
    /// A correlation id, an event id, or the id of what the events name (a message, a payment,
    /// a room, a user).
    pub id: uuid::Uuid,

    #[command(flatten)]
    pub storage: StorageArgs,

    /// A context whose stores are in another PostgreSQL database than --database-url's (a
    /// database per service, as in docker-compose.yaml): `chat=postgres://…/msa_chat`. Repeat
    /// for each (in the variable: separated by spaces).
    #[arg(
        long = "context-database",
        value_name = "CONTEXT=URL",
        env = "MSA_TRAIL_CONTEXT_DATABASES",
        value_delimiter = ' '
    )]
    pub context_databases: Vec<String>,

    /// Print one JSON object per step instead of the table.
    #[arg(long, env = "MSA_TRAIL_JSON")]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DlqListArgs {
    #[command(flatten)]
    pub storage: StorageArgs,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Only the dead letters of this consumer (`<context>.<handler>`).
    #[arg(long, env = "MSA_DLQ_CONSUMER")]
    pub consumer: Option<String>,

    /// Also list letters already settled (handled by a replay).
    #[arg(long, env = "MSA_DLQ_ALL")]
    pub all: bool,

    /// Print one JSON object per letter instead of the table.
    #[arg(long, env = "MSA_DLQ_JSON")]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DlqReplayArgs {
    #[command(flatten)]
    pub storage: StorageArgs,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// The consumer whose dead letters to replay (`<context>.<handler>`).
    #[arg(long, env = "MSA_DLQ_CONSUMER")]
    pub consumer: String,
}

#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// Which deployment to start and break.
    #[arg(long, env = "MSA_CHAOS_DEPLOYMENT", value_enum, default_value_t = ChaosDeployment::Single)]
    pub deployment: ChaosDeployment,

    /// The kinds of fault to inject, comma-separated; each as often as the deployment has
    /// targets (a kill of each process, a partition of each service). Without it: every kind
    /// the deployment has and this machine can make (disk needs root for a tmpfs, clock needs
    /// Debian's faketime package); named kinds are required.
    #[arg(long, env = "MSA_CHAOS_FAULTS", value_enum, value_delimiter = ',')]
    pub faults: Vec<FaultKind>,

    /// How long to keep the load on, faults following each other in a shuffled order, e.g.
    /// 10m. Without it: each fault once, in order, then the audit.
    #[arg(long, env = "MSA_CHAOS_DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Pause between the end of one fault and the start of the next, e.g. 5s.
    #[arg(long, env = "MSA_CHAOS_FAULT_GAP", default_value = "5s", value_parser = humantime::parse_duration)]
    pub fault_gap: Duration,

    /// People sending (each signs up, buys credits with the sandbox provider, joins a room).
    #[arg(long, env = "MSA_CHAOS_USERS", default_value_t = 40, value_parser = clap::value_parser!(u32).range(2..=10_000))]
    pub users: u32,

    /// Members per room.
    #[arg(long, env = "MSA_CHAOS_ROOM_SIZE", default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub room_size: u32,

    /// Messages per second offered by all people together (each on a schedule, a failed send
    /// tried again with the same txn_id for up to 30 s).
    #[arg(long, env = "MSA_CHAOS_RATE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: u32,

    /// How long the audit waits after the load for the system to settle (refunds of sends left
    /// half-done, streams catching up) before it counts what is still wrong, e.g. 120s.
    #[arg(long, env = "MSA_CHAOS_SETTLE", default_value = "120s", value_parser = humantime::parse_duration)]
    pub settle: Duration,

    /// PostgreSQL's server programs (initdb, postgres, pg_ctl) for the microservices' own
    /// cluster. Default: the newest under /usr/lib/postgresql.
    #[arg(long, env = "MSA_CHAOS_POSTGRES_BIN")]
    pub postgres_bin: Option<PathBuf>,

    /// The tansu broker for the microservices. Default: `tansu` on the PATH or in ~/.cargo/bin.
    #[arg(long, env = "MSA_CHAOS_TANSU")]
    pub tansu: Option<PathBuf>,

    /// Keep the run's directory (every process's log) instead of removing it.
    #[arg(long, env = "MSA_CHAOS_KEEP")]
    pub keep: bool,

    /// Print the report as one JSON object instead of the table.
    #[arg(long, env = "MSA_CHAOS_JSON")]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChaosDeployment {
    /// `msa serve` on SQLite with the in-process bus.
    Single,
    /// PostgreSQL, a tansu broker, the four services and the gateway.
    Microservices,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FaultKind {
    /// SIGKILL of each process (the server; each service and the gateway), started again at once.
    Kill,
    /// PostgreSQL stopped as by a crash and started 5 s later (microservices).
    Postgres,
    /// The broker unreachable for 10 s (microservices).
    Broker,
    /// Each service's port blocked for 10 s (microservices).
    Partition,
    /// The SQLite directory's filesystem full for 10 s (single server).
    Disk,
    /// Every msa process's wall clock stepped 2 minutes ahead for 10 s, then back (libfaketime;
    /// PostgreSQL and the broker keep the machine's).
    Clock,
}

/// Toss's client key as given (`--toss-client-key`): `None` when absent or blank.
pub fn toss_key(key: Option<&str>) -> Option<&str> {
    key.map(str::trim).filter(|key| !key.is_empty())
}

/// The web client a process serves: with Toss's payment window when a Toss client key is given.
pub fn web_client(toss_client_key: Option<&str>) -> anyhow::Result<msa_web::WebClient> {
    match toss_key(toss_client_key) {
        Some(key) => msa_web::WebClient::with_toss(key)
            .map_err(|error| anyhow::anyhow!("MSA_TOSS_CLIENT_KEY (--toss-client-key): {error}")),
        None => Ok(msa_web::WebClient::new()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn every_flag_has_help_and_an_environment_variable() {
        fn check(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_positional() {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} --{id} has no help");
                let env = arg
                    .get_env()
                    .unwrap_or_else(|| panic!("{path} --{id} has no MSA_ variable"))
                    .to_string_lossy();
                // OpenTelemetry's own variables keep their standard names.
                assert!(
                    env.starts_with("MSA_") || env.starts_with("OTEL_"),
                    "{path} --{id}: {env}"
                );
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        Cli::command().debug_assert();
        check(&Cli::command(), "msa");
    }
}
