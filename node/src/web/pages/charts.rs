//! Charts as inline SVG drawn on the server: a line over a series and horizontal share bars.
//! They scale to their box (a `viewBox`, no fixed size), so they fit a phone's width.

use maud::{html, Markup};

/// Drawing width and height (the `viewBox`).
const W: f64 = 400.0;
const H: f64 = 150.0;
/// The plot area inside it: left, right, top, bottom.
const LEFT: f64 = 58.0;
const RIGHT: f64 = 394.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 128.0;

/// A line chart of `points` (x, y) titled `title`; `fmt_y` and `fmt_x` write the axis labels.
/// Fewer than two points draw a note instead.
pub fn line(
    id: &str,
    title: &str,
    points: &[(f64, f64)],
    fmt_x: &dyn Fn(f64) -> String,
    fmt_y: &dyn Fn(f64) -> String,
) -> Markup {
    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (x0, x1) = bounds(finite.iter().map(|p| p.0));
    let (y0, y1) = bounds(finite.iter().map(|p| p.1));
    // From zero unless every value is far above it, so small changes are not magnified.
    let y0 = if y0 >= 0.0 && y0 < (y1 - y0) * 4.0 {
        0.0
    } else {
        y0
    };
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0).max(f64::MIN_POSITIVE) * (RIGHT - LEFT);
    let sy = |y: f64| BOTTOM - (y - y0) / (y1 - y0).max(f64::MIN_POSITIVE) * (BOTTOM - TOP);
    let path: String = finite
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
        .collect::<Vec<_>>()
        .join(" ");
    let last = finite.last().map(|p| fmt_y(p.1)).unwrap_or_default();
    html! {
        figure.chart id=(id) {
            figcaption { (title) @if !last.is_empty() { " " span.now { "now " (last) } } }
            svg viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(title) {
                title { (title) }
                line.axis x1=(LEFT) y1=(BOTTOM) x2=(RIGHT) y2=(BOTTOM) {}
                line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(BOTTOM) {}
                @if finite.len() < 2 {
                    text x=(W / 2.0) y=(H / 2.0) text-anchor="middle" { "not enough data yet" }
                } @else {
                    text.label x=(LEFT - 4.0) y=(TOP + 8.0) text-anchor="end" { (fmt_y(y1)) }
                    text.label x=(LEFT - 4.0) y=(BOTTOM) text-anchor="end" { (fmt_y(y0)) }
                    text.label x=(LEFT) y=(H - 6.0) text-anchor="start" { (fmt_x(x0)) }
                    text.label x=(RIGHT) y=(H - 6.0) text-anchor="end" { (fmt_x(x1)) }
                    polyline.series points=(path) {}
                }
            }
        }
    }
}

/// Horizontal bars: each row's share of `total`, labelled.
pub fn shares(id: &str, title: &str, rows: &[(String, usize)], total: usize) -> Markup {
    let row_h = 20.0;
    let height = (rows.len().max(1) as f64) * row_h + 8.0;
    let bar_left = 170.0;
    let bar_w = W - bar_left - 52.0;
    html! {
        figure.chart id=(id) {
            figcaption { (title) }
            svg viewBox={ "0 0 " (W) " " (height) } role="img" aria-label=(title) {
                title { (title) }
                @if rows.is_empty() || total == 0 {
                    text x=(W / 2.0) y=(row_h) text-anchor="middle" { "no blocks yet" }
                }
                @for (i, (label, count)) in rows.iter().enumerate() {
                    @let y = 4.0 + i as f64 * row_h;
                    @let share = *count as f64 / total.max(1) as f64;
                    g {
                        title { (label) ": " (count) " of " (total) " blocks" }
                        text.label x=(bar_left - 6.0) y=(y + 15.0) text-anchor="end" { (short(label)) }
                        rect.bar x=(bar_left) y=(y + 3.0) width=(format!("{:.1}", (share * bar_w).max(1.0))) height=(row_h - 6.0) {}
                        text.label x=(bar_left + share * bar_w + 6.0) y=(y + 15.0) { (format!("{:.1}%", share * 100.0)) }
                    }
                }
            }
        }
    }
}

/// A long label cut in the middle (addresses stay recognisable by both ends).
fn short(label: &str) -> String {
    let chars: Vec<char> = label.chars().collect();
    if chars.len() <= 20 {
        return label.to_string();
    }
    let head: String = chars[..10].iter().collect();
    let tail: String = chars[chars.len() - 6..].iter().collect();
    format!("{head}\u{2026}{tail}")
}

/// The smallest and largest value, never equal (a flat series gets a unit of room).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo <= f64::EPSILON * hi.abs() {
        // Flat: the value in the middle of a range half its size either side (0 to 1 for 0).
        let room = if hi == 0.0 { 0.5 } else { 0.5 * hi.abs() };
        return (lo - room, hi + room);
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_their_points_and_labels_escaped() {
        let fmt = |v: f64| format!("{v:.0}");
        let svg = line(
            "c",
            "Interval <s>",
            &[(1.0, 10.0), (2.0, 20.0), (3.0, f64::NAN)],
            &fmt,
            &fmt,
        )
        .into_string();
        assert!(svg.contains("Interval &lt;s&gt;"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(
            svg.contains(&format!("{LEFT:.1},")),
            "the first point at the left"
        );
        let empty = line("c", "t", &[(1.0, 1.0)], &fmt, &fmt).into_string();
        assert!(empty.contains("not enough data yet"));
        let bars = shares(
            "m",
            "Miners",
            &[
                ("r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg".into(), 3),
                ("b".into(), 1),
            ],
            4,
        )
        .into_string();
        assert!(bars.contains("75.0%") && bars.contains("25.0%"), "{bars}");
        assert!(bars.contains("r6Ku1CCtg8\u{2026}CSRwpg"), "{bars}");
        assert_eq!(bounds([5.0, 5.0].into_iter()), (2.5, 7.5));
        assert_eq!(bounds([4e-10, 4e-10].into_iter()), (2e-10, 6e-10));
        assert_eq!(bounds([0.0].into_iter()), (-0.5, 0.5));
        assert_eq!(bounds(std::iter::empty()), (0.0, 1.0));
    }
}
