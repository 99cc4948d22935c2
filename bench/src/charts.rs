//! The report's charts (docs/bench/*.svg), drawn with plotters' SVG backend: for each
//! benchmark, panels of horizontal bars (Parley beside its reference, latency percentiles
//! side by side), with the target as a dashed line where there is one.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

/// Where the charts go, relative to the report (docs/benchmarks.md → docs/bench/).
pub const DIR: &str = "bench";

const PARLEY: RGBColor = RGBColor(0x25, 0x63, 0xeb);
const REFERENCE: RGBColor = RGBColor(0x9c, 0xa3, 0xaf);
const TARGET: RGBColor = RGBColor(0xdc, 0x26, 0x26);
const INK: RGBColor = RGBColor(0x11, 0x18, 0x27);

/// What a bar stands for: its colour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Parley,
    Reference,
}

#[derive(Clone, Debug)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub kind: Kind,
}

impl Bar {
    pub fn parley(label: impl Into<String>, value: f64) -> Self {
        Self {
            label: label.into(),
            value,
            kind: Kind::Parley,
        }
    }

    pub fn reference(label: impl Into<String>, value: f64) -> Self {
        Self {
            label: label.into(),
            value,
            kind: Kind::Reference,
        }
    }
}

/// One panel: a title, the unit of its values, its bars (top to bottom) and an optional
/// target (a dashed vertical line).
#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    pub unit: String,
    pub bars: Vec<Bar>,
    pub target: Option<(f64, String)>,
}

impl Panel {
    pub fn new(title: impl Into<String>, unit: impl Into<String>, bars: Vec<Bar>) -> Self {
        Self {
            title: title.into(),
            unit: unit.into(),
            bars,
            target: None,
        }
    }

    pub fn target(mut self, value: f64, label: impl Into<String>) -> Self {
        self.target = Some((value, label.into()));
        self
    }
}

/// A value as the bars' labels show it: "12,345", "3.4", "0.52".
pub fn short(value: f64) -> String {
    if value == 0.0 {
        "0".to_owned()
    } else if value >= 1000.0 {
        crate::report::thousands(value)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

const WIDTH: u32 = 900;
const LABEL_WIDTH: u32 = 290;
const BAR_HEIGHT: u32 = 34;
const PANEL_CHROME: u32 = 90;

fn panel_height(p: &Panel) -> u32 {
    PANEL_CHROME + BAR_HEIGHT * p.bars.len().max(1) as u32
}

/// The SVG text of a chart: `title` over the panels, stacked.
pub fn svg(title: &str, panels: &[Panel]) -> Result<String, Box<dyn std::error::Error>> {
    let height = 50 + panels.iter().map(panel_height).sum::<u32>();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (header, mut rest) = root.split_vertically(50);
        header.draw(&Text::new(
            title.to_owned(),
            (12, 14),
            ("sans-serif", 20).into_font().color(&INK),
        ))?;
        for panel in panels {
            let (area, below) = rest.split_vertically(panel_height(panel));
            rest = below;
            draw_panel(&area, panel)?;
        }
        root.present()?;
    }
    Ok(out)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let n = panel.bars.len().max(1);
    let max = panel
        .bars
        .iter()
        .map(|b| b.value)
        .chain(panel.target.as_ref().map(|(t, _)| *t))
        .fold(0.0f64, f64::max);
    let max = if max > 0.0 { max * 1.18 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 16).into_font().color(&INK))
        .margin_left(LABEL_WIDTH)
        .margin_right(20)
        .margin_top(6)
        .x_label_area_size(30)
        .build_cartesian_2d(0.0..max, 0.0..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .light_line_style(TRANSPARENT)
        .x_labels(6)
        .x_desc(panel.unit.as_str())
        .x_label_formatter(&|v| short(*v))
        .axis_desc_style(("sans-serif", 13))
        .label_style(("sans-serif", 12))
        .draw()?;
    // Top to bottom: bar i occupies the band n-1-i.
    for (i, bar) in panel.bars.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        let color = match bar.kind {
            Kind::Parley => PARLEY,
            Kind::Reference => REFERENCE,
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, y + 0.18), (bar.value.max(0.0), y + 0.82)],
            color.filled(),
        )))?;
        let (x_end, y_mid) = chart.backend_coord(&(bar.value.max(0.0), y + 0.5));
        let (x0, _) = chart.backend_coord(&(0.0, y + 0.5));
        // Coordinates relative to the panel's area.
        let (ox, oy) = area.get_base_pixel();
        area.draw(&Text::new(
            short(bar.value),
            (x_end - ox + 5, y_mid - oy - 7),
            ("sans-serif", 12).into_font().color(&INK),
        ))?;
        let label: String = bar.label.chars().take(44).collect();
        area.draw(&Text::new(
            label,
            (12, y_mid - oy - 7),
            ("sans-serif", 13).into_font().color(&INK),
        ))?;
        let _ = x0;
    }
    if let Some((value, label)) = &panel.target {
        let style = TARGET.stroke_width(2);
        chart.draw_series(DashedLineSeries::new(
            vec![(*value, 0.0), (*value, n as f64)],
            6,
            4,
            style,
        ))?;
        let (x, y) = chart.backend_coord(&(*value, n as f64));
        let (ox, oy) = area.get_base_pixel();
        area.draw(&Text::new(
            label.clone(),
            (x - ox + 4, y - oy + 2),
            ("sans-serif", 12).into_font().color(&TARGET),
        ))?;
    }
    Ok(())
}

/// Writes the chart to `<report dir>/bench/<name>.svg`; returns the link relative to the
/// report (`bench/<name>.svg`), or `None` (with the reason on stderr) if it could not.
pub fn write(report: &Path, name: &str, title: &str, panels: &[Panel]) -> Option<String> {
    let dir: PathBuf = report.parent().unwrap_or_else(|| Path::new(".")).join(DIR);
    let file = format!("{name}.svg");
    let result = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| svg(title, panels).map_err(|e| e.to_string()))
        .and_then(|text| std::fs::write(dir.join(&file), text).map_err(|e| e.to_string()));
    match result {
        Ok(()) => Some(format!("{DIR}/{file}")),
        Err(e) => {
            eprintln!("chart {name}: {e}");
            None
        }
    }
}

/// A latency distribution: its name, its colour, its (percentile, milliseconds) points.
pub type Series<'a> = (&'a str, Kind, &'a [(f64, f64)]);

/// The percentile bars of several latency distributions: for each percentile, one bar
/// per series (Parley's first).
pub fn percentile_bars(series: &[Series<'_>], keep: &[f64]) -> Vec<Bar> {
    let mut bars = Vec::new();
    for p in keep {
        for (name, kind, points) in series {
            if let Some((_, ms)) = points.iter().find(|(q, _)| (q - p).abs() < 1e-9) {
                bars.push(Bar {
                    label: format!("{name}: p{p}"),
                    value: *ms,
                    kind: *kind,
                });
            }
        }
    }
    bars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_with_its_labels() {
        let panels = [
            Panel::new(
                "Throughput",
                "requests per second",
                vec![
                    Bar::parley("Parley", 21_000.0),
                    Bar::reference("minimal async-graphql", 48_000.0),
                ],
            )
            .target(20_000.0, "target ≥ 20,000/s"),
            Panel::new("Latency", "ms", vec![Bar::parley("p99", 4.2)]),
        ];
        let text = svg("Trivial query", &panels).unwrap();
        assert!(text.starts_with("<svg"));
        assert!(text.contains("Trivial query") && text.contains("minimal async-graphql"));
        assert!(text.contains("21,000") && text.contains("target"));
    }

    #[test]
    fn percentile_bars_pair_the_series() {
        let a = [(50.0, 1.0), (99.0, 3.0)];
        let b = [(50.0, 0.5), (99.0, 1.0)];
        let bars = percentile_bars(
            &[
                ("Parley", Kind::Parley, &a),
                ("minimal", Kind::Reference, &b),
            ],
            &[50.0, 99.0],
        );
        let labels: Vec<&str> = bars.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            ["Parley: p50", "minimal: p50", "Parley: p99", "minimal: p99"]
        );
    }
}
