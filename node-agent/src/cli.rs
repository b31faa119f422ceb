//! `poros-agent` command line: init an agent directory, run the agent, and the everyday verbs
//! (send, inbox, fetch, status, receipts, quarantine) and the statement verbs (progress,
//! takeback, update, replace, answer), which talk to the running agent's local API.

use crate::agent::Agent;
use crate::api_types::{
    ApiError, DocumentCreated, DocumentStatus, PaperReportRequest, ReceiptItem, ReceivedDoc,
    ReceivedDocumentView, SendQuery, SentDocument, StatementMade,
};
use crate::paths::{self, AgentPaths};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use poros_i18n::{t, Lang};
use poros_protocol::AgencyId;
use poros_transport::progress::Progress;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use statements::{print_timeline, run_statement, StatementCmd};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod backup;
mod statements;

/// Poros node agent: signs, sends, verifies and receives official documents for one agency.
#[derive(Parser, Debug)]
#[command(name = "poros-agent", version)]
pub struct Cli {
    /// Show the full cause chain of errors.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Log format on stderr: `human` (one readable line per event) or `json` (one JSON object
    /// per line, the document and agency IDs as fields, for log shippers). Also applies to
    /// the processes this one starts, and to the final error line.
    #[arg(long, global = true, env = poros_transport::LOG_FORMAT_ENV, default_value_t, value_name = "human|json")]
    pub log_format: poros_transport::LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create an agent directory: keys (generated here, 0600) and certificate requests.
    Init {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// Agency code (DDD.DD.DD.XDD).
        #[arg(long)]
        agency: String,
        /// Hub QUIC address.
        #[arg(long, default_value = "127.0.0.1:7443")]
        hub: SocketAddr,
        /// Name in the hub's certificate.
        #[arg(long, default_value = "localhost")]
        hub_name: String,
    },
    /// Enrol with a one-time token from the hub administrator (`poros-hub node add`):
    /// generates keys here, obtains certificates, and leaves the directory ready to run.
    Enroll {
        /// Agent directory (created). The default is the Debian package's (docs/install.md):
        /// run as root, enroll gives the files it creates there to the directory's owner, the
        /// poros-agent user.
        #[arg(long, default_value = paths::PACKAGED_DIR)]
        dir: PathBuf,
        /// Write agent.toml here, and make DIR/agent.toml a symbolic link to it [default:
        /// /etc/poros-agent/agent.toml for the package's directory, else DIR/agent.toml].
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The enrolment token.
        #[arg(long)]
        token: String,
        /// Enrol through this hub instance's enrolment endpoint (HOST:PORT) instead of the
        /// one the token names: with several hub instances, any of them enrols.
        #[arg(long)]
        via: Option<SocketAddr>,
    },
    /// Run the agent (connects to the hub, serves the local API).
    Run {
        /// Agent directory (the default is the Debian package's; its systemd unit runs
        /// `poros-agent run --dir /var/lib/poros-agent` as the poros-agent user).
        #[arg(long, default_value = paths::PACKAGED_DIR)]
        dir: PathBuf,
    },
    /// Sign and send a file.
    Send {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// The document body.
        file: PathBuf,
        /// Recipient agency codes (comma-separated or repeated).
        #[arg(long, required = true, value_delimiter = ',')]
        to: Vec<String>,
        /// Subject.
        #[arg(long)]
        subject: String,
        /// Official number/notation, e.g. 123/QD-BTC.
        #[arg(long)]
        number: Option<String>,
        /// Document type.
        #[arg(long = "type")]
        doc_type: Option<String>,
        /// normal, urgent or flash.
        #[arg(long)]
        priority: Option<String>,
        /// Due date YYYY-MM-DD.
        #[arg(long)]
        due: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List received documents (all of them, fetched page by page, oldest first).
    Inbox {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// Print JSON (one array of every document listed).
        #[arg(long)]
        json: bool,
        /// Stop after this many documents.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// List quarantined (rejected) deliveries.
    Quarantine {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// Print JSON (one array).
        #[arg(long)]
        json: bool,
        /// Stop after this many documents.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Write a received document's body to a file (or stdout).
    Fetch {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// Document ID.
        id: String,
        /// Output file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Per-recipient status of sent documents (one, or all page by page, oldest first).
    Status {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// Document ID.
        id: Option<String>,
        /// Print JSON (one object for one document, else one array).
        #[arg(long)]
        json: bool,
        /// Without an ID: stop after this many documents.
        #[arg(long)]
        limit: Option<usize>,
    },
    #[command(flatten)]
    Statement(StatementCmd),
    /// The national platform's SDK protocol for the agency's document-management software.
    Vdxp {
        #[command(subcommand)]
        cmd: VdxpCmd,
    },
    /// Report figures to the hub.
    Report {
        #[command(subcommand)]
        what: ReportCmd,
    },
    /// Back up the agent directory into a new file, while the agent runs (or while it is
    /// stopped).
    ///
    /// The file holds a consistent snapshot of the store (every document sent and received,
    /// receipt, statement and event as they stood at one instant; the exchange goes on
    /// meanwhile), the body files it references, agent.toml, the certificates and the
    /// certificate requests. The private keys and the SDK secret only with --include-keys
    /// (the file must then be kept like the keys themselves). The file is mode 0600 and
    /// appears only when complete and durable. What a backup holds and what comes back after
    /// a restore: docs/backup.md.
    Backup {
        /// Agent directory.
        #[arg(long, default_value = paths::PACKAGED_DIR)]
        dir: PathBuf,
        /// The backup file to create (must not exist).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Also carry the private keys (keys/*.key) and the SDK secret (vdxp.secret).
        #[arg(long)]
        include_keys: bool,
        /// Print the report as JSON (and no progress bar).
        #[arg(long)]
        json: bool,
    },
    /// Restore an agent backup into a new agent directory, verified before it appears.
    ///
    /// The archive's version, its kind (an agent's, not a hub's) and every member are checked
    /// against its manifest, every body file against its SHA-256 and the store's rows against
    /// the snapshot's, before the directory appears; a failed restore leaves nothing.
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The agent directory to create (must not exist, or be empty).
        #[arg(long)]
        dir: PathBuf,
        /// Print the report as JSON (and no progress bar).
        #[arg(long)]
        json: bool,
    },
    /// Signed receipts and rejections received for sent documents (all, page by page).
    Receipts {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// Print JSON (one array).
        #[arg(long)]
        json: bool,
        /// Stop after this many receipts.
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(Subcommand, Debug)]
enum ReportCmd {
    /// This agency's official documents exchanged on paper only in a month (signed, sent
    /// through the hub; the electronic-exchange rate is measured against them).
    Paper {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// Month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// Documents sent on paper only.
        #[arg(long)]
        sent: u64,
        /// Documents received on paper only.
        #[arg(long)]
        received: u64,
    },
}

/// Entry point used by the `poros-agent` binary.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    let log_format = cli.log_format;
    // Read back by init_tracing, and inherited by the processes the demo starts.
    log_format.export();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if let Some(r) = e.downcast_ref::<RuleRefused>() {
                if log_format == poros_transport::LogFormat::Json {
                    let text = format!("{}: {}", r.code, r.text);
                    poros_transport::report_error(log_format, "poros-agent", &text);
                    return std::process::ExitCode::FAILURE;
                }
                // The agent's own rules refused it: the reason code first, for scripts.
                eprintln!(
                    "error: {}: {}",
                    r.code,
                    poros_protocol::text::escape_for_terminal(&r.text)
                );
                return std::process::ExitCode::FAILURE;
            }
            // An error may quote the agent's or the hub's answer: escaped like any network text.
            let text = if verbose {
                format!("{e:?}")
            } else {
                format!("{e:#}")
            };
            if log_format == poros_transport::LogFormat::Json {
                // JSON escapes whatever the text holds: nothing reaches a terminal raw.
                poros_transport::report_error(log_format, "poros-agent", &text);
                return std::process::ExitCode::FAILURE;
            }
            let text: String = text
                .lines()
                .map(|l| poros_protocol::text::escape_for_terminal(l).into_owned())
                .collect::<Vec<_>>()
                .join("\n");
            poros_transport::report_error(log_format, "poros-agent", &text);
            std::process::ExitCode::FAILURE
        }
    }
}

/// The language of this command line's human-readable output and error messages: the locale's
/// (`POROS_LANG`, else `LC_ALL`, `LC_MESSAGES`, `LANG`), English unless it is Vietnamese.
/// `--json` output and log lines are English whatever it is.
pub(crate) fn lang() -> Lang {
    static LANG: std::sync::OnceLock<Lang> = std::sync::OnceLock::new();
    *LANG.get_or_init(Lang::from_env)
}

/// A statement refused under the exchange rules by the agent (nothing was stored).
#[derive(Debug, thiserror::Error)]
#[error("{code}: {text}")]
pub struct RuleRefused {
    /// Reason code label.
    pub code: String,
    /// What was wrong.
    pub text: String,
}

/// Client for a running agent's local API.
pub struct ApiClient {
    base: String,
    http: reqwest::blocking::Client,
}

/// The name a sent file's body carries (its file name, when it is valid UTF-8).
pub(crate) fn file_name(file: &Path) -> Option<String> {
    file.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
}

impl ApiClient {
    /// Connect using `run/api.addr` of the agent directory.
    pub fn new(dir: &Path) -> Result<Self> {
        let p = AgentPaths::new(dir);
        p.load_config()?;
        let addr = std::fs::read_to_string(p.at("run/api.addr")).with_context(|| {
            t!(
                lang(),
                "agent-cli-not-running",
                dir = dir.display().to_string()
            )
        })?;
        // The agent answers errors in the language asked for: this command line's.
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT_LANGUAGE,
            reqwest::header::HeaderValue::from_static(lang().code()),
        );
        let http = reqwest::blocking::Client::builder()
            .timeout(None)
            .default_headers(headers)
            .build()?;
        Ok(ApiClient {
            base: format!("http://{}", addr.trim()),
            http,
        })
    }

    fn check(r: reqwest::blocking::Response) -> Result<reqwest::blocking::Response> {
        if r.status().is_success() {
            return Ok(r);
        }
        let status = r.status();
        let e = r.json::<ApiError>().map(|e| e.error);
        bail!(
            "{} ({status})",
            e.unwrap_or_else(|_| t!(lang(), "agent-cli-request-failed"))
        )
    }

    /// The answer to a statement verb; a refusal under the rules is a [`RuleRefused`].
    fn made(r: reqwest::blocking::Response) -> Result<StatementMade> {
        if r.status().is_success() {
            return r.json().context("reading the agent's answer");
        }
        let status = r.status();
        let e: ApiError = r.json().unwrap_or_else(|_| ApiError {
            code: String::new(),
            error: t!(lang(), "agent-cli-request-failed"),
            reason_code: None,
        });
        match e.reason_code {
            Some(code) => Err(RuleRefused {
                code,
                text: e.error,
            }
            .into()),
            None => bail!("{} ({status})", e.error),
        }
    }

    /// POST a statement verb's JSON request.
    pub fn statement<T: serde::Serialize>(&self, path: &str, req: &T) -> Result<StatementMade> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(req)
            .send()
            .with_context(|| t!(lang(), "agent-cli-contacting", url = &self.base))?;
        Self::made(r)
    }

    /// POST the file at `file` as the raw body, with `query` (how a document is sent); the
    /// answer unchecked, for the caller's own reading of refusals.
    pub(crate) fn post_file<Q: serde::Serialize>(
        &self,
        path: &str,
        query: &Q,
        file: &Path,
        progress: &Progress,
    ) -> Result<reqwest::blocking::Response> {
        let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        let len = f.metadata()?.len();
        self.http
            .post(format!("{}{path}", self.base))
            .query(query)
            .body(reqwest::blocking::Body::sized(progress.wrap_read(f), len))
            .send()
            .with_context(|| t!(lang(), "agent-cli-contacting", url = &self.base))
    }

    /// Whether the agent answers on its API (a killed agent leaves `run/api.addr` behind).
    pub(crate) fn answers(&self) -> bool {
        self.http
            .get(format!("{}/v1/health", self.base))
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .is_ok_and(|r| r.status().is_success())
    }

    /// GET a long response as a stream (a backup, a body), checked for an error answer.
    pub(crate) fn stream(&self, path: &str) -> Result<reqwest::blocking::Response> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .with_context(|| t!(lang(), "agent-cli-contacting", url = &self.base))?;
        Self::check(r)
    }

    /// GET JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .with_context(|| t!(lang(), "agent-cli-contacting", url = &self.base))?;
        Ok(Self::check(r)?.json()?)
    }

    /// Follows a listing page by page (each page's `Poros-Next-Cursor`), handing every item
    /// to `f`, until the last page or `max` items: memory stays one page whatever the total.
    pub fn each_item<T: DeserializeOwned>(
        &self,
        path: &str,
        max: Option<usize>,
        mut f: impl FnMut(&T) -> Result<()>,
    ) -> Result<()> {
        let mut left = max.unwrap_or(usize::MAX);
        let mut after: Option<String> = None;
        while left > 0 {
            let mut q = vec![("limit", left.min(crate::listing::MAX_PAGE).to_string())];
            if let Some(a) = after.take() {
                q.push(("after", a));
            }
            let r = self
                .http
                .get(format!("{}{path}", self.base))
                .query(&q)
                .send()
                .with_context(|| t!(lang(), "agent-cli-contacting", url = &self.base))?;
            let r = Self::check(r)?;
            let next = r
                .headers()
                .get(poros_protocol::page::NEXT_CURSOR_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let page: Vec<T> = r.json().context("reading a listing page")?;
            for v in page.iter().take(left) {
                f(v)?;
            }
            left = left.saturating_sub(page.len());
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        Ok(())
    }
}

/// Prints every item of a listing: with `json`, as one JSON array written item by item;
/// otherwise `header`, then `row` per item.
fn print_listing<T: DeserializeOwned + Serialize>(
    c: &ApiClient,
    path: &str,
    limit: Option<usize>,
    json: bool,
    header: impl FnOnce(),
    row: impl Fn(&T) -> Result<()>,
) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if !json {
        header();
        return c.each_item(path, limit, row);
    }
    let mut n = 0u64;
    c.each_item(path, limit, |v: &T| {
        out.write_all(if n == 0 { b"[\n" } else { b",\n" })?;
        serde_json::to_writer_pretty(&mut out, v)?;
        n += 1;
        Ok(())
    })?;
    out.write_all(if n == 0 { b"[]\n" } else { b"\n]\n" })?;
    Ok(())
}

/// A value for a terminal table: text that came from the network (subjects, reasons, names)
/// is escaped, so it can neither move the cursor nor forge lines; `-` for none.
fn esc(v: Option<&str>) -> String {
    v.map_or_else(
        || "-".into(),
        |s| poros_protocol::text::escape_for_terminal(s).into_owned(),
    )
}

/// A Unix time in ms as RFC 3339 UTC.
fn utc(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| ms.to_string()),
        None => "-".into(),
    }
}

/// Print one document's status: per recipient for a sent one, its own state for a received one.
pub fn print_status(d: &DocumentStatus) {
    match d {
        DocumentStatus::Sent(d) => print_sent(d),
        DocumentStatus::Received(d) => print_received(d),
    }
}

/// Print a received document's own state and timeline.
fn print_received(d: &ReceivedDocumentView) {
    let b = &d.business;
    println!(
        "{}  {}  {}",
        d.doc.id,
        esc(d.doc.number.as_deref()),
        esc(d.doc.subject.as_deref())
    );
    let mut line = t!(
        lang(),
        "agent-status-received",
        sender = esc(d.doc.sender.as_ref().map(AgencyId::as_str)),
        time = utc(Some(d.doc.received_ms)),
        business = esc(b.business.as_deref())
    );
    if b.withdrawn {
        line += &format!("; {}", t!(lang(), "agent-status-withdrawn"));
    }
    if let Some(p) = &b.pending_change {
        line += &format!(
            "; {}",
            t!(
                lang(),
                "agent-status-change-requested",
                change = esc(Some(&p.label))
            )
        );
    }
    println!("    {line}");
    print_timeline(&d.timeline, "      ");
}

/// Print a sent document per recipient (with each one's timeline in the status view).
fn print_sent(d: &SentDocument) {
    println!(
        "{}  {}  {}",
        d.id,
        esc(d.number.as_deref()),
        esc(d.subject.as_deref())
    );
    for r in &d.recipients {
        let state = esc(Some(&r.state));
        let time = utc(r.time_ms);
        let why = r.reason.as_deref().map(|w| esc(Some(w)));
        let l = lang();
        let reason = esc(r.reason.as_deref());
        let what = match state.as_str() {
            "pending" => match why {
                Some(why) => t!(l, "agent-recipient-pending-because", reason = why),
                None => t!(l, "agent-recipient-pending"),
            },
            "accepted" => match why {
                Some(why) => t!(l, "agent-recipient-delayed", time = &time, reason = why),
                None => t!(l, "agent-recipient-accepted", time = &time),
            },
            "delivered" => t!(l, "agent-recipient-delivered", time = &time),
            "rejected" => t!(l, "agent-recipient-rejected", time = &time, reason = reason),
            "expired" => t!(l, "agent-recipient-expired", time = &time),
            "lost" => t!(l, "agent-recipient-lost", time = &time, reason = reason),
            "refused" => t!(l, "agent-recipient-refused", reason = reason),
            other => other.to_string(),
        };
        let business = r
            .detail
            .as_ref()
            .and_then(|x| x.business.business.as_deref())
            .map(|b| format!("; {}", esc(Some(b))))
            .unwrap_or_default();
        println!("    {}  {}{business}", r.agency, what);
        if let Some(x) = &r.detail {
            print_timeline(&x.timeline, "      ");
        }
    }
}

/// `poros-agent vdxp ...`.
#[derive(Subcommand, Debug)]
enum VdxpCmd {
    /// Turn the SDK listener on in agent.toml, make its secret (0600) if there is none, and
    /// print what the DMS's configuration needs: endpoint, system id and secret.
    Enable {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// Address to listen on (default: as configured, else 127.0.0.1:8088).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Make a new secret, replacing the old one (the DMS must be given the new one).
        #[arg(long)]
        rotate_secret: bool,
    },
    /// Turn the SDK listener off (the secret is kept).
    Disable {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn run_vdxp(cmd: VdxpCmd) -> Result<()> {
    match cmd {
        VdxpCmd::Enable {
            dir,
            listen,
            rotate_secret,
        } => {
            let paths = AgentPaths::new(&dir);
            let mut cfg = paths.load_config()?;
            let mut v = cfg.vdxp.clone().unwrap_or_default();
            v.enabled = true;
            if let Some(l) = listen {
                v.listen = l;
            }
            let (secret, new) =
                crate::vdxp::secret::ensure(&paths.at(&v.secret_file), rotate_secret)?;
            crate::paths::hand_over(&paths, &paths.at(&v.secret_file))?;
            cfg.vdxp = Some(v.clone());
            // Checked as the agent will load it before it is written.
            poros_config::AgentConfig::from_toml(&cfg.to_toml(), &paths.config())?;
            poros_certs::write_public_file(&paths.config(), cfg.to_toml().as_bytes())?;
            let l = lang();
            let config = paths.config().display().to_string();
            println!("{}", t!(l, "agent-vdxp-enabled", config = config));
            println!("endpoint:  http://{}", v.listen);
            println!("systemid:  {}", cfg.agency);
            let file = paths.at(&v.secret_file).display().to_string();
            let whence = if new {
                t!(l, "agent-vdxp-secret-new", file = file)
            } else {
                t!(l, "agent-vdxp-secret-kept", file = file)
            };
            println!("secret:    {secret}   ({whence})");
            if !v.listen.ip().is_loopback() {
                println!("{}", t!(l, "agent-vdxp-plain-http"));
            }
            println!(
                "{}",
                t!(l, "agent-vdxp-restart", dir = dir.display().to_string())
            );
            Ok(())
        }
        VdxpCmd::Disable { dir } => {
            let paths = AgentPaths::new(&dir);
            let mut cfg = paths.load_config()?;
            if let Some(v) = cfg.vdxp.as_mut() {
                v.enabled = false;
            }
            poros_certs::write_public_file(&paths.config(), cfg.to_toml().as_bytes())?;
            println!(
                "{}",
                t!(
                    lang(),
                    "agent-vdxp-disabled",
                    config = paths.config().display().to_string()
                )
            );
            Ok(())
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Init {
            dir,
            agency,
            hub,
            hub_name,
        } => {
            let agency = AgencyId::parse(&agency)?;
            paths::init(&dir, &agency, hub, &hub_name)?;
            let (l, d) = (lang(), dir.display().to_string());
            let code = agency.to_string();
            println!("{}", t!(l, "agent-init-created", dir = &d, agency = &code));
            println!("{}", t!(l, "agent-init-keys", dir = &d));
            println!("{}", t!(l, "agent-init-next", dir = &d, agency = &code));
            Ok(())
        }
        Cmd::Run { dir } => run_agent(&dir),
        Cmd::Enroll {
            dir,
            config,
            token,
            via,
        } => {
            let config = config.or_else(|| paths::default_config(&dir));
            let agency = crate::enroll::enroll_with_config(&dir, config.as_deref(), &token, via)?;
            println!(
                "{}",
                t!(
                    lang(),
                    "agent-enrolled",
                    agency = agency.to_string(),
                    dir = dir.display().to_string()
                )
            );
            Ok(())
        }
        Cmd::Send {
            dir,
            file,
            to,
            subject,
            number,
            doc_type,
            priority,
            due,
            json,
        } => {
            let c = ApiClient::new(&dir)?;
            let q = SendQuery {
                to: to.join(","),
                subject,
                number,
                doc_type,
                priority,
                due,
                filename: file_name(&file),
            };
            let len = std::fs::metadata(&file).map(|m| m.len()).ok();
            let bar = Progress::bytes("send", len, json);
            let r = c.post_file("/v1/documents", &q, &file, &bar);
            bar.finish();
            let made: DocumentCreated = ApiClient::check(r?)?.json()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&made)?);
            } else {
                println!("{}", made.id);
            }
            Ok(())
        }
        Cmd::Backup {
            dir,
            to,
            include_keys,
            json,
        } => backup::backup(&dir, &to, include_keys, json),
        Cmd::Restore { from, dir, json } => backup::restore(&from, &dir, json),
        Cmd::Statement(cmd) => run_statement(cmd),
        Cmd::Vdxp { cmd } => run_vdxp(cmd),
        Cmd::Inbox { dir, json, limit } => list_received(&dir, json, limit, "/v1/inbox"),
        Cmd::Quarantine { dir, json, limit } => list_received(&dir, json, limit, "/v1/quarantine"),
        Cmd::Fetch { dir, id, out } => {
            let c = ApiClient::new(&dir)?;
            let mut r = ApiClient::check(
                c.http
                    .get(format!("{}/v1/inbox/{id}/body", c.base))
                    .send()
                    .with_context(|| t!(lang(), "agent-cli-contacting", url = &c.base))?,
            )?;
            let bar = Progress::bytes("fetch", r.content_length(), false);
            let copied = match &out {
                Some(p) => {
                    let f = std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()));
                    f.and_then(|f| {
                        let synced = f.try_clone()?;
                        let n = r.copy_to(&mut bar.wrap_write(f))?;
                        synced.sync_all()?;
                        Ok(n)
                    })
                }
                None => r
                    .copy_to(&mut bar.wrap_write(std::io::stdout().lock()))
                    .map_err(anyhow::Error::from),
            };
            bar.finish();
            let n = copied?;
            if let Some(p) = out {
                eprintln!(
                    "{}",
                    t!(
                        lang(),
                        "agent-fetch-wrote",
                        bytes = n.to_string(),
                        file = p.display().to_string()
                    )
                );
            }
            Ok(())
        }
        Cmd::Status {
            dir,
            id,
            json,
            limit,
        } => {
            let c = ApiClient::new(&dir)?;
            // With `--json`, the agent's answer as it came; otherwise read as its type.
            match &id {
                Some(id) => {
                    let v = c.get::<Value>(&format!("/v1/documents/{id}"))?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&v)?);
                    } else {
                        print_status(&serde_json::from_value(v).context("reading the status")?);
                    }
                    Ok(())
                }
                None => print_listing(
                    &c,
                    "/v1/documents",
                    limit,
                    json,
                    || {},
                    |v: &Value| {
                        print_sent(
                            &serde_json::from_value(v.clone()).context("reading a document")?,
                        );
                        Ok(())
                    },
                ),
            }
        }
        Cmd::Report {
            what:
                ReportCmd::Paper {
                    dir,
                    month,
                    sent,
                    received,
                },
        } => {
            let c = ApiClient::new(&dir)?;
            let r = c
                .http
                .post(format!("{}/v1/reports/paper", c.base))
                .json(&PaperReportRequest {
                    month: month.clone(),
                    sent,
                    received,
                })
                .send()
                .with_context(|| t!(lang(), "agent-cli-contacting", url = &c.base))?;
            ApiClient::check(r)?;
            println!(
                "{}",
                t!(
                    lang(),
                    "agent-paper-accepted",
                    month = &month,
                    sent = sent.to_string(),
                    received = received.to_string()
                )
            );
            Ok(())
        }
        Cmd::Receipts { dir, json, limit } => {
            let c = ApiClient::new(&dir)?;
            print_listing(
                &c,
                "/v1/receipts",
                limit,
                json,
                || {
                    let l = lang();
                    println!(
                        "{:<36}  {:<13}  {:<9}  {:<20}  {}",
                        t!(l, "agent-col-document"),
                        t!(l, "agent-col-recipient"),
                        t!(l, "agent-col-outcome"),
                        t!(l, "agent-col-signed-at"),
                        t!(l, "agent-col-signature")
                    )
                },
                |r: &ReceiptItem| {
                    println!(
                        "{:<36}  {:<13}  {:<9}  {:<20}  {}{}",
                        r.id.to_string(),
                        r.recipient.to_string(),
                        esc(Some(&r.outcome)),
                        utc(Some(r.time_ms)),
                        if r.signature_verified {
                            t!(lang(), "agent-signature-ok")
                        } else {
                            t!(lang(), "agent-signature-bad")
                        },
                        r.reason
                            .as_deref()
                            .map(|why| format!("  ({})", esc(Some(why))))
                            .unwrap_or_default()
                    );
                    Ok(())
                },
            )
        }
    }
}

fn list_received(dir: &Path, json: bool, limit: Option<usize>, path: &str) -> Result<()> {
    let c = ApiClient::new(dir)?;
    print_listing(
        &c,
        path,
        limit,
        json,
        || {
            let l = lang();
            println!(
                "{:<36}  {:<13}  {:>9}  {}",
                t!(l, "agent-col-document"),
                t!(l, "agent-col-sender"),
                t!(l, "agent-col-bytes"),
                t!(l, "agent-col-subject")
            )
        },
        |d: &ReceivedDoc| {
            println!(
                "{:<36}  {:<13}  {:>9}  {}{}",
                d.id.to_string(),
                d.sender.as_ref().map_or("-".into(), |a| a.to_string()),
                d.body_len,
                esc(d.subject.as_deref()),
                d.reason
                    .as_deref()
                    .map(|why| format!("  [{}]", esc(Some(why))))
                    .unwrap_or_default()
            );
            Ok(())
        },
    )
}

fn run_agent(dir: &Path) -> Result<()> {
    crate::init_tracing();
    let paths = AgentPaths::new(dir);
    let cfg = paths.load_config()?;
    // Opened before the runtime starts: store setup uses blocking commits.
    let agent = Agent::open(&paths, cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(agent.cfg.api_listen)
            .await
            .with_context(|| format!("binding the local API on {}", agent.cfg.api_listen))?;
        let addr = listener.local_addr()?;
        std::fs::create_dir_all(paths.at("run"))?;
        // Before run/api.addr appears: whoever waits for it finds the SDK listener up too.
        crate::vdxp::start(agent.clone(), &paths).await?;
        let tmp = paths.at("run/api.addr.tmp");
        std::fs::write(&tmp, addr.to_string())?;
        std::fs::rename(&tmp, paths.at("run/api.addr"))?;
        tracing::info!(agency = %agent.agency(), api = %addr, hub = %agent.cfg.hub, "agent running");
        agent.start();
        let app = crate::api::router(agent.clone());
        axum::serve(listener, app)
            .with_graceful_shutdown(poros_transport::shutdown_signal())
            .await?;
        agent.close().await;
        let _ = std::fs::remove_file(paths.at("run/api.addr"));
        let _ = std::fs::remove_file(paths.at("run/vdxp.addr"));
        Ok(())
    })
}
