//! The report's per-scope table as CSV for spreadsheet software: UTF-8 with a byte-order mark,
//! column headers in the reader's language, values left machine-readable.
//!
//! Spreadsheet software (Excel above all) reads a CSV file without a byte-order mark in the
//! system's legacy code page, which turns "Ủy ban nhân dân" into mojibake; the mark makes it
//! read UTF-8. Headers come from the catalogue (`dashboard-csv-*`); values do not change with
//! the language (codes, states and reason labels as in the JSON, dot decimals, rates in percent),
//! so a script reads both languages' files the same way by column position.
//!
//! Rows: the nation, the groups, then the agencies in agency-code order, in every language. The
//! codes are the agencies' stable keys and follow the administrative hierarchy; an export sorted
//! by name would reorder between languages and between renames, and spreadsheet software sorts
//! the name column in its own language's order on request. (The dashboard sorts names with the
//! reader's collation.)

use poros_i18n::{tr, Lang};
use serde_json::Value;

/// The export's media type (with its charset, so browsers and proxies do not guess).
pub const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// U+FEFF, the byte-order mark: EF BB BF at the start of the file.
const BOM: char = '\u{feff}';

/// Each column: the report field it shows and the catalogue ID of its header.
const COLUMNS: [(&str, &str); 24] = [
    ("scope", "dashboard-csv-scope"),
    ("name", "dashboard-csv-name"),
    ("group", "dashboard-csv-group"),
    ("state", "dashboard-csv-state"),
    ("sent", "dashboard-csv-sent"),
    ("received", "dashboard-csv-received"),
    ("due", "dashboard-csv-due"),
    ("delivered", "dashboard-csv-delivered"),
    ("on_time", "dashboard-csv-on-time"),
    ("late", "dashboard-csv-late"),
    ("rejected", "dashboard-csv-rejected"),
    ("expired", "dashboard-csv-expired"),
    ("pending", "dashboard-csv-pending"),
    ("overdue", "dashboard-csv-overdue"),
    ("delivery_rate", "dashboard-csv-delivery-rate"),
    ("on_time_rate", "dashboard-csv-on-time-rate"),
    ("paper_sent", "dashboard-csv-paper-sent"),
    ("paper_received", "dashboard-csv-paper-received"),
    ("electronic_rate", "dashboard-csv-electronic-rate"),
    ("avg_latency_ms", "dashboard-csv-avg-latency-ms"),
    (
        "registered_in_time_rate",
        "dashboard-csv-registered-in-time-rate",
    ),
    (
        "median_completion_secs",
        "dashboard-csv-median-completion-secs",
    ),
    ("completed", "dashboard-csv-completed"),
    ("outstanding", "dashboard-csv-outstanding"),
];

/// One CSV field: quoted when it holds a separator, a quote or a line break (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The report's table (the nation, its groups, its agencies) as CSV with headers in `lang`,
/// starting with the byte-order mark.
pub fn csv(report: &Value, lang: Lang) -> String {
    let mut out = String::from(BOM);
    let header: Vec<String> = COLUMNS.iter().map(|(_, id)| field(&tr(lang, id))).collect();
    out.push_str(&header.join(","));
    out.push('\n');
    let rows = std::iter::once(&report["national"])
        .chain(report["groups"].as_array().into_iter().flatten())
        .chain(report["agencies"].as_array().into_iter().flatten());
    for row in rows {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|(key, _)| match &row[*key] {
                Value::Null => String::new(),
                Value::String(s) => field(s),
                v => v.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// The file name a browser saves the export under: `poros-stats-FROM_TO.csv`.
pub fn filename(report: &Value) -> String {
    let day = |k: &str| {
        report[k]
            .as_str()
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
            .unwrap_or("")
            .to_owned()
    };
    format!("poros-stats-{}_{}.csv", day("from"), day("to"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        json!({
            "from": "2026-12-01",
            "to": "2026-12-31",
            "national": {"scope": "national", "sent": 4, "delivery_rate": 66.67, "avg_latency_ms": null},
            "groups": [{"scope": "group:000", "group": "000", "sent": 4}],
            "agencies": [
                {"scope": "000.00.00.G01", "name": "Ủy ban nhân dân tỉnh Lào Cai", "group": "000",
                 "state": "active", "sent": 3, "delivery_rate": 100.0},
                {"scope": "000.00.00.G02", "name": "Bộ Tài chính, \"Văn phòng\"", "group": "000",
                 "state": "suspended", "sent": 1, "delivery_rate": 33.33},
            ],
        })
    }

    #[test]
    fn starts_with_the_byte_order_mark_and_the_headers_of_the_language() {
        let en = csv(&report(), Lang::En);
        assert!(en.as_bytes().starts_with(b"\xEF\xBB\xBF"), "{en:?}");
        let header = en.trim_start_matches(BOM).lines().next().unwrap();
        assert!(
            header.starts_with("Scope,Name,Group,State,Sent,"),
            "{header}"
        );
        assert!(header.contains(",Delivery rate (%),"), "{header}");

        let vi = csv(&report(), Lang::Vi);
        assert!(vi.as_bytes().starts_with(b"\xEF\xBB\xBF"));
        let header = vi.trim_start_matches(BOM).lines().next().unwrap();
        assert!(
            header.starts_with("Phạm vi,Tên,Nhóm,Trạng thái,Đã gửi,"),
            "{header}"
        );
        assert!(header.contains(",Tỷ lệ chuyển thành công (%),"), "{header}");
        assert_eq!(header.split(',').count(), COLUMNS.len(), "{header}");
    }

    #[test]
    fn every_column_has_a_header_in_every_language() {
        for lang in Lang::ALL {
            let ids = poros_i18n::message_ids(lang);
            for (key, id) in COLUMNS {
                assert_eq!(ids.get(id), Some(&"dashboard.ftl"), "{lang}: {key} ({id})");
            }
        }
    }

    #[test]
    fn values_do_not_change_with_the_language_and_names_round_trip() {
        let (en, vi) = (csv(&report(), Lang::En), csv(&report(), Lang::Vi));
        let body = |s: &str| s.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(body(&en), body(&vi));
        let rows = body(&en);
        // The nation, the group, then the agencies in the order given (agency codes).
        assert!(rows[0].starts_with("national,,,,4,"), "{}", rows[0]);
        assert!(rows[1].starts_with("group:000,,000,,4,"), "{}", rows[1]);
        let name = "Ủy ban nhân dân tỉnh Lào Cai";
        let prefix = format!("000.00.00.G01,{name},000,active,3,");
        assert!(rows[2].starts_with(&prefix), "{}", rows[2]);
        // Byte for byte: the UTF-8 of the name is in the file as is (no escaping, no
        // normalisation), and a name with a comma and quotes is quoted.
        assert!(en
            .as_bytes()
            .windows(name.len())
            .any(|w| w == name.as_bytes()));
        assert!(
            rows[3].starts_with("000.00.00.G02,\"Bộ Tài chính, \"\"Văn phòng\"\"\",000,"),
            "{}",
            rows[3]
        );
        // Dot decimals and empty cells for missing figures, whatever the language.
        assert!(rows[3].contains(",33.33,"), "{}", rows[3]);
        assert!(vi.lines().nth(1).unwrap().contains(",66.67,"));
    }

    #[test]
    fn the_file_name_names_the_range() {
        assert_eq!(filename(&report()), "poros-stats-2026-12-01_2026-12-31.csv");
        assert_eq!(
            filename(&json!({"from": "x\"y", "to": "2026-01-31"})),
            "poros-stats-_2026-01-31.csv"
        );
    }
}
