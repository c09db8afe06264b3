//! The `tag-server` binary: `serve` runs the HTTP server, `ask` answers one
//! question and `sql` runs one query, both in-process without a server, and
//! `token` manages access tokens.

use std::{io::Write, path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tag_server::{
    api,
    ask::{self, AskRequest, Event, Events},
    auth::{Auth, Limits, Principal, Role},
    execution::values::cell_text,
    query::{self, SqlFormat, SqlResult},
    Config, DatasetSources, Engine,
};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "tag-server", version, about = "Answers questions over tables with SQL, DuckDB and LLM operators")]
struct Cli {
    /// TOML configuration file (also TAG_CONFIG). Environment variables TAG_* override it.
    #[arg(long, global = true, env = "TAG_CONFIG")]
    config: Option<PathBuf>,
    /// Extra dataset: a folder of CSV/Parquet files, a DuckDB file or a SQLite file.
    /// Repeatable.
    #[arg(long = "dataset-path", global = true)]
    dataset_paths: Vec<PathBuf>,
    /// A dataset in a database, attached read-only: `[NAME=]postgres://...`,
    /// `mysql://...` or `sqlite:PATH`. Put secrets in the environment: `${VAR}` in the
    /// URL, or PGPASSWORD. Repeatable.
    #[arg(long = "dataset-url", global = true)]
    dataset_urls: Vec<String>,
    /// Do not load the datasets bundled with the project.
    #[arg(long, global = true)]
    no_bundled: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
        /// Address to listen on (overrides TAG_LISTEN).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Answer one question and print the answer, the SQL and the rows.
    Ask {
        question: String,
        #[arg(long)]
        dataset: String,
        /// Continue this conversation.
        #[arg(long)]
        conversation: Option<String>,
        /// Print the whole response as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download and verify the default embedded model into the model cache (what
    /// `serve` does on first use), then print its path.
    FetchModel,
    /// Download and verify DuckDB's extensions for database sources (postgres,
    /// mysql, sqlite) into the extension cache for offline use, then print their paths.
    FetchExtensions,
    /// Run one (extended) SQL query and print the result.
    Sql {
        sql: String,
        #[arg(long)]
        dataset: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Copy the state database (conversations, feedback, tokens, audit trail) to
    /// FILE, consistent even while the server runs. Restore: stop the server and put
    /// FILE in place of data_dir/state.sqlite3.
    Backup { file: PathBuf },
    /// Manage access tokens (kept in the state database under data_dir).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token and print its secret (shown this once; only its hash is kept).
    Create {
        /// Who it is for; conversations and feedback belong to this name.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t = RoleArg::Analyst)]
        role: RoleArg,
        /// Datasets it may use, comma-separated; default: all.
        #[arg(long, value_delimiter = ',')]
        datasets: Option<Vec<String>>,
        /// Expires after this long: `90d`, `12h`, `30m` or seconds.
        #[arg(long)]
        expires_in: Option<String>,
        #[arg(long)]
        requests_per_minute: Option<u32>,
        /// LLM tokens (prompt plus completion) per UTC day.
        #[arg(long)]
        tokens_per_day: Option<u64>,
        /// Estimated LLM calls above which a query asks for confirmation.
        #[arg(long)]
        confirm_calls: Option<u64>,
        /// Print the token as JSON (with its secret).
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke tokens by id or name; requests with them fail at once.
    Revoke { id_or_name: String },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    Analyst,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("TAG_LOG").unwrap_or_else(|_| EnvFilter::new("info,tower_http=info,llama-cpp-2=warn")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    if cli.no_bundled {
        config.bundled_datasets = false;
    }
    if let Command::FetchExtensions = cli.command {
        let dir = tag_server::catalog::extensions::cache_dir(config.extension_dir.as_deref(), &config.data_dir);
        for extension in tag_server::catalog::extensions::Extension::ALL {
            let path = tag_server::catalog::extensions::fetch(&dir, extension).await?;
            println!("{}", path.display());
        }
        return Ok(());
    }
    if let Command::FetchModel = cli.command {
        let dir = tag_server::llm::model_store::model_dir(config.llm.model_dir.as_deref(), &config.data_dir);
        let path = tag_server::llm::model_store::ensure_default(&dir, &config.llm.model_index_url, |_| {}).await?;
        println!("{}", path.display());
        return Ok(());
    }
    if let Command::Token { action } = cli.command {
        return token(&config, action);
    }
    if let Command::Backup { file } = &cli.command {
        tag_server::state::StateStore::open(&config.data_dir)?.backup_to(file).await?;
        eprintln!("backed up {} to {}", config.data_dir.join("state.sqlite3").display(), file.display());
        return Ok(());
    }
    if let Command::Serve { listen: Some(listen) } = &cli.command {
        config.listen = *listen;
    }
    let sources = DatasetSources { paths: cli.dataset_paths.clone(), urls: cli.dataset_urls.clone() };
    let engine = Arc::new(tokio::task::block_in_place(|| Engine::new(config, &sources))?);
    match cli.command {
        Command::Serve { .. } => serve(engine).await,
        Command::Ask { question, dataset, conversation, json } => {
            ask_once(engine, AskRequest { question, dataset, conversation_id: conversation, confirm: false, estimate_id: None }, json).await
        }
        Command::Sql { sql, dataset, format } => sql_once(engine, &sql, &dataset, format).await,
        Command::FetchModel | Command::FetchExtensions | Command::Token { .. } | Command::Backup { .. } => {
            unreachable!("handled before the engine starts")
        }
    }
}

async fn serve(engine: Arc<Engine>) -> anyhow::Result<()> {
    let listen = engine.config.listen;
    match &engine.llm {
        Some(llm) => {
            tracing::info!(backend = llm.backend(), model = llm.model(), "LLM configured");
            llm.prepare();
        }
        None => tracing::warn!(
            "no LLM (TAG_LLM_BACKEND=none): /v1/ask and LLM operators will answer 503; unset it for the embedded \
model, or set TAG_LLM_BASE_URL (an OpenAI-compatible endpoint ending in /v1), TAG_LLM_MODEL and, if needed, TAG_LLM_API_KEY"
        ),
    }
    engine.auth.check_listen(listen)?;
    engine.supervise_sources();
    if let Some(metrics_listen) = engine.config.auth.metrics_listen {
        let listener = tokio::net::TcpListener::bind(metrics_listen)
            .await
            .with_context(|| format!("cannot listen on {metrics_listen} (auth.metrics_listen)"))?;
        tracing::info!(address = %metrics_listen, "metrics listening");
        let app = api::metrics_app(engine.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    if let Some(pg_listen) = engine.config.pg.listen {
        tag_server::pg::serve(engine.clone(), pg_listen).await?;
    }
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    let auth = if engine.auth.required()? { "tokens required" } else { "open (no tokens)" };
    tracing::info!(%address, datasets = engine.catalog.len(), auth, "tag-server listening");
    // A line on stdout that scripts and tests can wait for.
    println!("listening on http://{address}");
    axum::serve(listener, api::app(engine)).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `tag-server token ...`: works on the state database directly, without a server.
fn token(config: &Config, action: TokenAction) -> anyhow::Result<()> {
    let auth = Auth::new(&config.auth, &config.data_dir)?;
    let store = auth.store();
    match action {
        TokenAction::Create { name, role, datasets, expires_in, requests_per_minute, tokens_per_day, confirm_calls, json } => {
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Analyst => Role::Analyst,
            };
            let expires_at = expires_in.as_deref().map(parse_duration).transpose()?.map(|secs| tag_server::auth::now() + secs);
            let limits = Limits { requests_per_minute, tokens_per_day, confirm_calls };
            let (info, secret) = store.create(&name, role, datasets, expires_at, limits)?;
            if json {
                let mut value = serde_json::to_value(&info)?;
                value["secret"] = serde_json::Value::String(secret);
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                eprintln!("created token {} for {} ({}); its secret, shown only now:", info.id, info.name, info.role.as_str());
                println!("{secret}");
            }
        }
        TokenAction::List { json } => {
            let tokens = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                println!("id | name | role | datasets | expires_at | revoked_at | origin");
                for t in tokens {
                    let datasets = t.datasets.map(|d| d.join(",")).unwrap_or_else(|| "all".into());
                    let at = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
                    println!(
                        "{} | {} | {} | {} | {} | {} | {}",
                        t.id,
                        t.name,
                        t.role.as_str(),
                        datasets,
                        at(t.expires_at),
                        at(t.revoked_at),
                        t.origin
                    );
                }
            }
        }
        TokenAction::Revoke { id_or_name } => match store.revoke(&id_or_name)? {
            0 => anyhow::bail!("no active token with id or name {id_or_name:?}"),
            n => eprintln!("revoked {n} token(s)"),
        },
    }
    Ok(())
}

/// `90d`, `12h`, `30m`, `45s` or plain seconds.
fn parse_duration(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: i64 = number.parse().with_context(|| format!("--expires-in {text:?}: give a number with d, h, m or s"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        other => anyhow::bail!("--expires-in {text:?}: unknown unit {other:?}; use d, h, m or s"),
    };
    anyhow::ensure!(secs > 0, "--expires-in must be positive");
    Ok(secs)
}

async fn ask_once(engine: Arc<Engine>, request: AskRequest, json: bool) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        let mut stdout = std::io::stdout();
        while let Some(event) = rx.recv().await {
            match event {
                Event::Sql { sql, .. } if !json => eprintln!("SQL:\n{sql}\n"),
                Event::Token { text } if !json => {
                    let _ = write!(stdout, "{text}");
                    let _ = stdout.flush();
                }
                _ => {}
            }
        }
    });
    let response = ask::ask(&engine, &Principal::console(), "cli", request, Events::to(tx)).await;
    let _ = printer.await;
    let response = response?;
    if json {
        println!("{}", serde_json::to_string_pretty(&response)?);
    } else {
        println!();
        eprintln!(
            "\n{} rows{}; conversation {}",
            response.row_count,
            if response.truncated { " (truncated)" } else { "" },
            response.conversation_id
        );
    }
    Ok(())
}

async fn sql_once(engine: Arc<Engine>, sql: &str, dataset: &str, format: Format) -> anyhow::Result<()> {
    let request = tag_types::SqlRequest { sql: sql.into(), dataset: dataset.into(), confirm: false, estimate_id: None };
    let max_rows = engine.config.query.max_rows;
    let outcome = query::sql(&engine, &Principal::console(), "cli", request, SqlFormat::Table, max_rows).await?;
    let (SqlResult::Table(table), stats) = (outcome.result, outcome.stats) else { anyhow::bail!("expected a table") };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "columns": table.columns, "rows": table.rows, "row_count": table.row_count,
                "truncated": table.truncated, "stats": stats,
            }))?
        ),
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(std::io::stdout());
            writer.write_record(table.columns.iter().map(|c| c.name.as_str()))?;
            for row in &table.rows {
                writer.write_record(row.iter().map(cell_text))?;
            }
            writer.flush()?;
        }
        Format::Table => {
            println!("{}", table.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(" | "));
            for row in &table.rows {
                println!("{}", row.iter().map(cell_text).collect::<Vec<_>>().join(" | "));
            }
            eprintln!("{} rows{}", table.row_count, if table.truncated { " (truncated)" } else { "" });
        }
    }
    Ok(())
}
