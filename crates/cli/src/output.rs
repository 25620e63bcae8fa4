//! Printing activity entries and runs as tables, JSON or CSV.

use scimsync_core::activity::ActivityEntry;
use scimsync_store::RunStats;
use std::fmt::Write as _;

/// Output formats of `activity` and `runs`. Times are RFC 3339 in UTC with a `Z` in all of
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON array of objects.
    Json,
    /// One JSON object a line.
    Jsonl,
    /// A header line, then one row per line.
    Csv,
}

/// The line after a listing the limit cut short.
pub fn more_line(more: u64) -> String {
    format!("{more} more — use --limit or --since")
}

/// `values` as one JSON array, on one line.
fn json_array<T: serde::Serialize>(values: &[T]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into()) + "\n"
}

/// `values` as JSON lines.
fn json_lines<T: serde::Serialize>(values: &[T]) -> String {
    values
        .iter()
        .map(|v| serde_json::to_string(v).unwrap_or_default() + "\n")
        .collect()
}

/// Text for a terminal, control characters escaped (see
/// [`scimsync_core::render::printable`]).
pub fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    scimsync_core::render::printable(text)
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    table_at_least(header, rows, &[])
}

/// A table whose columns are at least `min` characters wide (per column, in order).
fn table_at_least(header: &[&str], rows: &[Vec<String>], min: &[usize]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| clean(c).into_owned()).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| h.chars().count().max(min.get(i).copied().unwrap_or(0)))
        .collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let last = header.len() - 1;
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                l.push_str(c);
            } else {
                let _ = write!(l, "{:<w$}  ", c, w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// A CSV cell: quoted when needed; a cell a spreadsheet would take for a formula (starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed with `'`.
fn csv_field(value: &str) -> String {
    let neutral;
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        neutral = format!("'{value}");
        neutral.as_str()
    } else {
        value
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

const ACTIVITY_HEADER: [&str; 10] = [
    "id",
    "at",
    "connection",
    "run",
    "op",
    "outcome",
    "object",
    "name",
    "target_id",
    "detail",
];

fn activity_cells(e: &ActivityEntry) -> Vec<String> {
    vec![
        e.id.to_string(),
        e.at.to_string(),
        e.connection.clone(),
        e.run_id.to_string(),
        e.op.clone(),
        e.outcome.as_str().to_owned(),
        e.object.clone(),
        e.name.clone(),
        e.target_id.clone().unwrap_or_default(),
        e.detail.clone(),
    ]
}

/// How a table's columns are sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// To the widest cell of the batch.
    Fit,
    /// To widths fixed in advance (wider cells push theirs): batches printed one after the
    /// other (`--follow`) stay aligned with the header, even when the first is empty.
    Follow,
}

/// The widths of the activity table's columns when following (ID, AT, CONNECTION, RUN, OP,
/// OUTCOME, OBJECT, NAME; DETAIL takes the rest of the line).
const FOLLOW_WIDTHS: [usize; 8] = [7, 24, 12, 5, 16, 8, 6, 32];

/// Activity entries in `format` (CSV and tables with a header when `header`).
pub fn activity(entries: &[ActivityEntry], format: Format, header: bool) -> String {
    activity_laid_out(entries, format, header, Layout::Fit)
}

/// [`activity`], with the table's columns sized by `layout`.
pub fn activity_laid_out(
    entries: &[ActivityEntry],
    format: Format,
    header: bool,
    layout: Layout,
) -> String {
    let min: &[usize] = match layout {
        Layout::Fit => &[],
        Layout::Follow => &FOLLOW_WIDTHS,
    };
    match format {
        Format::Table => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    let mut c = activity_cells(e);
                    c.remove(8);
                    c
                })
                .collect();
            let h = [
                "ID",
                "AT",
                "CONNECTION",
                "RUN",
                "OP",
                "OUTCOME",
                "OBJECT",
                "NAME",
                "DETAIL",
            ];
            if header {
                table_at_least(&h, &rows, min)
            } else {
                let t = table_at_least(&h, &rows, min);
                t.lines().skip(1).map(|l| format!("{l}\n")).collect()
            }
        }
        Format::Json => json_array(entries),
        Format::Jsonl => json_lines(entries),
        Format::Csv => {
            let mut out = String::new();
            if header {
                out.push_str(&ACTIVITY_HEADER.join(","));
                out.push('\n');
            }
            for e in entries {
                let cells: Vec<String> = activity_cells(e).iter().map(|c| csv_field(c)).collect();
                out.push_str(&cells.join(","));
                out.push('\n');
            }
            out
        }
    }
}

/// Runs with their counts and durations.
pub fn runs(runs: &[RunStats], format: Format) -> String {
    let status = |r: &RunStats| {
        serde_json::to_value(r.run.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let cells = |r: &RunStats| {
        vec![
            r.run.id.to_string(),
            r.run.connection.clone(),
            serde_json::to_value(r.run.trigger)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            status(r),
            r.run.started_at.to_string(),
            r.duration
                .map(|d| format!("{:.1}s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            r.run.planned.to_string(),
            r.run.applied.to_string(),
            r.run.failed.to_string(),
            r.run.rejected.to_string(),
            r.run.skipped.to_string(),
            r.run.read.clone().unwrap_or_else(|| "-".into()),
            r.run.message.clone().unwrap_or_default(),
        ]
    };
    let header = [
        "ID",
        "CONNECTION",
        "TRIGGER",
        "STATUS",
        "STARTED",
        "DURATION",
        "PLANNED",
        "APPLIED",
        "FAILED",
        "REJECTED",
        "SKIPPED",
        "READ",
        "MESSAGE",
    ];
    match format {
        Format::Table => table(&header, &runs.iter().map(cells).collect::<Vec<_>>()),
        Format::Json | Format::Jsonl => {
            let values: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(&r.run).unwrap_or_default();
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert(
                            "duration_seconds".into(),
                            r.duration.map(|d| d.as_secs_f64()).into(),
                        );
                    }
                    v
                })
                .collect();
            if format == Format::Json {
                json_array(&values)
            } else {
                json_lines(&values)
            }
        }
        Format::Csv => {
            let mut out = header.map(str::to_ascii_lowercase).join(",") + "\n";
            for r in runs {
                out.push_str(
                    &cells(r)
                        .iter()
                        .map(|c| csv_field(c))
                        .collect::<Vec<_>>()
                        .join(","),
                );
                out.push('\n');
            }
            out
        }
    }
}

/// A listing (`catalogue`, `groups`): a table, a JSON array of objects keyed by the header in
/// lower case (cells as given: strings, numbers, booleans, null), the same objects one a line,
/// or CSV.
pub fn listing(header: &[&str], rows: &[Vec<serde_json::Value>], format: Format) -> String {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let keys: Vec<String> = header.iter().map(|h| h.to_ascii_lowercase()).collect();
    match format {
        Format::Table => table(
            header,
            &rows
                .iter()
                .map(|r| r.iter().map(text).collect())
                .collect::<Vec<_>>(),
        ),
        Format::Json | Format::Jsonl => {
            let objects: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::Value::Object(keys.iter().cloned().zip(r.iter().cloned()).collect())
                })
                .collect();
            if format == Format::Json {
                json_array(&objects)
            } else {
                json_lines(&objects)
            }
        }
        Format::Csv => {
            let mut out = keys.join(",") + "\n";
            for r in rows {
                out.push_str(
                    &r.iter()
                        .map(|c| csv_field(&text(c)))
                        .collect::<Vec<_>>()
                        .join(","),
                );
                out.push('\n');
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimsync_core::Timestamp;
    use scimsync_core::activity::Outcome;

    #[test]
    fn csv_quotes_commas_and_quotes() {
        let e = ActivityEntry {
            id: 7,
            run_id: 2,
            connection: "sf".into(),
            at: Timestamp(0),
            op: "update_user".into(),
            outcome: Outcome::Ok,
            object: "user".into(),
            source_id: Some("DU1".into()),
            target_id: Some("005X".into()),
            name: "ada@example.com".into(),
            detail: "title: \"Boss, Big\"".into(),
            attempts: 0,
        };
        let out = activity(&[e], Format::Csv, true);
        let mut lines = out.lines();
        assert_eq!(lines.next().unwrap_or_default(), ACTIVITY_HEADER.join(","));
        assert_eq!(
            lines.next().unwrap_or_default(),
            "7,1970-01-01T00:00:00.000Z,sf,2,update_user,ok,user,ada@example.com,005X,\"title: \"\"Boss, Big\"\"\""
        );
    }

    fn entry(name: &str, detail: &str) -> ActivityEntry {
        ActivityEntry {
            id: 1,
            run_id: 1,
            connection: "sf".into(),
            at: Timestamp(0),
            op: "create_user".into(),
            outcome: Outcome::Ok,
            object: "user".into(),
            source_id: None,
            target_id: None,
            name: name.into(),
            detail: detail.into(),
            attempts: 0,
        }
    }

    #[test]
    fn csv_cells_that_look_like_formulas_are_neutralised() {
        let out = activity(
            &[entry("=HYPERLINK(\"http://x\")", "+1 @SUM(A1) -2")],
            Format::Csv,
            false,
        );
        assert!(out.contains(",\"'=HYPERLINK(\"\"http://x\"\")\","), "{out}");
        assert!(out.ends_with(",'+1 @SUM(A1) -2\n"), "{out}");
        let plain = activity(&[entry("ada@example.com", "ok")], Format::Csv, false);
        assert!(plain.contains(",ada@example.com,"), "{plain}");
    }

    #[test]
    fn control_characters_are_escaped_in_tables() {
        let out = activity(
            &[entry("evil\n2026-01-01 FAKE ok\u{1b}[31m", "x\u{202e}y\r")],
            Format::Table,
            true,
        );
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(!out.contains('\u{1b}') && !out.contains('\u{202e}') && !out.contains('\r'));
        assert!(
            out.contains("evil\\n2026-01-01 FAKE ok\\u{1b}[31m"),
            "{out}"
        );
        assert_eq!(clean("plain"), "plain");
    }
}
