//! Fuzz target `config`: `hub.toml` and `agent.toml` parsing and validation from any text.
//! Properties: never panics; an agent configuration that loads renders (`to_toml`, as written
//! at enrolment) to text that loads back to the same configuration; the hub template written
//! for a loaded configuration's addresses and server name loads back with them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poros_config::{hub_toml_template, AgentConfig, HubConfig};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(hub) = HubConfig::from_toml(&text, Path::new("hub.toml")) {
        let rendered = hub_toml_template(
            hub.network.listen,
            hub.network.ops_listen,
            hub.enrolment.listen,
            &hub.enrolment.server_name,
        );
        let again = HubConfig::from_toml(&rendered, Path::new("hub.toml"))
            .unwrap_or_else(|e| panic!("template for a valid config does not load: {e}"));
        assert_eq!(again.network, hub.network);
        assert_eq!(again.enrolment.listen, hub.enrolment.listen);
        assert_eq!(again.enrolment.server_name, hub.enrolment.server_name);
    }
    if let Ok(agent) = AgentConfig::from_toml(&text, Path::new("agent.toml")) {
        let again = AgentConfig::from_toml(&agent.to_toml(), Path::new("agent.toml"))
            .unwrap_or_else(|e| panic!("rendered agent config does not load: {e}"));
        assert_eq!(again, agent);
    }
});
