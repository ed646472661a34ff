//! Where and when each video source of a composition is shown: the timeline (with `Trim`, the
//! spans where no source has media are cut out) and, for each region of the layout, which of
//! its sources are visible at each moment (`reuse`) and in which cell of its grid. Pure
//! arithmetic; `compose` turns the placements into an ffmpeg filter graph.

use crate::domain::video_layout::{Region, Resolution, Reuse, MAX_GRID};

/// A source's media on the output timeline, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clip {
    /// Which input it is (the caller's index).
    pub input: usize,
    pub start: f64,
    pub end: f64,
}

/// A source shown in one rectangle for one span of the output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub input: usize,
    pub from: f64,
    pub to: f64,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// The output timeline: the real-time spans kept, in order (seconds on the caller's scale).
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pieces: Vec<(f64, f64)>,
}

impl Timeline {
    /// With `trim`, the union of the sources' spans; otherwise `whole` (the room's span, or the
    /// sources' from first to last when it has none).
    pub fn new(spans: &[(f64, f64)], trim: bool, whole: Option<(f64, f64)>) -> Timeline {
        let mut spans: Vec<(f64, f64)> = spans.iter().copied().filter(|(s, e)| e > s).collect();
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        let first = spans.first().map_or(0.0, |s| s.0);
        let last = spans.iter().map(|s| s.1).fold(first, f64::max);
        if !trim {
            let (from, to) = whole.unwrap_or((first, last));
            return Timeline {
                pieces: vec![(from.min(first), to.max(last))],
            };
        }
        let mut pieces: Vec<(f64, f64)> = Vec::new();
        for (s, e) in spans {
            match pieces.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => pieces.push((s, e)),
            }
        }
        Timeline { pieces }
    }

    /// The output's length.
    pub fn duration(&self) -> f64 {
        self.pieces.iter().map(|(s, e)| e - s).sum()
    }

    /// Where real time `t` falls on the output (a time in a cut span maps to where the cut is).
    pub fn map(&self, t: f64) -> f64 {
        let mut out = 0.0;
        for &(s, e) in &self.pieces {
            if t < s {
                return out;
            }
            if t <= e {
                return out + (t - s);
            }
            out += e - s;
        }
        out
    }
}

/// The rectangle a region covers in a picture of `res` (`0`: as far as the picture goes).
pub fn region_rect(r: &Region, res: Resolution) -> (u32, u32, u32, u32) {
    let w = if r.width == 0 {
        res.width - r.x_pos
    } else {
        r.width
    };
    let h = if r.height == 0 {
        res.height - r.y_pos
    } else {
        r.height
    };
    (r.x_pos, r.y_pos, w, h)
}

/// Where one region shows its `clips` (the sources it selects, oldest first) over time.
pub fn place_region(r: &Region, res: Resolution, clips: &[Clip]) -> Vec<Placement> {
    let (rx, ry, rw, rh) = region_rect(r, res);
    let max_cols = if r.max_columns == 0 {
        MAX_GRID
    } else {
        r.max_columns
    };
    let max_rows = if r.max_rows == 0 {
        MAX_GRID
    } else {
        r.max_rows
    };
    let capacity = usable_cells(max_cols, max_rows, &r.cells_excluded);
    let mut order: Vec<&Clip> = clips.iter().collect();
    order.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.input.cmp(&b.input)));
    let mut cuts: Vec<f64> = order.iter().flat_map(|c| [c.start, c.end]).collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let mut placements: Vec<Placement> = Vec::new();
    for span in cuts.windows(2) {
        let (a, b) = (span[0], span[1]);
        let active: Vec<&Clip> = order
            .iter()
            .copied()
            .filter(|c| c.start <= a && c.end >= b)
            .collect();
        let visible: Vec<&Clip> = match r.reuse {
            // The first sources to appear keep the cells; later ones never show.
            Reuse::None => active
                .into_iter()
                .filter(|c| order.iter().position(|o| o.input == c.input) < Some(capacity))
                .collect(),
            Reuse::ShowOldest => active.into_iter().take(capacity).collect(),
            Reuse::ShowNewest => {
                let skip = active.len().saturating_sub(capacity);
                active.into_iter().skip(skip).collect()
            }
        };
        if visible.is_empty() {
            continue;
        }
        let Some((cols, rows)) = grid(visible.len(), rw, rh, max_cols, max_rows, &r.cells_excluded)
        else {
            continue;
        };
        let cells = (0..cols * rows).filter(|i| !r.cells_excluded.contains(i));
        for (clip, cell) in visible.iter().zip(cells) {
            let (c, row) = (cell % cols, cell / cols);
            let x0 = rx + c * rw / cols;
            let y0 = ry + row * rh / rows;
            let p = Placement {
                input: clip.input,
                from: a,
                to: b,
                x: x0,
                y: y0,
                width: rx + (c + 1) * rw / cols - x0,
                height: ry + (row + 1) * rh / rows - y0,
            };
            // The same source in the same cell just before: one placement, longer.
            match placements.iter_mut().rev().find(|q| q.input == p.input) {
                Some(q)
                    if q.to == a
                        && (q.x, q.y, q.width, q.height) == (p.x, p.y, p.width, p.height) =>
                {
                    q.to = b
                }
                _ => placements.push(p),
            }
        }
    }
    placements
}

/// The cells of a `cols` x `rows` grid not excluded.
fn usable_cells(cols: u32, rows: u32, excluded: &[u32]) -> usize {
    (0..cols * rows).filter(|i| !excluded.contains(i)).count()
}

/// The grid that shows `n` sources in a `w` x `h` region largest: the columns and rows (within
/// the maxima, enough cells besides the excluded ones) that give a 4:3 picture the largest
/// cell, the fewer cells and then the wider grid on a tie.
fn grid(
    n: usize,
    w: u32,
    h: u32,
    max_cols: u32,
    max_rows: u32,
    excluded: &[u32],
) -> Option<(u32, u32)> {
    let mut best: Option<(u64, u32, u32)> = None;
    for cols in 1..=max_cols {
        let Some(rows) = (1..=max_rows).find(|&r| usable_cells(cols, r, excluded) >= n) else {
            continue;
        };
        // The scale a 4:3 picture gets in a cell, in 1/1000.
        let scale = (u64::from(w / cols) * 1000 / 4).min(u64::from(h / rows) * 1000 / 3);
        let better = match best {
            None => true,
            Some((s, c, r)) => {
                scale > s
                    || (scale == s && (cols * rows < c * r || (cols * rows == c * r && cols > c)))
            }
        };
        if better {
            best = Some((scale, cols, rows));
        }
    }
    best.map(|(_, c, r)| (c, r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::video_layout::parse_layout;

    fn region(json: &str) -> Region {
        parse_layout(&format!(r#"{{"r": {json}}}"#), Resolution::DEFAULT).unwrap()["r"].clone()
    }

    fn clip(input: usize, start: f64, end: f64) -> Clip {
        Clip { input, start, end }
    }

    #[test]
    fn trim_cuts_the_spans_without_media() {
        let t = Timeline::new(&[(10.0, 20.0), (15.0, 25.0), (40.0, 50.0)], true, None);
        assert_eq!(t.duration(), 25.0);
        assert_eq!(t.map(10.0), 0.0);
        assert_eq!(t.map(40.0), 15.0);
        assert_eq!(t.map(30.0), 15.0);
        let whole = Timeline::new(&[(10.0, 20.0), (40.0, 50.0)], false, Some((5.0, 55.0)));
        assert_eq!((whole.duration(), whole.map(10.0)), (50.0, 5.0));
    }

    #[test]
    fn two_sources_sit_side_by_side_then_one_fills_the_region() {
        let r = region(r#"{"video_sources": ["*"]}"#);
        let p = place_region(
            &r,
            Resolution::DEFAULT,
            &[clip(0, 0.0, 10.0), clip(1, 0.0, 5.0)],
        );
        assert_eq!(
            p,
            vec![
                Placement {
                    input: 0,
                    from: 0.0,
                    to: 5.0,
                    x: 0,
                    y: 0,
                    width: 320,
                    height: 480
                },
                Placement {
                    input: 1,
                    from: 0.0,
                    to: 5.0,
                    x: 320,
                    y: 0,
                    width: 320,
                    height: 480
                },
                Placement {
                    input: 0,
                    from: 5.0,
                    to: 10.0,
                    x: 0,
                    y: 0,
                    width: 640,
                    height: 480
                },
            ]
        );
    }

    #[test]
    fn reuse_decides_who_is_shown_when_cells_run_out() {
        let clips = [clip(0, 0.0, 10.0), clip(1, 2.0, 10.0), clip(2, 4.0, 10.0)];
        let shown = |reuse: &str, clips: &[Clip]| {
            let r = region(&format!(
                r#"{{"video_sources": ["*"], "max_columns": 1, "max_rows": 2, "reuse": "{reuse}"}}"#
            ));
            let mut at_5: Vec<usize> = place_region(&r, Resolution::DEFAULT, clips)
                .iter()
                .filter(|p| p.from <= 5.0 && p.to > 5.0)
                .map(|p| p.input)
                .collect();
            at_5.sort();
            at_5
        };
        assert_eq!(shown("show_oldest", &clips), vec![0, 1]);
        assert_eq!(shown("show_newest", &clips), vec![1, 2]);
        // The first source ended: show_oldest gives its cell to the waiting one, none does not.
        let ended = [clip(0, 0.0, 3.0), clip(1, 2.0, 10.0), clip(2, 4.0, 10.0)];
        assert_eq!(shown("show_oldest", &ended), vec![1, 2]);
        assert_eq!(shown("none", &ended), vec![1]);
    }

    #[test]
    fn excluded_cells_stay_empty_and_regions_keep_their_place() {
        let r = region(
            r#"{"video_sources": ["*"], "x_pos": 320, "width": 320, "max_columns": 2, "max_rows": 1, "cells_excluded": [0]}"#,
        );
        let p = place_region(&r, Resolution::DEFAULT, &[clip(0, 0.0, 1.0)]);
        assert_eq!((p[0].x, p[0].width), (480, 160));
        assert_eq!(p.len(), 1);
    }
}
