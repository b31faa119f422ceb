//! Which language a reader gets: from the process locale (command lines), from an
//! `Accept-Language` header or an explicit tag (dashboard, API).

use std::fmt;

/// A language Poros speaks. English is the fallback for anything not recognised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// Vietnamese (tiếng Việt).
    Vi,
}

impl Lang {
    /// Every language, English first.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Vi];

    /// The BCP 47 primary tag: `en`, `vi`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Vi => "vi",
        }
    }

    /// Reads a language tag or POSIX locale name (`vi`, `vi-VN`, `vi_VN.UTF-8`, `en_GB@euro`);
    /// `None` when its language is not one Poros speaks (`C` and `POSIX` count as English).
    pub fn parse(tag: &str) -> Option<Lang> {
        let tag = tag.trim();
        let primary = tag
            .split(['-', '_', '.', '@'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match primary.as_str() {
            "vi" => Some(Lang::Vi),
            "en" | "c" | "posix" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language of this process's locale: `POROS_LANG` if set, else the first of `LC_ALL`,
    /// `LC_MESSAGES`, `LANG` that is set and not empty (GNU's `LANGUAGE` list wins over it unless
    /// that locale is `C`/`POSIX`). English when none names a language Poros speaks.
    pub fn from_env() -> Lang {
        Lang::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Lang::from_env`] over any variable lookup (for tests and for the environment of a
    /// child process).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Lang {
        let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        if let Some(lang) = set("POROS_LANG").and_then(|v| Lang::parse(&v)) {
            return lang;
        }
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|name| set(name));
        let is_c = locale
            .as_deref()
            .is_some_and(|l| matches!(l.trim(), "C" | "POSIX") || l.starts_with("C."));
        if !is_c {
            if let Some(list) = set("LANGUAGE") {
                if let Some(lang) = list.split(':').find_map(Lang::parse) {
                    return lang;
                }
            }
        }
        locale.as_deref().and_then(Lang::parse).unwrap_or_default()
    }

    /// The reader's preferred language from an HTTP `Accept-Language` value (`vi-VN,vi;q=0.9,
    /// en;q=0.8`): the highest-weighted tag Poros speaks; `None` if none.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(f32, usize, Lang)> = None;
        for (order, item) in header.split(',').enumerate() {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let Some(lang) = Lang::parse(tag) else {
                continue;
            };
            if weight <= 0.0 {
                continue;
            }
            // Higher weight wins; on equal weight, the one listed first.
            if best.map_or(true, |(w, o, _)| weight > w || (weight == w && order < o)) {
                best = Some((weight, order, lang));
            }
        }
        best.map(|(_, _, lang)| lang)
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Lang {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Lang::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn tags_and_locale_names() {
        assert_eq!(Lang::parse("vi"), Some(Lang::Vi));
        assert_eq!(Lang::parse("vi_VN.UTF-8"), Some(Lang::Vi));
        assert_eq!(Lang::parse("VI-vn"), Some(Lang::Vi));
        assert_eq!(Lang::parse("en_GB@euro"), Some(Lang::En));
        assert_eq!(Lang::parse("C.UTF-8"), Some(Lang::En));
        assert_eq!(Lang::parse("fr_FR.UTF-8"), None);
        assert_eq!(Lang::parse(""), None);
    }

    #[test]
    fn the_locale_decides_in_posix_order() {
        assert_eq!(env(&[]), Lang::En);
        assert_eq!(env(&[("LANG", "vi_VN.UTF-8")]), Lang::Vi);
        assert_eq!(
            env(&[("LANG", "vi_VN.UTF-8"), ("LC_ALL", "en_US.UTF-8")]),
            Lang::En
        );
        assert_eq!(
            env(&[("LANG", "en_US.UTF-8"), ("LC_MESSAGES", "vi_VN")]),
            Lang::Vi
        );
        assert_eq!(env(&[("LC_ALL", ""), ("LANG", "vi_VN")]), Lang::Vi);
        assert_eq!(
            env(&[("LANG", "en_US"), ("LANGUAGE", "fr:vi:en")]),
            Lang::Vi
        );
        assert_eq!(env(&[("LANG", "C"), ("LANGUAGE", "vi")]), Lang::En);
        assert_eq!(env(&[("LANG", "vi_VN"), ("POROS_LANG", "en")]), Lang::En);
        assert_eq!(env(&[("LANG", "de_DE.UTF-8")]), Lang::En);
    }

    #[test]
    fn accept_language_weights() {
        assert_eq!(
            Lang::from_accept_language("vi-VN,vi;q=0.9,en;q=0.8"),
            Some(Lang::Vi)
        );
        assert_eq!(
            Lang::from_accept_language("en-US,en;q=0.9,vi;q=0.8"),
            Some(Lang::En)
        );
        assert_eq!(
            Lang::from_accept_language("fr, vi;q=0.5, en;q=0.4"),
            Some(Lang::Vi)
        );
        assert_eq!(
            Lang::from_accept_language("en;q=0.2, vi;q=0.7"),
            Some(Lang::Vi)
        );
        assert_eq!(Lang::from_accept_language("vi;q=0, de"), None);
        assert_eq!(Lang::from_accept_language(""), None);
    }
}
