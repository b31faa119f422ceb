//! The users' languages: Poros speaks English and Vietnamese.
//!
//! Every sentence a user reads (the dashboard, the command lines' human-readable output, the
//! agent's error messages) comes from one translation catalogue: Fluent files under
//! `i18n/locales/<lang>/`, compiled into the binaries so an installed package needs no data
//! files. Code names a message by its ID and passes its variables; it never holds the sentence.
//! [`Lang`] picks the language (from the locale for a command line, from `Accept-Language` or a
//! switch for the dashboard and the API), [`tr`] and the [`t!`] macro render a message, and
//! [`Collation`] sorts names the way a reader of that language expects (Vietnamese "Đ" after
//! "D", "Ủy" among the "U"s, not after "Z" as byte order would put them).
//!
//! The catalogue's completeness is a test: both languages define the same messages with the same
//! variables (`tests/catalogue.rs`).

mod catalogue;
mod collate;
mod lang;

pub use catalogue::{message_ids, patterns, tr, tr_args, variables, Arg, Source, SOURCES};
pub use collate::Collation;
pub use lang::Lang;

/// Renders catalogue message `$id` in language `$lang`, with named variables:
/// `t!(lang, "common-documents", count = 3)`.
#[macro_export]
macro_rules! t {
    ($lang:expr, $id:expr $(,)?) => {
        $crate::tr($lang, $id)
    };
    ($lang:expr, $id:expr, $($name:ident = $value:expr),+ $(,)?) => {
        $crate::tr_args($lang, $id, &[$((stringify!($name), $crate::Arg::from($value))),+])
    };
}
