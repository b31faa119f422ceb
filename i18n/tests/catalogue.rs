//! The catalogue is complete and well formed: every file parses, no ID is defined twice, both
//! languages define the same messages with the same variables, the dashboard's messages can be
//! handed to the browser as slots, and every message ID the code and the dashboard use exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use fluent_bundle::FluentResource;
use fluent_syntax::ast;
use poros_i18n::{message_ids, patterns, t, tr, variables, Lang, SOURCES};

#[test]
fn every_file_parses_and_defines_each_id_once() {
    for lang in Lang::ALL {
        let mut seen = BTreeSet::new();
        for source in SOURCES.iter().filter(|s| s.lang == lang) {
            let resource =
                FluentResource::try_new(source.text.to_owned()).unwrap_or_else(|(_, errors)| {
                    panic!("locales/{lang}/{}: syntax errors {errors:?}", source.name)
                });
            for entry in resource.entries() {
                if let ast::Entry::Message(m) = entry {
                    assert!(
                        seen.insert(m.id.name.to_owned()),
                        "locales/{lang}/{}: message {} is defined twice",
                        source.name,
                        m.id.name
                    );
                    assert!(
                        m.value.is_some(),
                        "locales/{lang}/{}: message {} has no value",
                        source.name,
                        m.id.name
                    );
                }
            }
        }
    }
}

#[test]
fn both_languages_define_the_same_messages_in_the_same_files_with_the_same_variables() {
    let en = message_ids(Lang::En);
    let vi = message_ids(Lang::Vi);
    let missing_vi: Vec<_> = en.keys().filter(|id| !vi.contains_key(*id)).collect();
    let missing_en: Vec<_> = vi.keys().filter(|id| !en.contains_key(*id)).collect();
    assert!(
        missing_vi.is_empty(),
        "missing in locales/vi: {missing_vi:?}"
    );
    assert!(
        missing_en.is_empty(),
        "missing in locales/en: {missing_en:?}"
    );
    for (id, file) in &en {
        assert_eq!(file, &vi[id], "{id} is in en/{file} but vi/{}", vi[id]);
        assert_eq!(
            variables(Lang::En, id),
            variables(Lang::Vi, id),
            "{id} uses different variables in en and vi"
        );
    }
}

#[test]
fn a_message_renders_with_its_variables_and_falls_back_to_its_id() {
    assert_eq!(tr(Lang::Vi, "common-yes"), "có");
    assert_eq!(tr(Lang::En, "common-yes"), "yes");
    assert_eq!(t!(Lang::Vi, "no-such-message"), "no-such-message");
    // No bidi isolation marks around variables in terminal text.
    for lang in Lang::ALL {
        for id in message_ids(lang).keys() {
            let vars = variables(lang, id).unwrap();
            let args: Vec<(&str, poros_i18n::Arg)> =
                vars.iter().map(|v| (v.as_str(), "x".into())).collect();
            let text = poros_i18n::tr_args(lang, id, &args);
            assert!(
                !text.contains(['\u{2068}', '\u{2069}']),
                "{lang} {id}: {text:?}"
            );
            assert!(!text.trim().is_empty(), "{lang} {id} renders empty");
        }
    }
}

#[test]
fn dashboard_messages_are_plain_slots() {
    for source in SOURCES.iter().filter(|s| s.name == "dashboard.ftl") {
        let resource = FluentResource::try_new(source.text.to_owned()).expect("parses");
        for entry in resource.entries() {
            if let ast::Entry::Message(m) = entry {
                let value = m.value.as_ref().expect("has a value");
                for element in &value.elements {
                    if let ast::PatternElement::Placeable { expression } = element {
                        assert!(
                            matches!(
                                expression,
                                ast::Expression::Inline(
                                    ast::InlineExpression::VariableReference { .. }
                                )
                            ),
                            "{}/dashboard.ftl: {} must use only plain {{ $variable }} slots",
                            source.lang,
                            m.id.name
                        );
                    }
                }
            }
        }
    }
    for lang in Lang::ALL {
        for (id, text) in patterns(lang, "dashboard-") {
            for var in variables(lang, &id).unwrap() {
                assert!(text.contains(&format!("{{{var}}}")), "{lang} {id}: {text}");
            }
        }
    }
}

/// Message IDs the code names: the second argument of `t!(…)`, `tr(…)`, `tr_args(…)` in Rust,
/// `msg("…")` and `data-i18n="…"` in the dashboard.
fn used_ids(root: &Path) -> Vec<(PathBuf, String)> {
    let mut used = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !["target", ".git", "fuzz", "node_modules"].contains(&name.as_str()) {
                    stack.push(path);
                }
                continue;
            }
            let rust = name.ends_with(".rs") && !path.ends_with("i18n/tests/catalogue.rs");
            let web = name.ends_with(".js") || name.ends_with(".html");
            if !rust && !web {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let openers: &[&str] = if rust {
                &["t!(", "tr(", "tr_args("]
            } else {
                &["msg(", "data-i18n="]
            };
            for opener in openers {
                for (at, _) in text.match_indices(opener) {
                    // A whole name only: `t!(` but not `assert!(`, `tr(` but not `attr(`.
                    let before = text[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    let rest = &text[at + opener.len()..];
                    // Rust: skip the language argument; the web: the ID comes first.
                    let rest = if rust {
                        match rest.find(',') {
                            Some(comma) if !rest[..comma].contains([';', '"']) => {
                                &rest[comma + 1..]
                            }
                            _ => continue,
                        }
                    } else {
                        rest
                    };
                    let rest = rest.trim_start();
                    let Some(rest) = rest.strip_prefix('"') else {
                        continue;
                    };
                    let Some(end) = rest.find('"') else { continue };
                    let id = &rest[..end];
                    if !id.is_empty()
                        && id
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    {
                        used.push((path.clone(), id.to_owned()));
                    }
                }
            }
        }
    }
    used
}

#[test]
fn every_message_the_code_uses_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let defined = message_ids(Lang::En);
    let missing: Vec<_> = used_ids(root)
        .into_iter()
        .filter(|(_, id)| !defined.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "used but not in the catalogue: {missing:?}"
    );
}
