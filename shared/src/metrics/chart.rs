//! The arithmetic of the admin pages' SVG charts: "nice" axis ticks, linear scales, time ticks
//! on whole minutes, hours or days, compact labels, the SVG path of a series with gaps, and the
//! point under the pointer. No drawing: the app renders what these return.

/// A linear map from a data interval onto a pixel interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Data interval start.
    pub from: f64,
    /// Data interval end.
    pub to: f64,
    /// Pixel at `from`.
    pub start: f64,
    /// Pixel at `to`.
    pub end: f64,
}

impl Scale {
    /// Maps a value (an empty data interval maps everything to the middle).
    pub fn at(&self, value: f64) -> f64 {
        let span = self.to - self.from;
        if span == 0.0 {
            return (self.start + self.end) / 2.0;
        }
        self.start + (value - self.from) / span * (self.end - self.start)
    }

    /// Maps a pixel back to a value.
    pub fn invert(&self, pixel: f64) -> f64 {
        let span = self.end - self.start;
        if span == 0.0 {
            return self.from;
        }
        self.from + (pixel - self.start) / span * (self.to - self.from)
    }
}

/// A step of 1, 2 or 5 times a power of ten, near `span / count`.
fn nice_step(span: f64, count: usize) -> f64 {
    let raw = span / count.max(1) as f64;
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// About `count` evenly spaced round values covering `0..=max` (a count axis starts at zero),
/// the last one at or above `max`. An all-zero series still gets an axis to 1.
pub fn ticks(max: f64, count: usize) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let step = nice_step(max, count);
    let last = (max / step).ceil() as usize;
    (0..=last).map(|i| i as f64 * step).collect()
}

/// A short label for an axis value: `950`, `1.2k`, `3.4M`; fractions only below 10.
pub fn label(value: f64) -> String {
    let abs = value.abs();
    let (scaled, suffix) = if abs >= 1e9 {
        (value / 1e9, "G")
    } else if abs >= 1e6 {
        (value / 1e6, "M")
    } else if abs >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let text = if scaled.fract() == 0.0 || scaled.abs() >= 10.0 {
        format!("{scaled:.0}")
    } else if scaled.abs() >= 1.0 || !suffix.is_empty() {
        format!("{scaled:.1}")
    } else {
        format!("{scaled:.2}")
    };
    // "0.50" reads as "0.5", "2.0k" as "2k".
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{suffix}")
}

/// A byte count for people: `812 B`, `4.1 kB`, `2.3 MB`.
pub fn bytes(value: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut scaled = value as f64;
    let mut unit = 0;
    while scaled >= 1000.0 && unit < UNITS.len() - 1 {
        scaled /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} B")
    } else {
        format!("{scaled:.1} {}", UNITS[unit])
    }
}

/// A duration for people, from ms: `0 ms`, `850 ms`, `1.2 s`, `2.5 min`.
pub fn millis(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{:.1} min", ms / 60_000.0)
    }
}

/// Time ticks between `from` and `to` (ms since the epoch): on whole 5/15/30 minutes, hours
/// (1, 3, 6, 12) or days, about `count` of them.
pub fn time_ticks(from: i64, to: i64, count: usize) -> Vec<i64> {
    const MIN: i64 = 60_000;
    const STEPS: [i64; 10] = [
        5 * MIN,
        15 * MIN,
        30 * MIN,
        60 * MIN,
        3 * 60 * MIN,
        6 * 60 * MIN,
        12 * 60 * MIN,
        24 * 60 * MIN,
        2 * 24 * 60 * MIN,
        7 * 24 * 60 * MIN,
    ];
    if to <= from {
        return Vec::new();
    }
    let want = (to - from) / count.max(1) as i64;
    let step = STEPS
        .iter()
        .copied()
        .find(|s| *s >= want)
        .unwrap_or(STEPS[STEPS.len() - 1]);
    let mut at = super::floor_to(from, step);
    if at < from {
        at += step;
    }
    let mut out = Vec::new();
    while at <= to {
        out.push(at);
        at += step;
    }
    out
}

/// The SVG path (`M x y L x y …`) of a series, broken where a value is missing so a gap is not
/// drawn as a line through it. `xs` and `ys` map an index and a value to pixels.
pub fn path(values: &[Option<f64>], x: impl Fn(usize) -> f64, y: impl Fn(f64) -> f64) -> String {
    let mut out = String::new();
    let mut pen_down = false;
    for (i, value) in values.iter().enumerate() {
        match value {
            Some(v) => {
                out.push_str(if pen_down { " L" } else { " M" });
                out.push_str(&format!("{:.1} {:.1}", x(i), y(*v)));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    out.trim_start().to_owned()
}

/// The index of the point nearest to pixel `px` on a scale of `len` points, if any.
pub fn nearest(px: f64, len: usize, x: &Scale) -> Option<usize> {
    if len == 0 {
        return None;
    }
    let index = x.invert(px).round();
    Some(index.clamp(0.0, (len - 1) as f64) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_start_at_zero_and_reach_the_maximum() {
        assert_eq!(ticks(10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(7.0, 4), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(ticks(1234.0, 4), vec![0.0, 500.0, 1000.0, 1500.0]);
        assert_eq!(
            ticks(0.0, 4),
            vec![0.0, 0.5, 1.0],
            "an empty series still has an axis"
        );
        assert_eq!(ticks(f64::NAN, 4), vec![0.0, 0.5, 1.0]);
        for max in [0.3, 3.0, 42.0, 999.0, 12_345.0, 7e6] {
            let t = ticks(max, 5);
            assert!(*t.last().unwrap() >= max, "{max}: {t:?}");
            assert!(t.len() <= 11, "{max}: {t:?}");
        }
    }

    #[test]
    fn labels_are_short_and_readable() {
        assert_eq!(label(0.0), "0");
        assert_eq!(label(0.25), "0.25");
        assert_eq!(label(2.5), "2.5");
        assert_eq!(label(950.0), "950");
        assert_eq!(label(1_200.0), "1.2k");
        assert_eq!(label(15_000.0), "15k");
        assert_eq!(label(3_400_000.0), "3.4M");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(4_100), "4.1 kB");
        assert_eq!(bytes(2_300_000), "2.3 MB");
        assert_eq!(millis(850.0), "850 ms");
        assert_eq!(millis(1_240.0), "1.2 s");
        assert_eq!(label(0.5), "0.5");
    }

    #[test]
    fn scales_map_both_ways_and_a_flat_interval_maps_to_the_middle() {
        let s = Scale {
            from: 0.0,
            to: 100.0,
            start: 200.0,
            end: 0.0,
        };
        assert_eq!(s.at(0.0), 200.0);
        assert_eq!(s.at(25.0), 150.0);
        assert_eq!(s.invert(150.0), 25.0);
        let flat = Scale {
            from: 5.0,
            to: 5.0,
            start: 0.0,
            end: 10.0,
        };
        assert_eq!(flat.at(5.0), 5.0);
    }

    #[test]
    fn time_ticks_fall_on_whole_periods_inside_the_range() {
        let hour = 3_600_000;
        let from = 10 * hour + 7 * 60_000;
        let to = from + 24 * hour;
        let t = time_ticks(from, to, 6);
        assert!(t.iter().all(|at| *at >= from && *at <= to));
        assert!(t.iter().all(|at| at % (6 * hour) == 0), "{t:?}");
        assert!((4..=8).contains(&t.len()), "{t:?}");
        let t = time_ticks(from, from + hour, 4);
        assert!(t.iter().all(|at| at % (15 * 60_000) == 0), "{t:?}");
        assert!(time_ticks(to, from, 4).is_empty());
    }

    #[test]
    fn a_path_breaks_at_missing_values() {
        let values = [Some(1.0), Some(2.0), None, Some(4.0), Some(5.0)];
        let p = path(&values, |i| i as f64 * 10.0, |v| 100.0 - v);
        assert_eq!(p, "M0.0 99.0 L10.0 98.0 M30.0 96.0 L40.0 95.0");
        assert_eq!(path(&[None, None], |i| i as f64, |v| v), "");
    }

    #[test]
    fn the_point_under_the_pointer_is_the_nearest_index_clamped_to_the_series() {
        let x = Scale {
            from: 0.0,
            to: 59.0,
            start: 40.0,
            end: 630.0,
        };
        assert_eq!(nearest(40.0, 60, &x), Some(0));
        assert_eq!(nearest(630.0, 60, &x), Some(59));
        assert_eq!(nearest(46.0, 60, &x), Some(1));
        assert_eq!(nearest(-500.0, 60, &x), Some(0));
        assert_eq!(nearest(9_999.0, 60, &x), Some(59));
        assert_eq!(nearest(100.0, 0, &x), None);
    }
}
