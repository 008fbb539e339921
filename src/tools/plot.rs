//! `atrous bench --plot FILE.svg`: the per-layer comparison as a picture. Left panel: time per
//! layer, atrous beside PyTorch; right panel: each layer's share of the adapter's ceiling (FMA
//! throughput for convolutions, copy bandwidth for memory-bound layers). Plain SVG, no crate.

use std::fmt::Write;

/// One layer of the chart.
#[derive(Clone, Debug)]
pub struct PlotLayer {
    pub name: String,
    pub atrous_ms: f64,
    pub torch_ms: Option<f64>,
    /// Percent of the adapter's ceiling the layer reaches, and which ceiling ("FMA" or "copy").
    pub ceiling_percent: Option<(f64, &'static str)>,
}

const ROW: f64 = 34.0;
const LABEL_W: f64 = 150.0;
const PANEL_W: f64 = 360.0;
const GAP: f64 = 60.0;
const TOP: f64 = 70.0;
const ATROUS: &str = "#2f6fb3";
const TORCH: &str = "#e0792b";
const CEILING: &str = "#4a9a5b";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn trim_zeros(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A "nice" axis maximum at or above `value` (1, 2 or 5 times a power of ten).
fn nice_max(value: f64) -> f64 {
    if value.is_nan() || value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&v| v >= value)
        .unwrap_or(10.0 * power)
}

/// Renders the chart; `title` goes on top, `subtitle` (adapter, command) under it.
pub fn svg(title: &str, subtitle: &str, layers: &[PlotLayer]) -> String {
    let height = TOP + ROW * layers.len() as f64 + 60.0;
    let width = LABEL_W + PANEL_W + GAP + PANEL_W + 30.0;
    let max_ms = nice_max(
        layers
            .iter()
            .flat_map(|l| [Some(l.atrous_ms), l.torch_ms])
            .flatten()
            .fold(0.0, f64::max),
    );
    let time_x = LABEL_W;
    let ceiling_x = LABEL_W + PANEL_W + GAP;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="16" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="40" fill="#555">{}</text>"##,
        escape(subtitle)
    );
    let _ = writeln!(
        s,
        r#"<text x="{time_x}" y="{}" font-weight="bold">time per layer (ms, median)</text>"#,
        TOP - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{ceiling_x}" y="{}" font-weight="bold">% of the adapter's ceiling</text>"#,
        TOP - 12.0
    );
    // Gridlines and axis labels.
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let bottom = TOP + ROW * layers.len() as f64;
        for (x0, label) in [
            (time_x, trim_zeros(format!("{:.3}", max_ms * f))),
            (ceiling_x, format!("{:.0}%", 100.0 * f)),
        ] {
            let x = x0 + PANEL_W * f;
            let _ = writeln!(
                s,
                r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{bottom}" stroke="#ddd"/>"##
            );
            let _ = writeln!(
                s,
                r##"<text x="{x}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
                bottom + 16.0,
                label
            );
        }
    }
    for (i, layer) in layers.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            y + ROW / 2.0 + 4.0,
            escape(&layer.name)
        );
        let bars = [
            (Some(layer.atrous_ms), ATROUS, 4.0),
            (layer.torch_ms, TORCH, 17.0),
        ];
        for (value, colour, dy) in bars {
            if let Some(ms) = value {
                let w = PANEL_W * (ms / max_ms).min(1.0);
                let _ = writeln!(
                    s,
                    r#"<rect x="{time_x}" y="{}" width="{w:.1}" height="12" fill="{colour}"/><text x="{:.1}" y="{}" font-size="10">{ms:.3}</text>"#,
                    y + dy,
                    time_x + w + 3.0,
                    y + dy + 10.0
                );
            }
        }
        if let Some((percent, ceiling)) = layer.ceiling_percent {
            let w = PANEL_W * (percent / 100.0).clamp(0.0, 1.0);
            let _ = writeln!(
                s,
                r#"<rect x="{ceiling_x}" y="{}" width="{w:.1}" height="16" fill="{CEILING}"/><text x="{:.1}" y="{}" font-size="10">{percent:.1}% {ceiling}</text>"#,
                y + 8.0,
                ceiling_x + w + 3.0,
                y + 20.0
            );
        }
    }
    let legend_y = height - 18.0;
    for (j, (colour, label)) in [
        (ATROUS, "atrous"),
        (TORCH, "PyTorch"),
        (CEILING, "share of ceiling"),
    ]
    .iter()
    .enumerate()
    {
        let x = LABEL_W + 140.0 * j as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{legend_y}">{label}</text>"#,
            legend_y - 10.0,
            x + 16.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axis_maxima() {
        assert_eq!(nice_max(0.7), 1.0);
        assert_eq!(nice_max(13.0), 20.0);
        assert_eq!(nice_max(51.0), 100.0);
        assert_eq!(nice_max(0.0), 1.0);
    }

    #[test]
    fn chart_has_one_row_per_layer_and_escapes_names() {
        let layers = vec![
            PlotLayer {
                name: "convs.1 <rate 6>".into(),
                atrous_ms: 2.0,
                torch_ms: Some(4.0),
                ceiling_percent: Some((55.0, "FMA")),
            },
            PlotLayer {
                name: "project".into(),
                atrous_ms: 1.0,
                torch_ms: None,
                ceiling_percent: None,
            },
        ];
        let svg = svg("ASPP", "lavapipe", &layers);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("convs.1 &lt;rate 6&gt;"));
        assert!(svg.contains("55.0% FMA"));
        assert_eq!(svg.matches(&format!("fill=\"{TORCH}\"")).count(), 2); // one bar + legend
    }
}
