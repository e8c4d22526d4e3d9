//! The throughput graph: an inline SVG, one line per series (messages applied per second per
//! subscriber app, rows relayed per second per publisher), over the samples kept.

use std::collections::BTreeSet;

use maud::{Markup, html};

use crate::history::{KEEP, Point, Series};

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;
const COLOURS: [&str; 6] = [
    "#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2",
];

fn label(series: &Series) -> String {
    match series {
        Series::Applied(app) => format!("{app}: applied/s"),
        Series::Relayed(app) => format!("{app}: relayed/s"),
    }
}

pub fn throughput(points: &[Point]) -> Markup {
    let series: BTreeSet<&Series> = points.iter().flat_map(|p| p.rates.keys()).collect();
    let top = points
        .iter()
        .flat_map(|p| p.rates.values())
        .fold(1.0_f64, |a, b| a.max(*b));
    let x = |i: usize| WIDTH * i as f64 / (KEEP - 1) as f64;
    let y = |v: f64| HEIGHT - HEIGHT * v / top;
    // The newest sample at the right edge.
    let offset = KEEP.saturating_sub(points.len());
    html! {
        figure.graph {
            svg #throughput viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) preserveAspectRatio="none" role="img" aria-label="throughput" {
                @for (n, s) in series.iter().enumerate() {
                    polyline fill="none" stroke=(COLOURS[n % COLOURS.len()]) stroke-width="1.5"
                        points=(points.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x(i + offset), y(p.rates.get(*s).copied().unwrap_or(0.0)))).collect::<Vec<_>>().join(" ")) {}
                }
            }
            figcaption {
                "max " (format!("{top:.1}")) "/s · "
                @for (n, s) in series.iter().enumerate() {
                    span style=(format!("color:{}", COLOURS[n % COLOURS.len()])) { "■ " (label(s)) " " }
                }
                @if series.is_empty() { "no samples yet" }
            }
        }
    }
}
