//! One stream, one request: reads the opening frame within a deadline and hands it to its
//! handler (submit, paper report, statement, renewal, directory); anything else is refused
//! as malformed.

use crate::hub::Hub;
use anyhow::Result;
use poros_protocol::{AgencyId, DocumentId, Frame, Refusal, RefusalCode};
use poros_transport::loglimit::LogLimiter;
use poros_transport::warn_limited;
use poros_transport::{read_frame, write_frame};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

use super::submit::handle_submit;

/// Answer the stream with a refusal and finish it.
pub(super) async fn refuse(send: &mut quinn::SendStream, code: RefusalCode, message: String) {
    debug!(?code, %message, "refused");
    let _ = write_frame(send, &Frame::Refused(Refusal { code, message })).await;
    let _ = send.finish();
}

/// Read one stream's request and answer it. `current`: the connection speaks this protocol
/// version (else `poros/1`, answered in that version's forms).
pub(super) async fn handle_stream(
    hub: Arc<Hub>,
    agency: AgencyId,
    log: Arc<LogLimiter>,
    current: bool,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let frame = match tokio::time::timeout(Duration::from_secs(30), read_frame(&mut recv)).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            hub.metrics.refuse("malformed");
            warn_limited!(log, error = %e, "malformed frame");
            refuse(&mut send, RefusalCode::Malformed, e.to_string()).await;
            let _ = recv.stop(0u32.into());
            return;
        }
        Err(_) => {
            refuse(
                &mut send,
                RefusalCode::Malformed,
                "no frame within 30 s".into(),
            )
            .await;
            let _ = recv.stop(0u32.into());
            return;
        }
    };
    match frame {
        Frame::Submit { envelope } => {
            let submit =
                handle_submit(&hub, &agency, &log, current, &mut send, &mut recv, envelope);
            if let Err(e) = submit.await {
                warn_limited!(log, error = %e, "submission failed");
            }
        }
        Frame::PaperReport { report } => {
            let reply = match paper_report(&hub, &agency, report).await {
                Ok(()) => Frame::Ack {
                    doc_id: DocumentId::from_bytes([0; 16]),
                },
                Err(message) => {
                    warn!(reason = %message, "paper report refused");
                    Frame::Refused(Refusal {
                        code: RefusalCode::InvalidEnvelope,
                        message,
                    })
                }
            };
            let _ = write_frame(&mut send, &reply).await;
            let _ = send.finish();
        }
        Frame::Statement { statement } => {
            crate::statements::handle(&hub, &agency, &log, &mut send, statement).await
        }
        Frame::DirectoryRequest { after } => {
            let _ = recv.stop(0u32.into());
            let reply = super::directory::answer(&hub, &agency, after);
            let _ = write_frame(&mut send, &reply).await;
            let _ = send.finish();
        }
        Frame::Renew { tls_csr, sign_csr } => {
            let reply = match hub.renew(&agency, &tls_csr, &sign_csr).await {
                Ok(c) => Frame::Credentials(c),
                Err(e) => Frame::Refused(Refusal {
                    code: RefusalCode::NotAllowed,
                    message: format!("renewal refused: {e:#}"),
                }),
            };
            let _ = write_frame(&mut send, &reply).await;
            let _ = send.finish();
        }
        other => {
            hub.metrics.refuse("malformed");
            let name = format!("{other:?}");
            let name = name
                .split([' ', '(', '{'])
                .next()
                .unwrap_or("?")
                .to_string();
            refuse(
                &mut send,
                RefusalCode::Malformed,
                format!("unexpected frame {name} from a node (expected Submit)"),
            )
            .await;
        }
    }
}

/// Verify and store a monthly paper-count report from the connected agency.
async fn paper_report(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    report: poros_protocol::SignedPaperReport,
) -> Result<(), String> {
    hub.verify_agency(&report.0, poros_protocol::receipt::PAPER_CONTEXT, agency)
        .map_err(|e| format!("paper report {e}"))?;
    let r = report
        .report()
        .map_err(|e| format!("paper report does not decode: {e}"))?;
    if &r.agency != agency {
        return Err(format!(
            "paper report names {} but this connection is {agency}",
            r.agency
        ));
    }
    if !poros_protocol::PaperReport::month_is_valid(&r.month) {
        return Err(format!("month {:?} is not YYYY-MM", r.month));
    }
    let signed = postcard::to_allocvec(&report).map_err(|e| e.to_string())?;
    store_paper_count(hub, agency, &r.month, r.sent, r.received, signed).await
}

/// Store a verified paper count of the connected agency (a `PaperCount` statement, or the
/// `poros/1` report form), replacing an earlier count for the same month.
pub(crate) async fn store_paper(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    month: &str,
    sent: u64,
    received: u64,
    statement: &poros_protocol::SignedStatement,
) -> Result<(), String> {
    let signed = postcard::to_allocvec(statement).map_err(|e| e.to_string())?;
    store_paper_count(hub, agency, month, sent, received, signed).await
}

async fn store_paper_count(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    month: &str,
    sent: u64,
    received: u64,
    signed: Vec<u8>,
) -> Result<(), String> {
    hub.store
        .put_paper(
            agency.clone(),
            month.to_string(),
            crate::stats::PaperCount {
                sent,
                received,
                signed,
            },
        )
        .await
        .map_err(|e| hub.store_refusal(&e).1)?;
    info!(agency = %agency, month = %month, sent, received, "paper count stored");
    Ok(())
}
