//! Command line and environment configuration (clap, `#[arg(env)]`).
//!
//! Every value is validated while parsing, so a bad value stops start-up with
//! one clear line and a non-zero exit code instead of failing later.

use std::path::PathBuf;

use clap::{builder::BoolishValueParser, ArgAction, Args, Parser, Subcommand};
use secrecy::SecretString;

#[derive(Debug, Parser)]
#[command(
    name = "keyward",
    version,
    about = "Chat with Claude on a platform key or your own key"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app and the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Create an account (the first account on an empty database is an admin).
    CreateUser {
        #[arg(long)]
        email: String,
        /// Make the account an admin.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Re-encrypt every stored user key under the current master key.
    RotateKeys,
    /// Print a new random master key (base64, 32 bytes) for KEYWARD_MASTER_KEY.
    GenMasterKey,
    /// Disable an account: ends its sessions and refuses its logins.
    DisableUser {
        #[arg(long)]
        email: String,
    },
    /// Re-enable a disabled account.
    EnableUser {
        #[arg(long)]
        email: String,
    },
    /// Create a personal token for the /v1 gateway; prints only the token.
    IssueToken {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
    /// Fill the database with N synthetic ledger rows over the last year (for demos and benchmarks).
    SeedDemo {
        #[arg(long, default_value_t = 10_000)]
        rows: usize,
    },
    /// After a build: publish the site's assets (`LEPTOS_SITE_ROOT`'s pkg
    /// directory) under the build's own id, which browsers cache for good,
    /// with brotli and gzip copies; `make build` runs it.
    #[command(alias = "precompress")]
    PrepareAssets {
        /// Brotli's quality, 0–11 (11: smallest, slowest).
        #[arg(long, default_value_t = 11)]
        quality: u32,
    },
    /// Revoke a user's personal token by name.
    RevokeToken {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database: `sqlite:…` or `postgres://…`.
    #[arg(long, global = true, env = "DATABASE_URL", default_value = "sqlite:data/keyward.db?mode=rwc", value_parser = parse_database_url)]
    pub database_url: String,

    /// The operator's Anthropic key for the free tier (platform key).
    #[arg(long, global = true, env = "ANTHROPIC_API_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub anthropic_api_key: Option<SecretString>,

    /// Upstream Anthropic API.
    #[arg(long, global = true, env = "ANTHROPIC_BASE_URL", default_value = "https://api.anthropic.com", value_parser = parse_base_url)]
    pub anthropic_base_url: String,

    /// Key-encryption key, base64 of exactly 32 bytes. Checked at start-up
    /// (not here) so that a malformed key is never echoed in an error.
    #[arg(long, global = true, env = "KEYWARD_MASTER_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub master_key: Option<SecretString>,

    /// File holding the key-encryption key (base64, 32 bytes).
    #[arg(long, global = true, env = "KEYWARD_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,

    /// Older master keys, comma-separated; used only to decrypt until `rotate-keys`.
    #[arg(long, global = true, env = "KEYWARD_OLD_MASTER_KEYS", hide_env_values = true, value_parser = parse_secret)]
    pub old_master_keys: Option<SecretString>,

    /// Whether anyone may create an account.
    #[arg(long, global = true, env = "KEYWARD_ALLOW_SIGNUP", default_value = "true", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub allow_signup: bool,

    /// Mark cookies `Secure` (set this when served over TLS).
    #[arg(long, global = true, env = "KEYWARD_SECURE_COOKIES", default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub secure_cookies: bool,

    /// Say on every page that replies come from the bundled mock (set by `make run`).
    #[arg(long, global = true, env = "KEYWARD_DEMO_MODE", default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub demo_mode: bool,

    /// Reverse proxies whose `X-Forwarded-For` names the client (comma-separated
    /// IP addresses); login throttling and the audit log then see real clients.
    #[arg(
        long,
        global = true,
        env = "KEYWARD_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Largest accepted request body in bytes.
    #[arg(long, global = true, env = "KEYWARD_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// How long a client may take to send a request body, in seconds: a
    /// body trickled in slower is answered 408 and its connection freed.
    #[arg(
        long,
        global = true,
        env = "KEYWARD_BODY_READ_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub body_read_timeout_secs: u64,

    /// On SIGTERM, how long calls in flight may finish before they are cut
    /// (and recorded as `stopped` with what they used).
    #[arg(
        long,
        global = true,
        env = "KEYWARD_SHUTDOWN_GRACE_SECS",
        default_value_t = 20
    )]
    pub shutdown_grace_secs: u64,

    /// This instance's name on the reservations it takes (default: host
    /// name and listen address). A restart under the same name releases
    /// what a crashed predecessor left at once.
    #[arg(long, global = true, env = "KEYWARD_INSTANCE_ID")]
    pub instance_id: Option<String>,

    #[command(flatten)]
    pub free_plan: FreePlanOverrides,
}

/// Free plan values from the environment; `None` keeps what the database holds.
#[derive(Debug, Clone, Args, Default)]
pub struct FreePlanOverrides {
    #[arg(long, global = true, env = "KEYWARD_FREE_REQUESTS_PER_DAY")]
    pub requests_per_day: Option<u32>,
    #[arg(long, global = true, env = "KEYWARD_FREE_TOKENS_PER_DAY")]
    pub tokens_per_day: Option<u64>,
    #[arg(long, global = true, env = "KEYWARD_FREE_REQUESTS_PER_MINUTE")]
    pub requests_per_minute: Option<u32>,
    #[arg(long, global = true, env = "KEYWARD_FREE_MODELS")]
    pub models: Option<String>,
    #[arg(long, global = true, env = "KEYWARD_FREE_MAX_TOKENS")]
    pub max_tokens: Option<u32>,
}

fn parse_database_url(value: &str) -> Result<String, String> {
    let is_sqlite = value.starts_with("sqlite:");
    let is_postgres = value.starts_with("postgres://") || value.starts_with("postgresql://");
    if !is_sqlite && !is_postgres {
        return Err("expected `sqlite:PATH` or `postgres://USER@HOST/DB`".into());
    }
    if is_postgres {
        url::Url::parse(value).map_err(|e| format!("not a valid postgres URL ({e})"))?;
    }
    Ok(value.to_owned())
}

fn parse_base_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value).map_err(|e| format!("not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("expected an http:// or https:// URL".into());
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn parse_secret(value: &str) -> Result<SecretString, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("is empty".into());
    }
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_must_name_a_supported_backend() {
        assert!(parse_database_url("sqlite:data/x.db?mode=rwc").is_ok());
        assert!(parse_database_url("postgres://postgres@127.0.0.1:5432/test").is_ok());
        assert!(parse_database_url("mysql://x").is_err());
        assert!(parse_database_url("data/x.db").is_err());
    }

    #[test]
    fn base_url_loses_trailing_slash() {
        assert_eq!(
            parse_base_url("http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
        assert!(parse_base_url("ftp://x").is_err());
    }

    #[test]
    fn signup_flag_accepts_common_spellings() {
        let cli = Cli::try_parse_from(["keyward", "--allow-signup", "no"]).unwrap();
        assert!(!cli.config.allow_signup);
    }
}
