//! The agency directory for agents: one `DirectoryRequest` is answered with one page of the
//! registry (`DirectoryPage`), for the connected agency only while it is active.

use crate::hub::Hub;
use poros_protocol::{directory, AgencyId, Frame, Refusal, RefusalCode};
use tracing::debug;

/// The answer to `DirectoryRequest { after }` from `agency` (the verified identity of the
/// connection; the request itself names no one).
pub(super) fn answer(hub: &Hub, agency: &AgencyId, after: Option<AgencyId>) -> Frame {
    // Admission already refused agencies that are not active; this catches a suspension or
    // revocation between the handshake and the request.
    if hub.node_state(agency) != Some(crate::state::NodeState::Active) {
        return Frame::Refused(Refusal {
            code: RefusalCode::NotAllowed,
            message: format!("agency {agency} is not active; the directory is refused"),
        });
    }
    let nodes = hub.nodes();
    let start = match &after {
        Some(a) => nodes.partition_point(|n| &n.agency <= a),
        None => 0,
    };
    let (entries, next) = directory::page(nodes[start..].iter().map(|n| n.directory_entry()));
    debug!(agency = %agency, entries = entries.len(), more = next.is_some(), "directory page");
    Frame::DirectoryPage { entries, next }
}
