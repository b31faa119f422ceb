//! The statement verbs of `poros-agent` (progress, takeback, update, replace, answer) and how
//! a document's timeline is printed; thin clients of the local API's statement routes.

use super::{esc, lang, utc, ApiClient};
use crate::api_types::{
    AnswerRequest, MetaPatch, ProgressRequest, RemindRequest, ReplaceQuery, StatementMade,
    TakebackRequest, TimelineEntry, UpdateRequest,
};
use anyhow::Result;
use clap::{Args, Subcommand};
use poros_i18n::t;
use poros_protocol::{AgencyId, Staff};
use std::path::PathBuf;

/// The staff member who acts.
#[derive(Args, Debug, Clone)]
pub(super) struct StaffArgs {
    /// Name of the staff member who acts.
    #[arg(long = "staff", required = true)]
    name: String,
    /// Their department or unit.
    #[arg(long, required = true)]
    department: String,
    /// Their e-mail address.
    #[arg(long)]
    email: Option<String>,
    /// Their telephone number.
    #[arg(long)]
    phone: Option<String>,
}

impl StaffArgs {
    fn staff(self) -> Staff {
        Staff {
            department: self.department,
            name: self.name,
            email: self.email,
            phone: self.phone,
        }
    }
}

/// The statement verbs.
#[derive(Subcommand, Debug)]
pub(super) enum StatementCmd {
    /// Report a business status on a received document.
    Progress {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// Document ID.
        id: String,
        /// registered|assigned|processing|completed|rejected|arrived, or 01..06.
        #[arg(long)]
        code: String,
        /// Free note.
        #[arg(long)]
        note: Option<String>,
        /// Why (required for rejected).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        staff: StaffArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask recipients of a sent document to withdraw it (take-back, 13).
    Takeback {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// Document ID.
        id: String,
        /// Recipients asked (default: every current recipient it was delivered to).
        #[arg(long, value_delimiter = ',')]
        to: Vec<AgencyId>,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Free note.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        staff: StaffArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Urge recipients of a sent document that have not completed it to act on it.
    Remind {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// Document ID.
        id: String,
        /// Recipients reminded (default: every current recipient it was delivered to that has
        /// not completed or rejected it).
        #[arg(long, value_delimiter = ',')]
        to: Vec<AgencyId>,
        /// What is expected, e.g. "reply due 15 December".
        #[arg(long)]
        note: String,
        #[command(flatten)]
        staff: StaffArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add or remove recipients of a sent document, or correct its metadata.
    Update {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// Document ID.
        id: String,
        /// Agencies to add.
        #[arg(long, value_delimiter = ',')]
        add: Vec<AgencyId>,
        /// Recipients to remove.
        #[arg(long, value_delimiter = ',')]
        remove: Vec<AgencyId>,
        /// Corrected subject.
        #[arg(long)]
        subject: Option<String>,
        /// Corrected number.
        #[arg(long)]
        number: Option<String>,
        /// Corrected type.
        #[arg(long = "type")]
        doc_type: Option<String>,
        /// Corrected priority (normal, urgent, flash).
        #[arg(long)]
        priority: Option<String>,
        /// Corrected due date.
        #[arg(long)]
        due: Option<String>,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Free note.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        staff: StaffArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a new document that replaces a sent one (the request goes once the hub accepted
    /// the new document).
    Replace {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// The document replaced.
        old_id: String,
        /// The new document's body.
        file: PathBuf,
        /// Its subject.
        #[arg(long)]
        subject: String,
        /// Its official number.
        #[arg(long)]
        number: Option<String>,
        /// Its type.
        #[arg(long = "type")]
        doc_type: Option<String>,
        /// Its priority.
        #[arg(long)]
        priority: Option<String>,
        /// Its due date.
        #[arg(long)]
        due: Option<String>,
        /// Its recipients (default: the old document's current recipients).
        #[arg(long, value_delimiter = ',')]
        to: Vec<AgencyId>,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Free note.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        staff: StaffArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Accept or refuse the pending change request on a received document (15/16).
    Answer {
        /// Agent directory.
        #[arg(long)]
        dir: PathBuf,
        /// Document ID.
        id: String,
        /// accept or refuse.
        #[arg(value_parser = ["accept", "refuse"])]
        decision: String,
        /// Why (required to refuse).
        #[arg(long)]
        reason: Option<String>,
        /// Free note.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        staff: StaffArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Print a document's timeline entries (statements, with their signature check).
pub(super) fn print_timeline(t: &[TimelineEntry], indent: &str) {
    for e in t {
        let st = e.statement.as_ref();
        let who = st
            .map(|st| {
                format!(
                    " {}",
                    t!(
                        lang(),
                        "agent-timeline-by",
                        name = esc(Some(&st.staff.name)),
                        department = esc(Some(&st.staff.department))
                    )
                )
            })
            .unwrap_or_default();
        let code = st
            .and_then(|st| st.code.as_deref())
            .map(|c| format!(" {}", esc(Some(c))))
            .unwrap_or_default();
        let sig = match st.map(|st| st.signature_verified) {
            Some(true) => format!("  {}", t!(lang(), "agent-signature-valid")),
            Some(false) => format!("  {}", t!(lang(), "agent-signature-invalid")),
            None => String::new(),
        };
        let hub = match st.map(|st| st.hub.as_str()) {
            Some("queued") => format!("  ({})", t!(lang(), "agent-timeline-queued")),
            Some("refused") => format!(
                "  ({})",
                t!(
                    lang(),
                    "agent-timeline-refused",
                    reason = esc(st
                        .and_then(|st| st.hub_reason.as_ref())
                        .map(|r| r.text.as_str()))
                )
            ),
            _ => String::new(),
        };
        println!(
            "{indent}{}{code}  {}{who}{sig}{hub}",
            esc(Some(&e.label)),
            utc(e.time_ms)
        );
    }
}

fn print_made(m: &StatementMade, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(m)?);
        return Ok(());
    }
    let to: Vec<String> = m.to.iter().map(|a| a.to_string()).collect();
    let kind = format!(
        "{}{}",
        m.kind,
        m.code
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default()
    );
    println!(
        "{}",
        t!(
            lang(),
            "agent-statement-made",
            kind = kind,
            doc = m.doc.to_string(),
            to = to.join(","),
            statement = &m.statement
        )
    );
    if let Some(s) = m.successor {
        println!(
            "{}",
            t!(lang(), "agent-statement-successor", id = s.to_string())
        );
    }
    Ok(())
}

pub(super) fn run_statement(cmd: StatementCmd) -> Result<()> {
    let (json, made) = match cmd {
        StatementCmd::Progress {
            dir,
            id,
            code,
            note,
            reason,
            staff,
            json,
        } => {
            let req = ProgressRequest {
                code,
                note,
                reason,
                staff: staff.staff(),
            };
            let c = ApiClient::new(&dir)?;
            let m = c.statement(&format!("/v1/documents/{id}/progress"), &req)?;
            (json, m)
        }
        StatementCmd::Takeback {
            dir,
            id,
            to,
            reason,
            note,
            staff,
            json,
        } => {
            let req = TakebackRequest {
                to: (!to.is_empty()).then_some(to),
                reason,
                note,
                staff: staff.staff(),
            };
            let c = ApiClient::new(&dir)?;
            let m = c.statement(&format!("/v1/documents/{id}/takeback"), &req)?;
            (json, m)
        }
        StatementCmd::Remind {
            dir,
            id,
            to,
            note,
            staff,
            json,
        } => {
            let req = RemindRequest {
                to: (!to.is_empty()).then_some(to),
                note,
                staff: staff.staff(),
            };
            let c = ApiClient::new(&dir)?;
            let m = c.statement(&format!("/v1/documents/{id}/remind"), &req)?;
            (json, m)
        }
        StatementCmd::Update {
            dir,
            id,
            add,
            remove,
            subject,
            number,
            doc_type,
            priority,
            due,
            reason,
            note,
            staff,
            json,
        } => {
            let priority = priority
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let req = UpdateRequest {
                add,
                remove,
                meta: MetaPatch {
                    subject,
                    number,
                    doc_type,
                    priority,
                    due,
                },
                reason,
                note,
                staff: staff.staff(),
            };
            let c = ApiClient::new(&dir)?;
            let m = c.statement(&format!("/v1/documents/{id}/update"), &req)?;
            (json, m)
        }
        StatementCmd::Answer {
            dir,
            id,
            decision,
            reason,
            note,
            staff,
            json,
        } => {
            let req = AnswerRequest {
                accept: decision == "accept",
                reason,
                note,
                staff: staff.staff(),
            };
            let c = ApiClient::new(&dir)?;
            let m = c.statement(&format!("/v1/documents/{id}/answer"), &req)?;
            (json, m)
        }
        StatementCmd::Replace {
            dir,
            old_id,
            file,
            subject,
            number,
            doc_type,
            priority,
            due,
            to,
            reason,
            note,
            staff,
            json,
        } => {
            let c = ApiClient::new(&dir)?;
            let staff = staff.staff();
            let to: Vec<String> = to.iter().map(|a| a.to_string()).collect();
            let q = ReplaceQuery {
                to: (!to.is_empty()).then(|| to.join(",")),
                subject,
                number,
                doc_type,
                priority,
                due,
                filename: super::file_name(&file),
                reason,
                note,
                staff_department: staff.department,
                staff_name: staff.name,
                staff_email: staff.email,
                staff_phone: staff.phone,
            };
            let len = std::fs::metadata(&file).map(|m| m.len()).ok();
            let bar = poros_transport::progress::Progress::bytes("send", len, json);
            let r = c.post_file(&format!("/v1/documents/{old_id}/replace"), &q, &file, &bar);
            bar.finish();
            let m = ApiClient::made(r?)?;
            (json, m)
        }
    };
    print_made(&made, json)
}
