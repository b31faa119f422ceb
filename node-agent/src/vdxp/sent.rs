//! `getSentEdocList`: a sent document's state at each recipient — how its delivery ended
//! (`sendStatus`) and the last business status the recipient signed (`receiveStatus`);
//! `getAgenciesList`: the hub's agency directory.

use super::map;
use super::{ok, Answer, Facade, Refusal};
use crate::state::RecipientStatus;
use crate::vdxp::auth::SdkHeaders;
use poros_protocol::{DocumentId, Party, StatementKind};
use serde_json::{json, Map};
use std::time::Duration;

fn send_desc(st: &RecipientStatus, accepted: bool) -> &'static str {
    match st {
        RecipientStatus::Pending if accepted => "accepted by the hub, not yet delivered",
        RecipientStatus::Pending => "waiting to be accepted by the hub",
        s if s.is_delivered() => "delivered: the recipient signed its receipt",
        RecipientStatus::Rejected(_) | RecipientStatus::RejectedStatement(_) => {
            "rejected by the recipient's agent"
        }
        RecipientStatus::Expired(_) | RecipientStatus::ExpiredStatement(_) => {
            "expired: not delivered in time"
        }
        _ => "lost: the body could not be delivered",
    }
}

pub(super) fn sent_list(f: &Facade, h: &SdkHeaders) -> Answer {
    let a = &f.agent;
    let id = h
        .get("docId")
        .ok_or_else(|| Refusal::Param("missing header XroadVnpt-docId".into()))?
        .trim();
    let doc = match id.parse::<DocumentId>() {
        Ok(d) => Some(d),
        Err(_) => a.store.by_dms_id(a.agency().as_str(), id)?,
    };
    let out = match doc {
        Some(d) => a.store.outgoing(&d)?.map(|o| (d, o)),
        None => None,
    };
    let Some((doc, out)) = out else {
        return Err(Refusal::NotFound(format!(
            "no document {id:?} was sent by this agency"
        )));
    };
    let env = out
        .envelope
        .envelope()
        .map_err(|e| Refusal::Unavailable(format!("stored envelope does not decode: {e}")))?;
    let statements = a.store.statements_of(&doc)?;
    let mut data = Vec::new();
    for (to, st) in a.store.statuses(&doc)? {
        // The last business status (or answer) this recipient signed about the document.
        let last = statements
            .iter()
            .rev()
            .filter_map(|s| s.statement().ok())
            .find(|s| {
                s.from == Party::Agency(to.clone())
                    && matches!(
                        s.kind,
                        StatementKind::Status { .. } | StatementKind::Answer { .. }
                    )
            });
        let received = st
            .is_delivered()
            .then(|| {
                st.statement()
                    .map(|s| map::edxml_time(s.time_ms, f.offset_secs))
            })
            .flatten();
        data.push(json!({
            "senderDocId": env.ext.dms_id.clone().unwrap_or_else(|| doc.to_string()),
            "receiverDocId": doc.to_string(),
            "fromCode": env.sender.to_string(),
            "toCode": to.to_string(),
            "title": env.meta.subject,
            "notation": env.meta.number.clone().unwrap_or_default(),
            "messageType": "edoc",
            "serviceType": "eDoc",
            "sentTime": map::edxml_time(env.created_ms, f.offset_secs),
            "receivedTime": received.unwrap_or_default(),
            // Refused by the hub for good (an unknown recipient, say): said for every
            // recipient, with the hub's reason.
            "sendStatus": if out.refused.is_some() { "refused" } else { st.state() },
            "sendStatusDesc": match &out.refused {
                Some(why) => format!("refused by the hub: {why}"),
                None => send_desc(&st, out.is_accepted()).to_string(),
            },
            "receiveStatus": last.as_ref().and_then(|s| s.kind.code()).unwrap_or(""),
            "receiveStatusDesc": last.as_ref().map(|s| s.kind.label()).unwrap_or(""),
        }));
    }
    let mut m = Map::new();
    m.insert("data".into(), data.into());
    Ok(ok(m))
}

pub(super) async fn agencies(f: &Facade) -> Answer {
    let dir = f
        .agent
        .directory(Duration::from_secs(60))
        .await
        .map_err(|e| Refusal::Unavailable(format!("the hub's agency directory: {e}")))?;
    let data: Vec<_> = dir
        .entries
        .iter()
        .map(|e| {
            json!({
                "id": e.code.to_string(),
                "pid": e.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                "code": e.code.to_string(),
                "name": e.name,
                "mail": e.email.clone().unwrap_or_default(),
                "oldCode": "",
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("data".into(), data.into());
    Ok(ok(m))
}
