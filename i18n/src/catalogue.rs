//! The translation catalogue: Fluent messages per language, compiled into the binary, looked up
//! by ID.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use fluent_syntax::ast;

use crate::Lang;

/// One catalogue file: its language, its name under `i18n/locales/<lang>/` and its text.
pub struct Source {
    /// The language the file is written in.
    pub lang: Lang,
    /// Its file name (the area of the product its messages belong to).
    pub name: &'static str,
    /// Its Fluent text.
    pub text: &'static str,
}

macro_rules! sources {
    ($($lang:ident $dir:literal: [$($file:literal),+]),+ $(,)?) => {
        &[$($(Source {
            lang: Lang::$lang,
            name: $file,
            text: include_str!(concat!("../locales/", $dir, "/", $file)),
        }),+),+]
    };
}

/// Every catalogue file. A message's area is its file; both languages have the same files.
pub const SOURCES: &[Source] = sources!(
    En "en": ["common.ftl", "dashboard.ftl", "hub.ftl", "agent.ftl"],
    Vi "vi": ["common.ftl", "dashboard.ftl", "hub.ftl", "agent.ftl"],
);

/// A message's variable value.
#[derive(Clone, Debug)]
pub enum Arg {
    /// Text, inserted as is.
    Str(String),
    /// A number (counts, sizes, percentages).
    Num(f64),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Str(v.to_owned())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Str(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Str(v.clone())
    }
}
macro_rules! numeric_arg {
    ($($t:ty),+) => {$(
        impl From<$t> for Arg {
            fn from(v: $t) -> Self {
                Arg::Num(v as f64)
            }
        }
    )+};
}
numeric_arg!(u8, u16, u32, u64, usize, i32, i64, f32, f64);

struct Catalogue {
    bundles: Vec<(Lang, FluentBundle<FluentResource>)>,
    resources: Vec<(Lang, FluentResource)>,
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let mut bundles = Vec::new();
        let mut resources = Vec::new();
        for lang in Lang::ALL {
            let id = lang
                .code()
                .parse()
                .expect("a language code is a language identifier");
            let mut bundle = FluentBundle::new_concurrent(vec![id]);
            // Terminal output and logs must not carry invisible bidi isolation marks.
            bundle.set_use_isolating(false);
            for source in SOURCES.iter().filter(|s| s.lang == lang) {
                // A file with syntax errors still yields its good messages; the catalogue test
                // fails on any error, so a shipped binary has none.
                let parsed = |text: &'static str| {
                    FluentResource::try_new(text.to_owned()).unwrap_or_else(|(res, _)| res)
                };
                let _ = bundle.add_resource(parsed(source.text));
                resources.push((lang, parsed(source.text)));
            }
            bundles.push((lang, bundle));
        }
        Catalogue { bundles, resources }
    })
}

fn bundle(lang: Lang) -> &'static FluentBundle<FluentResource> {
    &catalogue()
        .bundles
        .iter()
        .find(|(l, _)| *l == lang)
        .expect("every language has a bundle")
        .1
}

/// Renders message `id` in `lang` without variables. See [`tr_args`].
pub fn tr(lang: Lang, id: &str) -> String {
    tr_args(lang, id, &[])
}

/// Renders message `id` in `lang` with named variables. A message missing in `lang` falls back to
/// English, and one missing everywhere renders as its ID (the catalogue test keeps both from
/// happening in a release).
pub fn tr_args(lang: Lang, id: &str, args: &[(&str, Arg)]) -> String {
    let mut fluent_args = FluentArgs::with_capacity(args.len());
    for (name, value) in args {
        let value = match value {
            Arg::Str(s) => FluentValue::from(s.as_str()),
            Arg::Num(n) => FluentValue::from(*n),
        };
        fluent_args.set(*name, value);
    }
    for lang in [lang, Lang::En] {
        let bundle = bundle(lang);
        if let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) {
            let mut errors = Vec::new();
            let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
            return text.into_owned();
        }
    }
    id.to_owned()
}

/// Every message ID defined in `lang`, with the catalogue file that defines it.
pub fn message_ids(lang: Lang) -> BTreeMap<String, &'static str> {
    let mut ids = BTreeMap::new();
    for source in SOURCES.iter().filter(|s| s.lang == lang) {
        let Ok(resource) = FluentResource::try_new(source.text.to_owned()) else {
            continue;
        };
        for entry in resource.entries() {
            if let ast::Entry::Message(m) = entry {
                ids.insert(m.id.name.to_owned(), source.name);
            }
        }
    }
    ids
}

/// The variables message `id` uses in `lang` (`None` if `lang` does not define it).
pub fn variables(lang: Lang, id: &str) -> Option<BTreeSet<String>> {
    let (_, resource) = catalogue()
        .resources
        .iter()
        .filter(|(l, _)| *l == lang)
        .find(|(_, r)| r.entries().any(|e| is_message(e, id)))?;
    let mut vars = BTreeSet::new();
    for entry in resource.entries() {
        if let ast::Entry::Message(m) = entry {
            if m.id.name == id {
                if let Some(pattern) = &m.value {
                    collect_pattern(pattern, &mut vars);
                }
            }
        }
    }
    Some(vars)
}

fn is_message(entry: &ast::Entry<&str>, id: &str) -> bool {
    matches!(entry, ast::Entry::Message(m) if m.id.name == id)
}

fn collect_pattern(pattern: &ast::Pattern<&str>, vars: &mut BTreeSet<String>) {
    for element in &pattern.elements {
        if let ast::PatternElement::Placeable { expression } = element {
            collect_expression(expression, vars);
        }
    }
}

fn collect_expression(expression: &ast::Expression<&str>, vars: &mut BTreeSet<String>) {
    match expression {
        ast::Expression::Inline(inline) => collect_inline(inline, vars),
        ast::Expression::Select { selector, variants } => {
            collect_inline(selector, vars);
            for variant in variants {
                collect_pattern(&variant.value, vars);
            }
        }
    }
}

fn collect_inline(inline: &ast::InlineExpression<&str>, vars: &mut BTreeSet<String>) {
    match inline {
        ast::InlineExpression::VariableReference { id } => {
            vars.insert(id.name.to_owned());
        }
        ast::InlineExpression::Placeable { expression } => collect_expression(expression, vars),
        ast::InlineExpression::FunctionReference { arguments, .. } => {
            for arg in &arguments.positional {
                collect_inline(arg, vars);
            }
            for arg in &arguments.named {
                collect_inline(&arg.value, vars);
            }
        }
        _ => {}
    }
}

/// The messages whose ID starts with `prefix`, rendered in `lang` with each variable left as a
/// `{name}` slot for a client to fill (the dashboard formats its own numbers). Messages meant for
/// this must not choose variants on a variable (no selectors); the catalogue test checks the
/// dashboard's.
pub fn patterns(lang: Lang, prefix: &str) -> BTreeMap<String, String> {
    message_ids(lang)
        .into_keys()
        .filter(|id| id.starts_with(prefix))
        .map(|id| {
            let slots: Vec<(String, Arg)> = variables(lang, &id)
                .unwrap_or_default()
                .into_iter()
                .map(|v| (v.clone(), Arg::Str(format!("{{{v}}}"))))
                .collect();
            let args: Vec<(&str, Arg)> =
                slots.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let text = tr_args(lang, &id, &args);
            (id, text)
        })
        .collect()
}
