//! The national platform's SDK protocol, spoken to the agency's existing document-management
//! software (DMS), so that software switches to Poros by changing its endpoint and secret.
//!
//! # Layout
//! - [`auth`]: the checks every request passes (HMAC, signed headers, system id, timestamp,
//!   replay), IO-free.
pub mod auth;
