//! Where labels go so that none covers another: each label gets the first lane (line of text)
//! where it clears the labels already placed, measured with a width estimate that errs wide.

/// A label's estimated width in pixels at `font_px`: wider than sans-serif fonts draw it
/// (DejaVu Sans, the widest common one, averages about 0.6 em for digits and lower case).
pub fn text_width(text: &str, font_px: f64) -> f64 {
    text.chars().count() as f64 * font_px * 0.64
}

/// A label's left and right edges: `anchor` at `x` (0 its start, 0.5 its middle), moved
/// inside `min..max` when it would stick out.
pub fn place(x: f64, width: f64, anchor: f64, min: f64, max: f64) -> (f64, f64) {
    let left = (x - anchor * width).min(max - width).max(min);
    (left, left + width)
}

/// The lane of each box (left, right), in the order given: boxes are taken from left to
/// right and each goes into the first lane whose last box ends `gap` before it starts.
pub fn assign(boxes: &[(f64, f64)], gap: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| boxes[a].0.total_cmp(&boxes[b].0));
    let mut ends: Vec<f64> = Vec::new();
    let mut lane = vec![0; boxes.len()];
    for i in order {
        let (left, right) = boxes[i];
        let k = match ends.iter().position(|&e| e + gap <= left) {
            Some(k) => k,
            None => {
                ends.push(f64::NEG_INFINITY);
                ends.len() - 1
            }
        };
        ends[k] = right;
        lane[i] = k;
    }
    lane
}

/// How many lanes `assign` used.
pub fn count(lanes: &[usize]) -> usize {
    lanes.iter().max().map_or(0, |m| m + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(a: (f64, f64), b: (f64, f64), gap: f64) -> bool {
        a.0 < b.1 + gap && b.0 < a.1 + gap
    }

    #[test]
    fn boxes_in_one_lane_never_touch() {
        // nginx's master: phases starting close together with long names.
        let starts = [0.0, 40.0, 55.0, 60.0, 300.0, 320.0, 330.0, 900.0];
        let boxes: Vec<(f64, f64)> = starts
            .iter()
            .map(|&x| {
                place(
                    x,
                    text_width("creating-and-configuring-sockets", 12.0),
                    0.0,
                    0.0,
                    1000.0,
                )
            })
            .collect();
        let lanes = assign(&boxes, 6.0);
        for i in 0..boxes.len() {
            for j in i + 1..boxes.len() {
                if lanes[i] == lanes[j] {
                    assert!(!overlap(boxes[i], boxes[j], 6.0), "{i} and {j}");
                }
            }
        }
        assert!(count(&lanes) > 1 && count(&lanes) < boxes.len());
        // Far apart: one lane.
        let far = [(0.0, 10.0), (50.0, 60.0), (100.0, 110.0)];
        assert_eq!(assign(&far, 6.0), [0, 0, 0]);
        assert_eq!(count(&[]), 0);
    }

    #[test]
    fn a_label_stays_inside_its_range() {
        assert_eq!(place(990.0, 100.0, 0.0, 0.0, 1000.0), (900.0, 1000.0));
        assert_eq!(place(10.0, 100.0, 0.5, 0.0, 1000.0), (0.0, 100.0));
        assert_eq!(place(500.0, 100.0, 0.5, 0.0, 1000.0), (450.0, 550.0));
        assert!(text_width("exec", 12.0) > 4.0 * 12.0 * 0.55);
    }
}
