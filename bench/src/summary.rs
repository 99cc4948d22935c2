//! The summary table at the top of docs/benchmarks.md: every benchmark's figure, its
//! reference, the ratio, the target, met or not, and its chart.
//!
//! Each section of the report carries its own summary rows as HTML comments
//! (`<!-- summary-row: | … | -->`, invisible when rendered); after a run has replaced the
//! sections it measured, the table is rebuilt from the rows of every section in the
//! document's order. So a partial run (`--chat-only`, …) updates its rows and keeps the
//! others as the last runs left them.

use std::fmt::Write;

pub const BEGIN: &str = "<!-- summary:begin (rebuilt by scripts/bench from every section) -->";
pub const END: &str = "<!-- summary:end -->";
const ROW: &str = "<!-- summary-row: ";

/// One row of the summary table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    pub bench: String,
    pub parley: String,
    pub reference: String,
    /// Parley's figure over the reference's, where "higher is better" for both (so a
    /// small ratio is slow); `None` without a reference.
    pub ratio: Option<f64>,
    /// How the ratio reads ("41% of pgbench's rate").
    pub ratio_text: String,
    pub target: String,
    pub met: Option<bool>,
    /// The chart's link relative to the report (`bench/x.svg`).
    pub chart: Option<String>,
}

fn cell(text: &str) -> String {
    // A cell stays on its line and in its column, and the comment stays a comment.
    text.replace('\n', " ")
        .replace('|', "\\|")
        .replace("-->", "→")
}

/// A section's own table: its summary rows, without the chart column (cells escaped as in
/// the summary).
pub fn section_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| benchmark | Parley | reference (same run) | ratio | target | met? |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&r.bench),
            cell(&r.parley),
            cell(&r.reference),
            if r.ratio_text.is_empty() {
                "–".to_owned()
            } else {
                cell(&r.ratio_text)
            },
            cell(&r.target),
            r.met_text()
        );
    }
    out
}

impl Row {
    fn met_text(&self) -> &'static str {
        match self.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        }
    }

    fn cells(&self) -> String {
        let met = self.met_text();
        let chart = self
            .chart
            .as_ref()
            .map_or("–".to_owned(), |c| format!("[chart]({c})"));
        format!(
            "| {} | {} | {} | {} | {} | {met} | {chart} |",
            cell(&self.bench),
            cell(&self.parley),
            cell(&self.reference),
            if self.ratio_text.is_empty() {
                "–".to_owned()
            } else {
                cell(&self.ratio_text)
            },
            cell(&self.target),
        )
    }

    /// The row as a hidden line of its section.
    pub fn comment(&self) -> String {
        format!("{ROW}{} -->", self.cells())
    }
}

/// The hidden lines of `rows`, one per line.
pub fn comments(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(out, "{}", r.comment());
    }
    out
}

/// The summary block (markers included) from the rows hidden in `report`.
fn block(report: &str) -> String {
    let mut out = format!(
        "{BEGIN}\n\n## Summary\n\nEvery benchmark of the sections below, Parley beside the \
         reference measured in the same run (the ratio is Parley's figure over the \
         reference's: below 100% Parley is slower). Each section says when it was measured.\n\n\
         | benchmark | Parley | reference (same run) | ratio | target | met? | chart |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    let mut any = false;
    for line in report.lines() {
        if let Some(cells) = line.strip_prefix(ROW).and_then(|l| l.strip_suffix(" -->")) {
            let _ = writeln!(out, "{cells}");
            any = true;
        }
    }
    if !any {
        out.push_str("| (no section has summary rows yet) | | | | | | |\n");
    }
    let _ = write!(out, "\n{END}");
    out
}

/// `report` with its summary block rebuilt: in place, or else right after the title
/// (`# Benchmarks` and its first paragraph).
pub fn refresh(report: &str) -> String {
    let new = block(report);
    if let Some(existing) = crate::sections::extract(report, BEGIN, END) {
        return report.replacen(existing, &new, 1);
    }
    // After the title's paragraph: the first blank line after the first line.
    let insert_at = report
        .find("\n\n")
        .and_then(|title_end| {
            report[title_end + 2..]
                .find("\n\n")
                .map(|p| title_end + 2 + p + 2)
        })
        .unwrap_or(report.len());
    format!("{}{new}\n\n{}", &report[..insert_at], &report[insert_at..])
}

/// `section` with its summary rows hidden after its `## ` title, and its chart shown
/// before its `### Reproduce` (or at its end).
pub fn decorate(section: &str, rows: &[Row], chart: Option<(&str, &str)>) -> String {
    let mut out = section.to_owned();
    if let Some((alt, link)) = chart {
        let image = format!("\n![{alt}]({link})\n");
        match out.find("\n### Reproduce") {
            Some(at) => out.insert_str(at, &image),
            None => out.push_str(&image),
        }
    }
    let hidden = comments(rows);
    if !hidden.is_empty() {
        let at = out
            .find("\n## ")
            .and_then(|title| out[title + 1..].find('\n').map(|end| title + 1 + end + 1))
            .unwrap_or(0);
        out.insert_str(at, &hidden);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> Row {
        Row {
            bench: name.into(),
            parley: "1 | 2".into(),
            reference: "3".into(),
            ratio: Some(0.5),
            ratio_text: "50%".into(),
            target: "≥ 50%".into(),
            met: Some(true),
            chart: Some("bench/x.svg".into()),
        }
    }

    #[test]
    fn a_section_table_has_the_summary_columns_but_the_chart() {
        let mut unmeasured = row("B");
        unmeasured.ratio_text.clear();
        unmeasured.met = None;
        let table = section_table(&[row("A"), unmeasured]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines,
            [
                "| benchmark | Parley | reference (same run) | ratio | target | met? |",
                "| --- | --- | --- | --- | --- | --- |",
                "| A | 1 \\| 2 | 3 | 50% | ≥ 50% | yes |",
                "| B | 1 \\| 2 | 3 | – | ≥ 50% | – |",
            ]
        );
    }

    #[test]
    fn decorate_hides_rows_under_the_title_and_shows_the_chart() {
        let section = "<!-- x:begin -->\n\n## X\n\ntable\n\n### Reproduce\n\nrun\n<!-- x:end -->\n";
        let out = decorate(section, &[row("x")], Some(("X", "bench/x.svg")));
        let title = out.find("## X\n").unwrap();
        let hidden = out.find(ROW).unwrap();
        assert!(title < hidden && hidden < out.find("table").unwrap());
        let image = out.find("![X](bench/x.svg)").unwrap();
        assert!(out.find("table").unwrap() < image && image < out.find("### Reproduce").unwrap());
    }

    #[test]
    fn rows_are_collected_in_document_order() {
        let report = format!(
            "# Benchmarks\n\nIntro.\n\n## A\n\n{}\n## B\n\n{}",
            comments(&[row("first")]),
            comments(&[row("second"), row("third")])
        );
        let refreshed = refresh(&report);
        let first = refreshed.find("| first |").unwrap();
        assert!(first < refreshed.find("| second |").unwrap());
        assert!(refreshed.find(BEGIN).unwrap() > refreshed.find("Intro.").unwrap());
        assert!(refreshed.find(END).unwrap() < refreshed.find("## A").unwrap());
        assert!(refreshed.contains("| 1 \\| 2 |"));
        assert!(refreshed.contains("[chart](bench/x.svg)"));
        // Refreshing again replaces the block instead of adding one.
        let again = refresh(&refreshed);
        assert_eq!(again.matches(BEGIN).count(), 1);
        assert_eq!(again, refreshed);
    }
}
