//! The timeline of one role as inline SVG (plotters): time since the role started on x, one
//! row per syscall on y, a mark per recorded call, phases shaded and named.
//!
//! Startup phases last microseconds and serving lasts seconds, so x is piecewise linear: the
//! stretch between two phase starts gets a width partly proportional to its duration and
//! partly equal for all, and each phase start is a labelled tick with its real time.
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

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

/// Human time, from ns.
pub fn fmt_ns(ns: u64) -> String {
    let t = ns as f64;
    if t < 1e6 {
        format!("{:.0} µs", t / 1e3)
    } else if t < 1e9 {
        format!("{:.1} ms", t / 1e6)
    } else {
        format!("{:.2} s", t / 1e9)
    }
}

/// Text safe inside SVG without escaping.
fn plain(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || " _-./:()".contains(*c))
        .collect()
}

/// The piecewise-linear x axis: breakpoints (ns) and where each sits on 0..1.
#[derive(Debug)]
pub struct Axis {
    at_ns: Vec<u64>,
    pos: Vec<f64>,
}

impl Axis {
    /// Breakpoints at every phase start and at the last call.
    pub fn new(role: &Role) -> Axis {
        let mut at_ns: Vec<u64> = role.phases.iter().map(|p| p.start_ns).collect();
        at_ns.push(0);
        at_ns.push(role.phases.iter().map(|p| p.end_ns).max().unwrap_or(0));
        at_ns.sort_unstable();
        at_ns.dedup();
        if at_ns.len() == 1 {
            at_ns.push(at_ns[0] + 1);
        }
        let total = (at_ns[at_ns.len() - 1] - at_ns[0]).max(1) as f64;
        let k = (at_ns.len() - 1) as f64;
        let widths: Vec<f64> = at_ns
            .windows(2)
            .map(|w| 0.5 * (w[1] - w[0]) as f64 / total + 0.5 / k)
            .collect();
        let mut pos = vec![0.0];
        for w in widths {
            pos.push(pos[pos.len() - 1] + w);
        }
        Axis { at_ns, pos }
    }

    /// Where `t` ns falls on 0..1.
    pub fn x(&self, t: u64) -> f64 {
        let j = match self.at_ns.partition_point(|&b| b <= t) {
            0 => return 0.0,
            j if j >= self.at_ns.len() => return 1.0,
            j => j - 1,
        };
        let (a, b) = (self.at_ns[j], self.at_ns[j + 1]);
        self.pos[j] + (self.pos[j + 1] - self.pos[j]) * (t - a) as f64 / (b - a) as f64
    }
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
    let height = (rows.len() as u32 * 13 + 110).max(200);
    let mut buf = String::new();
    draw(&mut buf, role, &rows, &marks, (width, height)).map_err(|source| TimelineError {
        role: role.name.clone(),
        source,
    })?;
    Ok(Some(buf))
}

/// The chart: x from 0 to 1 (the axis), one row per syscall.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn draw(
    buf: &mut String,
    role: &Role,
    rows: &[String],
    marks: &[(u64, usize, usize)],
    size: (u32, u32),
) -> Result<(), DrawError> {
    let n = rows.len();
    let axis = Axis::new(role);
    let root = SVGBackend::with_string(buf, size).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(8)
        .margin_top(30)
        .margin_right(48)
        .x_label_area_size(44)
        .y_label_area_size(130)
        .build_cartesian_2d(0f64..1f64, -0.5f64..(n as f64 - 0.5))?;
    draw_mesh(&mut chart, rows)?;
    draw_phases(&mut chart, role, &axis, n)?;
    draw_marks(&mut chart, &axis, marks, n)?;
    draw_labels(&root, &chart, role, &axis)?;
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
        .x_desc("time since the role started (ticks at phase starts; each stretch widened to be readable)")
        .label_style(("sans-serif", 14))
        .draw()
}

/// Each phase shaded in its colour, and a line at every tick of the axis.
fn draw_phases(chart: &mut Chart, role: &Role, axis: &Axis, n: usize) -> Result<(), DrawError> {
    let top = n as f64 - 0.5;
    chart.draw_series(role.phases.iter().enumerate().map(|(i, p)| {
        let (a, b) = (axis.x(p.start_ns), axis.x(p.end_ns));
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

/// Real times under the ticks and phase names over the plot, staggered on two lines.
fn draw_labels(
    root: &DrawingArea<SVGBackend, Shift>,
    chart: &Chart,
    role: &Role,
    axis: &Axis,
) -> Result<(), DrawError> {
    let area = chart.plotting_area();
    let (xr, yr) = area.get_pixel_range();
    let px = |x: f64| xr.start + (x * (xr.end - xr.start) as f64) as i32;
    let small = ("sans-serif", 13).into_font();
    for (k, (&t, &x)) in axis.at_ns.iter().zip(&axis.pos).enumerate() {
        let style = small.color(&BLACK);
        root.draw(&Text::new(
            fmt_ns(t),
            (px(x), yr.end + 4 + 12 * (k as i32 % 2)),
            style,
        ))?;
    }
    for (k, (i, p)) in role.phases.iter().enumerate().enumerate() {
        let style = small.color(&color(i));
        let at = (px(axis.x(p.start_ns)), yr.start - 26 + 12 * (k as i32 % 2));
        root.draw(&Text::new(plain(&p.name), at, style))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Phase, SyscallUse};

    fn role() -> Role {
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
    fn draws_marks_phases_and_names() {
        let svg = svg(&role(), 800).unwrap().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        for text in ["execve", "brk", "exec", "serving", "2.0 ms", "9 µs"] {
            assert!(
                svg.contains(&format!(">\n{text}\n</text>")),
                "{text} missing"
            );
        }
        // four marks: polylines in the phases' colours
        assert!(svg.matches("<polyline").count() >= 4);
        let mut merged = role();
        merged
            .phases
            .iter_mut()
            .flat_map(|p| p.syscalls.values_mut())
            .for_each(|u| u.times_ns.clear());
        assert!(svg_none(&merged));
    }

    #[test]
    fn axis_is_monotone_and_gives_every_stretch_room() {
        let a = Axis::new(&role());
        assert_eq!(a.at_ns, [0, 9_000, 2_000_000]);
        assert_eq!((a.x(0), a.x(2_000_000)), (0.0, 1.0));
        // 9 µs of 2 ms still gets over a quarter of the width
        assert!(a.x(9_000) > 0.25 && a.x(9_000) < 0.5, "{}", a.x(9_000));
        let xs: Vec<f64> = (0..200).map(|i| a.x(i * 10_000)).collect();
        assert!(xs.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(a.x(5_000_000), 1.0);
    }

    fn svg_none(r: &Role) -> bool {
        svg(r, 800).unwrap().is_none()
    }
}
