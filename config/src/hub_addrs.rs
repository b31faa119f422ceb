//! `hub` of `agent.toml`: the hub instances an agent may connect to.
//!
//! One `host:port`, a list of them, or one name that resolves to several addresses. An agent
//! whose hub goes away connects to the next one (see the agent's connection manager).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::SocketAddr;

/// The hub addresses of `agent.toml`, in the order written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubAddrs(Vec<String>);

/// Why a `hub` entry is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubAddrError {
    /// No address at all.
    #[error("at least one hub address (host:port)")]
    Empty,
    /// Not `host:port` with a port number.
    #[error("{0:?} is not host:port (a host name or IP address, a colon, a port 1-65535)")]
    NotHostPort(String),
}

impl HubAddrs {
    /// Check and keep `entries`.
    pub fn new(entries: Vec<String>) -> Result<Self, HubAddrError> {
        if entries.is_empty() {
            return Err(HubAddrError::Empty);
        }
        for e in &entries {
            if !is_host_port(e) {
                return Err(HubAddrError::NotHostPort(e.clone()));
            }
        }
        Ok(HubAddrs(entries))
    }

    /// The entries as written.
    pub fn entries(&self) -> &[String] {
        &self.0
    }

    /// Every address the entries resolve to now, in order, without repeats (a name is looked
    /// up again on every call, so DNS changes are followed). Blocking: call it off the
    /// async workers.
    pub fn resolve(&self) -> Vec<SocketAddr> {
        use std::net::ToSocketAddrs;
        let mut out: Vec<SocketAddr> = Vec::new();
        for e in &self.0 {
            // A name that does not resolve now yields no address; the caller names the
            // entries when none resolves at all.
            if let Ok(addrs) = e.to_socket_addrs() {
                for a in addrs {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
        }
        out
    }
}

fn is_host_port(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    port_ok && host_ok
}

impl From<SocketAddr> for HubAddrs {
    fn from(a: SocketAddr) -> Self {
        HubAddrs(vec![a.to_string()])
    }
}

impl fmt::Display for HubAddrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

impl HubAddrs {
    /// As a TOML value: a string for one entry, an array for several.
    pub fn to_toml(&self) -> String {
        let quoted: Vec<String> = self
            .0
            .iter()
            .map(|e| toml::Value::String(e.clone()).to_string())
            .collect();
        match quoted.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        }
    }
}

impl Serialize for HubAddrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for HubAddrs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = HubAddrs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"host:port\" or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HubAddrs, E> {
                HubAddrs::new(vec![v.to_string()]).map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<HubAddrs, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = a.next_element::<String>()? {
                    v.push(e);
                }
                HubAddrs::new(v).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_a_list_or_names_are_accepted_and_bad_ones_named() {
        assert!(HubAddrs::new(vec!["127.0.0.1:7000".into()]).is_ok());
        assert!(HubAddrs::new(vec!["[::1]:7000".into(), "hub2.example.vn:7000".into()]).is_ok());
        assert_eq!(HubAddrs::new(vec![]), Err(HubAddrError::Empty));
        for bad in [
            "hub",
            "hub:",
            "hub:0",
            "hub:99999",
            ":7000",
            "a b:1",
            "hub..vn:1",
        ] {
            assert_eq!(
                HubAddrs::new(vec![bad.into()]),
                Err(HubAddrError::NotHostPort(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn written_as_a_string_for_one_and_an_array_for_several() {
        let one = HubAddrs::from("127.0.0.1:7000".parse::<SocketAddr>().unwrap());
        assert_eq!(one.to_toml(), "\"127.0.0.1:7000\"");
        let many = HubAddrs::new(vec!["a.vn:1".into(), "b.vn:2".into()]).unwrap();
        assert_eq!(many.to_toml(), "[\"a.vn:1\", \"b.vn:2\"]");
        #[derive(Deserialize)]
        struct T {
            hub: HubAddrs,
        }
        let t: T = toml::from_str(&format!("hub = {}", many.to_toml())).unwrap();
        assert_eq!(t.hub, many);
        let t: T = toml::from_str("hub = \"127.0.0.1:7000\"").unwrap();
        assert_eq!(t.hub, one);
        assert_eq!(
            one.resolve(),
            vec!["127.0.0.1:7000".parse::<SocketAddr>().unwrap()]
        );
    }
}
