//! Timing of recorded GPU work, for the ceilings, the per-layer tables and the benches.
//!
//! The unit of timing is a [`Segment`]: a closure that records dispatches into one compute pass
//! (usually one [`Launch`], or all the launches of a layer). A list of segments is recorded into
//! one command encoder, one compute pass per segment, and submitted; that is one *run*. After
//! `warmup` runs that are not counted (pipeline compilation, first-touch page faults, caches),
//! `runs` runs are timed and summarised as median, min and max.
//!
//! Two clocks:
//! - [`Clock::GpuTimestamps`], where the device has timestamp queries: each pass carries
//!   `ComputePassTimestampWrites` (beginning and end), resolved after the run. Each segment gets
//!   its own time from one submission, and the total is the first beginning to the last end.
//! - [`Clock::WallClock`] otherwise (or when asked for): each segment is submitted alone and the
//!   host waits for the device; the time is submit to sync. It includes the submission and the
//!   wait, tens of microseconds, which only matters for tiny kernels.
//!
//! Every run is also timed on the wall clock from submit to sync, whatever the clock, so a
//! report can show both.

use std::time::Instant;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::pipeline::Launch;

/// Which clock produced a [`Timings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Timestamps written by the device at the beginning and end of each compute pass.
    GpuTimestamps,
    /// Host `Instant` from submission to the end of a wait for the device, one segment at a time.
    WallClock,
}

impl Clock {
    pub fn describe(self) -> &'static str {
        match self {
            Clock::GpuTimestamps => "GPU timestamp queries (per compute pass)",
            Clock::WallClock => "wall clock, submit to device sync (per segment)",
        }
    }
}

/// How to time: counts of runs and which clock to prefer.
#[derive(Clone, Copy, Debug)]
pub struct TimingOptions {
    /// Runs before the timed ones, not counted.
    pub warmup: usize,
    /// Timed runs (at least 1; reports use >= 5).
    pub runs: usize,
    /// Use the wall clock even where timestamps are available.
    pub force_wall_clock: bool,
}

impl Default for TimingOptions {
    fn default() -> Self {
        TimingOptions {
            warmup: 2,
            runs: 7,
            force_wall_clock: false,
        }
    }
}

/// Median, min and max of the timed runs, in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub samples_ms: Vec<f64>,
}

impl Stats {
    /// Summarises `samples_ms` (not empty). The median of an even count is the mean of the two
    /// middle samples.
    pub fn from_samples(samples_ms: Vec<f64>) -> Stats {
        assert!(!samples_ms.is_empty(), "no timing samples");
        let mut sorted = samples_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median_ms = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            0.5 * (sorted[mid - 1] + sorted[mid])
        };
        Stats {
            median_ms,
            min_ms: sorted[0],
            max_ms: sorted[sorted.len() - 1],
            samples_ms,
        }
    }

    /// `"12.34 ms (min 12.01, max 13.50)"`.
    pub fn describe(&self) -> String {
        format!(
            "{:.3} ms (min {:.3}, max {:.3})",
            self.median_ms, self.min_ms, self.max_ms
        )
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "median_ms": self.median_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "samples_ms": self.samples_ms,
        })
    }
}

/// Work recorded into one compute pass, timed as a unit.
pub struct Segment<'a> {
    pub label: String,
    record: Box<dyn Fn(&mut wgpu::ComputePass<'_>) + 'a>,
}

impl<'a> Segment<'a> {
    /// A segment from any closure that records into a compute pass.
    pub fn new(label: impl Into<String>, record: impl Fn(&mut wgpu::ComputePass<'_>) + 'a) -> Self {
        Segment {
            label: label.into(),
            record: Box::new(record),
        }
    }

    /// One prepared dispatch, labelled with the launch's label.
    pub fn launch(launch: &'a Launch) -> Self {
        Segment::new(launch.label.clone(), move |pass| launch.record(pass))
    }

    /// Several dispatches in one pass, timed together.
    pub fn launches(label: impl Into<String>, launches: &'a [&'a Launch]) -> Self {
        Segment::new(label, move |pass| {
            for launch in launches {
                launch.record(pass);
            }
        })
    }
}

/// The result of [`time_segments`].
#[derive(Clone, Debug)]
pub struct Timings {
    pub clock: Clock,
    /// One entry per segment, in order.
    pub segments: Vec<(String, Stats)>,
    /// With timestamps: first pass beginning to last pass end. With the wall clock: the whole
    /// list submitted as one encoder, submit to sync.
    pub total: Stats,
    /// Every timed run on the host clock, submit to sync, whatever `clock` is.
    pub wall_total: Stats,
}

/// Times `segments` as described in the module documentation.
pub fn time_segments(
    ctx: &Context,
    segments: &[Segment],
    options: &TimingOptions,
) -> Result<Timings> {
    if segments.is_empty() {
        return Err(Error::invalid("timing", "no segments to time"));
    }
    if options.runs == 0 {
        return Err(Error::invalid("timing", "runs must be >= 1"));
    }
    if ctx.has_timestamps() && !options.force_wall_clock {
        time_with_timestamps(ctx, segments, options)
    } else {
        time_with_wall_clock(ctx, segments, options)
    }
}

/// Times each launch as its own segment.
pub fn time_launches(
    ctx: &Context,
    launches: &[&Launch],
    options: &TimingOptions,
) -> Result<Timings> {
    let segments: Vec<Segment> = launches.iter().map(|l| Segment::launch(l)).collect();
    time_segments(ctx, &segments, options)
}

/// Records every segment into its own pass of `encoder`, with timestamp writes when given.
fn record(
    encoder: &mut wgpu::CommandEncoder,
    segments: &[Segment],
    queries: Option<&wgpu::QuerySet>,
) {
    for (i, segment) in segments.iter().enumerate() {
        let timestamp_writes = queries.map(|query_set| wgpu::ComputePassTimestampWrites {
            query_set,
            beginning_of_pass_write_index: Some(2 * i as u32),
            end_of_pass_write_index: Some(2 * i as u32 + 1),
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&segment.label),
            timestamp_writes,
        });
        (segment.record)(&mut pass);
    }
}

/// Submits `encoder` and waits; returns the wall time in milliseconds.
fn submit_and_wait(ctx: &Context, during: &str, encoder: wgpu::CommandEncoder) -> Result<f64> {
    let start = Instant::now();
    ctx.submit(during, encoder)?;
    ctx.sync()?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

fn time_with_timestamps(
    ctx: &Context,
    segments: &[Segment],
    options: &TimingOptions,
) -> Result<Timings> {
    let count = 2 * segments.len() as u32;
    if count > wgpu::QUERY_SET_MAX_QUERIES {
        return Err(Error::invalid(
            "timing",
            format!(
                "{} segments need {count} timestamp queries, more than wgpu's {}",
                segments.len(),
                wgpu::QUERY_SET_MAX_QUERIES
            ),
        ));
    }
    let bytes = count as u64 * 8;
    let (query_set, resolved) = ctx.scoped("creating timestamp queries", || {
        let query_set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("timing"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timing resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Ok((query_set, resolved))
    })?;
    let period_ns = ctx.queue.get_timestamp_period() as f64;
    let mut per_segment = vec![Vec::with_capacity(options.runs); segments.len()];
    let mut totals = Vec::with_capacity(options.runs);
    let mut walls = Vec::with_capacity(options.runs);
    for run in 0..options.warmup + options.runs {
        let mut encoder = ctx.encoder();
        record(&mut encoder, segments, Some(&query_set));
        encoder.resolve_query_set(&query_set, 0..count, &resolved, 0);
        let wall = submit_and_wait(ctx, &segments[0].label, encoder)?;
        let raw = ctx.read_buffer("timestamps", &resolved, bytes)?;
        if run < options.warmup {
            continue;
        }
        let ticks: &[u64] = bytemuck::cast_slice(&raw);
        let ms = |from: u64, to: u64| to.saturating_sub(from) as f64 * period_ns * 1e-6;
        for (i, samples) in per_segment.iter_mut().enumerate() {
            samples.push(ms(ticks[2 * i], ticks[2 * i + 1]));
        }
        totals.push(ms(ticks[0], ticks[count as usize - 1]));
        walls.push(wall);
    }
    Ok(Timings {
        clock: Clock::GpuTimestamps,
        segments: segments
            .iter()
            .zip(per_segment)
            .map(|(s, samples)| (s.label.clone(), Stats::from_samples(samples)))
            .collect(),
        total: Stats::from_samples(totals),
        wall_total: Stats::from_samples(walls),
    })
}

fn time_with_wall_clock(
    ctx: &Context,
    segments: &[Segment],
    options: &TimingOptions,
) -> Result<Timings> {
    let mut per_segment = vec![Vec::with_capacity(options.runs); segments.len()];
    let mut totals = Vec::with_capacity(options.runs);
    // Make sure nothing submitted earlier is counted in the first sample.
    ctx.sync()?;
    for run in 0..options.warmup + options.runs {
        let mut encoder = ctx.encoder();
        record(&mut encoder, segments, None);
        let total = submit_and_wait(ctx, &segments[0].label, encoder)?;
        let mut each = Vec::with_capacity(segments.len());
        if segments.len() == 1 {
            each.push(total);
        } else {
            for segment in segments {
                let mut encoder = ctx.encoder();
                record(&mut encoder, std::slice::from_ref(segment), None);
                each.push(submit_and_wait(ctx, &segment.label, encoder)?);
            }
        }
        if run < options.warmup {
            continue;
        }
        totals.push(total);
        for (samples, ms) in per_segment.iter_mut().zip(each) {
            samples.push(ms);
        }
    }
    let total = Stats::from_samples(totals);
    Ok(Timings {
        clock: Clock::WallClock,
        segments: segments
            .iter()
            .zip(per_segment)
            .map(|(s, samples)| (s.label.clone(), Stats::from_samples(samples)))
            .collect(),
        wall_total: total.clone(),
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let odd = Stats::from_samples(vec![3.0, 1.0, 2.0]);
        assert_eq!((odd.median_ms, odd.min_ms, odd.max_ms), (2.0, 1.0, 3.0));
        let even = Stats::from_samples(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!(even.median_ms, 2.5);
    }
}
