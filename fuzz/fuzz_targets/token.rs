//! Fuzz target `token`: parsing of printed enrolment tokens (pasted by an operator).
//! Properties: never panics; a token that parses prints back to a string that parses to the
//! same token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poros_protocol::EnrollToken;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = EnrollToken::decode(text) {
        let printed = token.encode();
        assert_eq!(EnrollToken::decode(&printed).as_ref(), Ok(&token));
    }
});
