//! `vigil metrics get --png`: one metric's statistics as a line chart, one
//! line per statistic, drawn with plotters on its bitmap backend. Text is
//! rasterised by ab_glyph from a font compiled into the binary (DejaVu Sans,
//! licence in `assets/`), so charts look the same everywhere and no system
//! font library is needed. A proportional font rather than a monospace one:
//! plotters 0.3.7 draws each ab_glyph glyph without its left side bearing,
//! which leaves a monospace font's narrow glyphs (`:`, `-`, `(`) visibly
//! off-centre in their cells.

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, bail};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// DejaVu Sans (Bitstream Vera licence, DejaVu changes public domain).
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// The family every text of the chart asks for.
const FAMILY: &str = "sans-serif";

/// Line colours, in the order of the statistics asked for.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// One line: a statistic's values, `None` where the period has none.
#[derive(Debug)]
pub struct Line<'a> {
    /// The legend text (the statistic as asked, `p99`).
    pub name: &'a str,
    /// One value per timestamp.
    pub values: &'a [Option<f64>],
}

/// What to draw.
#[derive(Debug)]
pub struct Chart<'a> {
    /// The caption.
    pub title: &'a str,
    /// The y axis' description (the unit).
    pub y_label: &'a str,
    /// Seconds per point, to give a single point some width.
    pub period_s: u32,
    /// Period starts, Unix milliseconds, ascending.
    pub timestamps: &'a [i64],
    /// The lines.
    pub lines: &'a [Line<'a>],
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

fn register() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| anyhow::anyhow!("the bundled font does not load"));
    });
    result
}

/// Draws `chart` into a PNG file at `path`.
pub fn draw(chart: &Chart<'_>, path: &Path) -> anyhow::Result<()> {
    if chart.width < 200 || chart.height < 150 {
        bail!(
            "--width and --height must be at least 200 × 150 pixels, got {} × {}",
            chart.width,
            chart.height
        );
    }
    if chart.width > 10_000 || chart.height > 10_000 {
        bail!(
            "--width and --height must be at most 10000 pixels, got {} × {}",
            chart.width,
            chart.height
        );
    }
    register()?;
    let (x_range, y_range) = ranges(chart)?;
    let root = BitMapBackend::new(path, (chart.width, chart.height)).into_drawing_area();
    let fail = |err: &dyn std::fmt::Display| anyhow::anyhow!("cannot draw the chart: {err}");
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let span_ms = x_range.end - x_range.start;
    let first_day = crate::table::rfc3339_ms(x_range.start);
    let x_desc = format!(
        "time (UTC) from {}",
        first_day.split('T').next().unwrap_or_default()
    );
    let mut ctx = ChartBuilder::on(&root)
        .caption(chart.title, (FAMILY, 20))
        .margin(12)
        // Room for the last time label, which is centred on the right edge.
        .margin_right(36)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|e| fail(&e))?;
    ctx.configure_mesh()
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&|ms| time_label(*ms, span_ms))
        .y_label_formatter(&|v| value_label(*v))
        .x_desc(x_desc)
        .y_desc(chart.y_label)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| fail(&e))?;
    for (i, line) in chart.lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let style = color.stroke_width(2);
        let mut labelled = false;
        for run in runs(chart.timestamps, line.values) {
            // A lone point between gaps would be an invisible line.
            if run.len() == 1 {
                let dot = run.iter().map(|&p| Circle::new(p, 3, color.filled()));
                ctx.draw_series(dot).map_err(|e| fail(&e))?;
            }
            let series = ctx
                .draw_series(LineSeries::new(run, style))
                .map_err(|e| fail(&e))?;
            if !labelled {
                labelled = true;
                series.label(line.name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
        }
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 13))
        .draw()
        .map_err(|e| fail(&e))?;
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The x range (ms) and the y range with a margin, over every value.
fn ranges(chart: &Chart<'_>) -> anyhow::Result<(std::ops::Range<i64>, std::ops::Range<f64>)> {
    let (Some(&first), Some(&last)) = (chart.timestamps.first(), chart.timestamps.last()) else {
        bail!("no data points in the range: nothing to draw (widen --start/--end)");
    };
    let values = chart
        .lines
        .iter()
        .flat_map(|l| l.values.iter().flatten().copied())
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        bail!("every value is empty (null): nothing to draw");
    }
    let pad = if hi > lo {
        (hi - lo) * 0.08
    } else {
        (lo.abs() * 0.1).max(1.0)
    };
    let y_lo = if lo >= 0.0 && lo - pad < 0.0 {
        0.0
    } else {
        lo - pad
    };
    let half_period = i64::from(chart.period_s.max(1)) * 500;
    let x = if last > first {
        first..last
    } else {
        first - half_period..last + half_period
    };
    Ok((x, y_lo..hi + pad))
}

/// Runs of consecutive points with a value: a gap breaks the line.
fn runs(timestamps: &[i64], values: &[Option<f64>]) -> Vec<Vec<(i64, f64)>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for (t, v) in timestamps.iter().zip(values) {
        match v {
            Some(v) if v.is_finite() => current.push((*t, *v)),
            _ => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `18:05` within a day and a half, `12-01 18:05` beyond, `18:05:30` for
/// less than ten minutes.
fn time_label(ms: i64, span_ms: i64) -> String {
    let text = crate::table::rfc3339_ms(ms);
    // `2026-12-01T18:05:30Z` or `2026-12-01T18:05:30.5Z`.
    let (date, clock) = text.split_once('T').unwrap_or((&text, ""));
    let clock = clock.trim_end_matches('Z');
    let clock = clock.split('.').next().unwrap_or(clock);
    if span_ms < 10 * 60 * 1000 {
        clock.to_owned()
    } else if span_ms <= 36 * 3600 * 1000 {
        clock.get(..5).unwrap_or(clock).to_owned()
    } else {
        format!(
            "{} {}",
            date.get(5..).unwrap_or(date),
            clock.get(..5).unwrap_or(clock)
        )
    }
}

/// Axis numbers without float noise: `0.3`, `1200`, `1.5e9`.
fn value_label(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e7).contains(&a) {
        format!("{v:.2e}")
    } else {
        let text = format!("{v:.4}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        if text == "-0" {
            "0".to_owned()
        } else {
            text.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_break_lines() {
        let ts = [0, 60, 120, 180, 240];
        let vs = [Some(1.0), None, Some(2.0), Some(3.0), None];
        assert_eq!(
            runs(&ts, &vs),
            vec![vec![(0, 1.0)], vec![(120, 2.0), (180, 3.0)]]
        );
    }

    #[test]
    fn labels_are_short_and_readable() {
        let t = 1_768_212_330_000; // 2026-01-12T10:05:30Z
        assert_eq!(time_label(t, 5 * 60_000), "10:05:30");
        assert_eq!(time_label(t, 3 * 3_600_000), "10:05");
        assert_eq!(time_label(t, 3 * 86_400_000), "01-12 10:05");
        assert_eq!(value_label(0.30000000000000004), "0.3");
        assert_eq!(value_label(1200.0), "1200");
        assert_eq!(value_label(1.5e9), "1.50e9");
        assert_eq!(value_label(-0.0), "0");
    }
}
