//! Sections of docs/benchmarks.md between markers, so that a partial run (`--chat-only`,
//! `--billing-only`) replaces its own section and leaves the others as they were.

/// The section from `begin` to `end` (markers included), if the report has one.
pub fn extract<'a>(report: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    let start = report.find(begin)?;
    let stop = report[start..].find(end)? + start + end.len();
    Some(&report[start..stop])
}

/// `existing` with its `begin`…`end` section replaced by `section` (appended when it has
/// none; a new report when there is none).
pub fn splice(existing: Option<&str>, begin: &str, end: &str, section: &str) -> String {
    let section = format!("{}\n", section.trim_end_matches('\n'));
    let Some(existing) = existing else {
        return format!("# Benchmarks\n\n{section}");
    };
    match (existing.find(begin), existing.find(end)) {
        (Some(b), Some(e)) if e > b => {
            let after = &existing[e + end.len()..];
            let after = after.strip_prefix('\n').unwrap_or(after);
            format!("{}{section}{after}", &existing[..b])
        }
        _ => format!("{}\n\n{section}", existing.trim_end_matches('\n')),
    }
}
