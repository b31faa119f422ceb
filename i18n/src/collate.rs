//! Sorting names the way their readers expect, by the Unicode Collation Algorithm with the
//! language's CLDR tailoring (ICU4X's compiled data).

use std::cmp::Ordering;
use std::sync::OnceLock;

use icu_collator::options::CollatorOptions;
use icu_collator::{Collator, CollatorBorrowed, CollatorPreferences};
use icu_locale_core::locale;

use crate::Lang;

/// A collator for one language. Vietnamese sorts by its alphabet (a ă â b c d đ e ê … o ô ơ … u
/// ư …, tones after the letters); English by the root order, which still places "Ủy" among the
/// "U"s and ignores case at the first level.
pub struct Collation {
    collator: CollatorBorrowed<'static>,
}

impl Collation {
    /// The collation for `lang` (built once per process).
    pub fn of(lang: Lang) -> &'static Collation {
        static EN: OnceLock<Collation> = OnceLock::new();
        static VI: OnceLock<Collation> = OnceLock::new();
        let (cell, prefs): (_, CollatorPreferences) = match lang {
            Lang::En => (&EN, locale!("en").into()),
            Lang::Vi => (&VI, locale!("vi").into()),
        };
        cell.get_or_init(|| Collation {
            collator: Collator::try_new(prefs, CollatorOptions::default())
                .expect("ICU4X's compiled data has collation for en and vi"),
        })
    }

    /// Orders two strings.
    pub fn compare(&self, a: &str, b: &str) -> Ordering {
        self.collator.compare(a, b)
    }

    /// Sorts `items` by the text `key` gives, stably.
    pub fn sort_by_key<T>(&self, items: &mut [T], key: impl Fn(&T) -> &str) {
        items.sort_by(|a, b| self.compare(key(a), key(b)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(lang: Lang, names: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        Collation::of(lang).sort_by_key(&mut v, |s| s.as_str());
        v
    }

    #[test]
    fn vietnamese_alphabet_order() {
        let names = [
            "Ủy ban nhân dân tỉnh Lào Cai",
            "Văn phòng Chính phủ",
            "Đài Truyền hình Việt Nam",
            "Bộ Y tế",
            "Bộ Tài chính",
            "Sở Tư pháp",
            "Sở Tài nguyên",
            "Dân tộc",
        ];
        // Byte order puts "Đ" (U+0110) and "Ủ" (U+1EE6) after every ASCII letter: wrong.
        let mut bytes: Vec<&str> = names.to_vec();
        bytes.sort();
        assert_eq!(bytes.last(), Some(&"Ủy ban nhân dân tỉnh Lào Cai"));
        assert_eq!(
            sorted(Lang::Vi, &names),
            [
                "Bộ Tài chính",
                "Bộ Y tế",
                "Dân tộc",
                "Đài Truyền hình Việt Nam",
                "Sở Tài nguyên",
                "Sở Tư pháp",
                "Ủy ban nhân dân tỉnh Lào Cai",
                "Văn phòng Chính phủ",
            ]
        );
    }

    #[test]
    fn vietnamese_letters_with_marks_follow_their_base() {
        // In the Vietnamese alphabet "ư" is a letter after "u": "Tư" sorts after "Tuyên".
        let v = sorted(Lang::Vi, &["Tư pháp", "Tuyên Quang", "Tây Ninh"]);
        assert_eq!(v, ["Tây Ninh", "Tuyên Quang", "Tư pháp"]);
        // The root order treats the horn as a secondary difference: "Tư" before "Tuyên".
        let e = sorted(Lang::En, &["Tư pháp", "Tuyên Quang", "Tây Ninh"]);
        assert_eq!(e, ["Tây Ninh", "Tư pháp", "Tuyên Quang"]);
    }
}
