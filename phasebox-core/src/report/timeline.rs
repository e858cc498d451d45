//! The timeline of one role as inline SVG (plotters): time since the role started on x
//! ([`axis`](super::axis)), one row per syscall on y, a mark per recorded call, phases
//! shaded. Phase names above the plot and tick times under it are laid out in lanes
//! ([`lanes`](super::lanes)) so that none covers another; they carry the classes
//! `phase-label`, `tick-label` and `axis-note`.
use std::fmt::Write as _;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::axis::{Axis, fmt_ns, span};
use super::{esc, lanes};
use crate::profile::Role;

/// Phase colours, in phase order (repeating).
pub const COLORS: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
];

pub fn color(i: usize) -> RGBColor {
    let (r, g, b) = COLORS[i % COLORS.len()];
    RGBColor(r, g, b)
}

/// Text safe inside SVG without escaping.
fn plain(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || " _-./:()".contains(*c))
        .collect()
}

/// Left of the plot: the margin and the syscall names.
const LEFT: u32 = 8 + 130;
/// Right of the plot.
const RIGHT: u32 = 48;
/// A line of labels, and their font.
const LINE: u32 = 16;
const FONT: f64 = 12.0;
/// Room left between two labels in one lane.
const GAP: f64 = 8.0;
const AXIS_NOTE: &str = "time since the role's first process started: not to one scale, ticks at each phase's first call";

/// A label: its text, colour (phase index, None for black), box and lane.
struct Label {
    text: String,
    phase: Option<usize>,
    left: f64,
    lane: usize,
}

/// Labels for `at` (x on 0..1, text, phase), anchored at `anchor`, inside `0..width`.
fn layout(at: Vec<(f64, String, Option<usize>)>, anchor: f64, width: u32) -> Vec<Label> {
    let (x0, x1) = (LEFT as f64, (width - RIGHT) as f64);
    let boxes: Vec<(f64, f64)> = at
        .iter()
        .map(|(x, text, _)| {
            let px = x0 + x * (x1 - x0);
            lanes::place(
                px,
                lanes::text_width(text, FONT),
                anchor,
                2.0,
                width as f64 - 2.0,
            )
        })
        .collect();
    let lane = lanes::assign(&boxes, GAP);
    at.into_iter()
        .zip(boxes.iter().zip(lane))
        .map(|((_, text, phase), (b, lane))| Label {
            text,
            phase,
            left: b.0,
            lane,
        })
        .collect()
}

/// Rows (syscalls by first call) and marks (ns, row, phase index) of `role`.
pub fn marks(role: &Role) -> (Vec<String>, Vec<(u64, usize, usize)>) {
    let mut first: Vec<(u64, &str)> = Vec::new();
    for ph in &role.phases {
        for (name, u) in &ph.syscalls {
            match first.iter_mut().find(|(_, n)| n == name) {
                Some(f) => f.0 = f.0.min(u.first_seen_ns),
                None => first.push((u.first_seen_ns, name)),
            }
        }
    }
    first.sort();
    let rows: Vec<String> = first.iter().map(|(_, n)| n.to_string()).collect();
    let mut out = Vec::new();
    for (pi, ph) in role.phases.iter().enumerate() {
        for (name, u) in &ph.syscalls {
            let row = rows.iter().position(|r| r == name).unwrap_or(0);
            out.extend(u.times_ns.iter().map(|&t| (t, row, pi)));
        }
    }
    (rows, out)
}

/// A timeline plotters could not draw.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the timeline of {role}")]
pub struct TimelineError {
    pub role: String,
    #[source]
    pub source: DrawError,
}

/// What drawing on the SVG string can fail with.
pub type DrawError = DrawingAreaErrorKind<std::io::Error>;

/// The SVG, or None when the profile kept no call times (merged profiles).
pub fn svg(role: &Role, width: u32) -> Result<Option<String>, TimelineError> {
    let (rows, marks) = marks(role);
    if marks.is_empty() {
        return Ok(None);
    }
    let axis = Axis::new(role);
    let names = role
        .phases
        .iter()
        .enumerate()
        .filter_map(|(i, p)| span(p).map(|s| (axis.x(s.0), p.name.clone(), Some(i))))
        .collect();
    let names = layout(names, 0.0, width);
    let ticks = axis.pos.iter().zip(&axis.at_ns);
    let ticks = layout(
        ticks.map(|(&x, &t)| (x, fmt_ns(t), None)).collect(),
        0.5,
        width,
    );
    let top = lanes::count(&names.iter().map(|l| l.lane).collect::<Vec<_>>()) as u32 * LINE + 10;
    let tick_lines = lanes::count(&ticks.iter().map(|l| l.lane).collect::<Vec<_>>()) as u32;
    let bottom = (tick_lines + 1) * LINE + 14;
    let plot = rows.len() as u32 * 13 + 10;
    let height = top + plot + bottom + 8;
    let mut buf = String::new();
    let frame = (top, bottom, width, height);
    let drawn = draw(&mut buf, role, &rows, &marks, &axis, frame);
    drawn.map_err(|source| TimelineError {
        role: role.name.clone(),
        source,
    })?;
    let mut text = String::new();
    for l in &names {
        label(&mut text, l, top - 6 - l.lane as u32 * LINE);
    }
    let axis_y = top + plot;
    for l in &ticks {
        label(&mut text, l, axis_y + 14 + l.lane as u32 * LINE);
    }
    let note_y = axis_y + 14 + tick_lines * LINE + 2;
    let _ = write!(
        text,
        "<text class=\"axis-note\" x=\"{}\" y=\"{note_y}\" text-anchor=\"middle\" \
         font-family=\"sans-serif\" font-size=\"{FONT}\">{AXIS_NOTE}</text>",
        (LEFT + width - RIGHT) / 2
    );
    let end = buf.rfind("</svg>").unwrap_or(buf.len());
    buf.insert_str(end, &text);
    Ok(Some(buf))
}

/// One label as SVG text, its baseline at `y`.
fn label(out: &mut String, l: &Label, y: u32) {
    let (class, fill) = match l.phase {
        Some(i) => {
            let (r, g, b) = COLORS[i % COLORS.len()];
            ("phase-label", format!("rgb({r},{g},{b})"))
        }
        None => ("tick-label", "black".to_string()),
    };
    let _ = write!(
        out,
        "<text class=\"{class}\" x=\"{:.1}\" y=\"{y}\" fill=\"{fill}\" font-family=\"sans-serif\" \
         font-size=\"{FONT}\">{}</text>",
        l.left,
        esc(&l.text)
    );
}

/// The chart: x from 0 to 1 (the axis), one row per syscall.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The plot in a frame (top and bottom margins, width, height); labels are added after.
fn draw(
    buf: &mut String,
    role: &Role,
    rows: &[String],
    marks: &[(u64, usize, usize)],
    axis: &Axis,
    (top, bottom, width, height): (u32, u32, u32, u32),
) -> Result<(), DrawError> {
    let n = rows.len();
    let root = SVGBackend::with_string(buf, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(8)
        .margin_top(top)
        .margin_right(RIGHT)
        .x_label_area_size(bottom)
        .y_label_area_size(LEFT - 8)
        .build_cartesian_2d(0f64..1f64, -0.5f64..(n as f64 - 0.5))?;
    draw_mesh(&mut chart, rows)?;
    draw_phases(&mut chart, role, axis, n)?;
    draw_marks(&mut chart, axis, marks, n)?;
    root.present()?;
    Ok(())
}

/// The syscall names down the y axis, first used on top.
fn draw_mesh(chart: &mut Chart, rows: &[String]) -> Result<(), DrawError> {
    let n = rows.len();
    let names: Vec<String> = rows.iter().map(|r| plain(r)).collect();
    let label = |v: &f64| {
        let r = v.round();
        if (v - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < n {
            names[n - 1 - r as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(n + 1)
        .y_label_formatter(&label)
        .label_style(("sans-serif", 12))
        .draw()
}

/// Each phase shaded in its colour over its span, and a line at every tick of the axis.
fn draw_phases(chart: &mut Chart, role: &Role, axis: &Axis, n: usize) -> Result<(), DrawError> {
    let top = n as f64 - 0.5;
    let spans = role
        .phases
        .iter()
        .enumerate()
        .filter_map(|(i, p)| span(p).map(|s| (i, s)));
    chart.draw_series(spans.map(|(i, (from, to))| {
        let (a, b) = (axis.x(from), axis.x(to));
        Rectangle::new(
            [(a, -0.5), (b.max(a + 0.004), top)],
            color(i).mix(0.14).filled(),
        )
    }))?;
    chart.draw_series(
        axis.pos
            .iter()
            .map(|&x| PathElement::new(vec![(x, -0.5), (x, top)], BLACK.mix(0.25).stroke_width(1))),
    )?;
    Ok(())
}

/// A mark per recorded call, in its row, in its phase's colour.
fn draw_marks(
    chart: &mut Chart,
    axis: &Axis,
    marks: &[(u64, usize, usize)],
    n: usize,
) -> Result<(), DrawError> {
    let y = |row: usize| (n - 1 - row) as f64; // first syscall on top
    chart.draw_series(marks.iter().map(|&(t, row, pi)| {
        let x = axis.x(t);
        PathElement::new(
            vec![(x, y(row) - 0.38), (x, y(row) + 0.38)],
            color(pi).stroke_width(1),
        )
    }))?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::profile::{Phase, SyscallUse};

    pub(crate) fn role() -> Role {
        let use_at = |times: &[u64]| SyscallUse {
            calls: times.len() as u64,
            first_seen_ns: times[0],
            times_ns: times.to_vec(),
            ..Default::default()
        };
        Role {
            container: None,
            name: "main".into(),
            processes: 1,
            phases: vec![
                Phase {
                    name: "exec".into(),
                    start_ns: 0,
                    end_ns: 5_000,
                    syscalls: [
                        ("execve".to_string(), use_at(&[0])),
                        ("brk".into(), use_at(&[5_000])),
                    ]
                    .into(),
                    ..Default::default()
                },
                Phase {
                    name: "serving".into(),
                    start_ns: 9_000,
                    end_ns: 2_000_000,
                    syscalls: [("brk".to_string(), use_at(&[9_000, 2_000_000]))].into(),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn rows_by_first_call_and_a_mark_per_time() {
        let (rows, marks) = marks(&role());
        assert_eq!(rows, ["execve", "brk"]);
        assert_eq!(marks.len(), 4);
        assert!(marks.contains(&(2_000_000, 1, 1)));
    }

    #[test]
    fn draws_marks_phases_and_labels_in_lanes() {
        let svg = svg(&role(), 800).unwrap().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        for text in ["execve", "brk"] {
            assert!(svg.contains(&format!(">\n{text}\n</text>")), "{text}");
        }
        for text in [">exec<", ">serving<", ">2.0 ms<", ">9 µs<"] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert_eq!(svg.matches("class=\"phase-label\"").count(), 2);
        assert_eq!(svg.matches("class=\"tick-label\"").count(), 3);
        assert!(svg.trim_end().ends_with("</text></svg>"));
        // four marks: polylines in the phases' colours
        assert!(svg.matches("<polyline").count() >= 4);
        let mut merged = role();
        merged
            .phases
            .iter_mut()
            .flat_map(|p| p.syscalls.values_mut())
            .for_each(|u| u.times_ns.clear());
        assert!(super::svg(&merged, 800).unwrap().is_none());
    }

    #[test]
    fn the_plot_sits_where_the_labels_expect_it() {
        // The labels are placed from LEFT and RIGHT: the first tick line must be drawn there.
        let svg = svg(&role(), 800).unwrap().unwrap();
        let x0 = format!("points=\"{LEFT},");
        assert!(svg.contains(&x0), "no tick line at x={LEFT}");
        let x1 = format!("points=\"{},", 800 - RIGHT - 1);
        let x1b = format!("points=\"{},", 800 - RIGHT);
        assert!(
            svg.contains(&x1) || svg.contains(&x1b),
            "no tick line at the right end"
        );
    }
}
