//! `atrous bench peak`: this adapter's own ceilings, measured by the microbenchmarks in
//! shaders/peak_fma.wgsl (FMA throughput) and shaders/peak_copy.wgsl (copy bandwidth), each
//! swept over its launch parameters with the best reported. Every kernel's "% of ceiling" is
//! relative to these numbers, so they are written to be as fast as the adapter allows.
//!
//! For a CPU adapter (lavapipe, llvmpipe) the theoretical FMA figure is derived from the host:
//! cores x 2 FMA pipes x SIMD lanes of the adapter x 2 FLOPs x the core clock, the clock measured
//! by a chain of dependent integer adds (one cycle each). The host's own memcpy bandwidth on all
//! cores is reported beside the copy ceiling for the same reason.

use std::time::Instant;

use crate::context::Context;
use crate::error::Result;
use crate::pipeline::{shader, Launch, Shader};
use crate::tools::bench::timing::{time_segments, Clock, Segment, Stats, TimingOptions};

const FMA_SHADER: Shader = shader!("peak_fma", [Uniform, ReadWrite]);
const COPY_SHADER: Shader = shader!("peak_copy", [Uniform, ReadOnly, ReadWrite]);

/// `UNROLL` in shaders/peak_fma.wgsl.
const FMA_UNROLL: u64 = 8;
/// FLOPs of one vec4 FMA: 4 lanes x (multiply + add).
const FLOPS_PER_VEC4_FMA: u64 = 8;

// Mirrors `Params` in shaders/peak_fma.wgsl (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PeakFmaParams {
    iterations: u32,
    _pad: [u32; 3],
    a: [f32; 4],
    b: [f32; 4],
}

// Mirrors `Params` in shaders/peak_copy.wgsl (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PeakCopyParams {
    count: u32,
    invocations: u32,
    per_invocation: u32,
    steps: u32,
}

/// What to sweep and how to time it.
#[derive(Clone, Copy, Debug)]
pub struct PeakOptions {
    /// A smaller sweep (the configurations that win on lavapipe and on GPUs).
    pub quick: bool,
    pub timing: TimingOptions,
}

/// One point of the FMA sweep.
#[derive(Clone, Debug)]
pub struct FmaPoint {
    pub entry: &'static str,
    pub workgroup: u32,
    pub chains: u32,
    pub flops: u64,
    pub time: Stats,
    /// From the median time.
    pub gflops: f64,
}

/// One point of the copy sweep.
#[derive(Clone, Debug)]
pub struct CopyPoint {
    pub entry: &'static str,
    pub workgroup: u32,
    pub vec_per_step: u32,
    pub invocations: u32,
    /// Bytes read + bytes written.
    pub bytes: u64,
    pub time: Stats,
    /// From the median time.
    pub gbps: f64,
}

/// The host-derived theoretical FMA throughput of a CPU adapter.
#[derive(Clone, Debug)]
pub struct Theoretical {
    pub cpu: String,
    pub cores: usize,
    pub fma_pipes_per_core: u32,
    pub lanes: u32,
    pub ghz: f64,
    pub clock_source: String,
    pub gflops: f64,
}

/// Everything `atrous bench peak` measures.
#[derive(Clone, Debug)]
pub struct Peak {
    pub adapter: String,
    pub clock: Clock,
    pub fma: Vec<FmaPoint>,
    pub copy: Vec<CopyPoint>,
    pub theoretical: Option<Theoretical>,
    /// memcpy on all host cores over the same sizes, for a CPU adapter.
    pub host_memcpy_gbps: Option<f64>,
}

impl Peak {
    pub fn best_fma(&self) -> &FmaPoint {
        self.fma
            .iter()
            .max_by(|a, b| a.gflops.total_cmp(&b.gflops))
            .expect("the FMA sweep is not empty")
    }

    pub fn best_copy(&self) -> &CopyPoint {
        self.copy
            .iter()
            .max_by(|a, b| a.gbps.total_cmp(&b.gbps))
            .expect("the copy sweep is not empty")
    }

    pub fn to_json(&self) -> serde_json::Value {
        let fma = |p: &FmaPoint| {
            serde_json::json!({
                "entry": p.entry, "workgroup": p.workgroup, "chains": p.chains, "flops": p.flops,
                "gflops": p.gflops, "time": p.time.to_json(),
            })
        };
        let copy = |p: &CopyPoint| {
            serde_json::json!({
                "entry": p.entry, "workgroup": p.workgroup, "vec_per_step": p.vec_per_step,
                "invocations": p.invocations, "bytes": p.bytes, "gbps": p.gbps,
                "time": p.time.to_json(),
            })
        };
        serde_json::json!({
            "adapter": self.adapter,
            "clock": self.clock.describe(),
            "fma_gflops": self.best_fma().gflops,
            "copy_gbps": self.best_copy().gbps,
            "fma": { "best": fma(self.best_fma()), "sweep": self.fma.iter().map(fma).collect::<Vec<_>>() },
            "copy": { "best": copy(self.best_copy()), "sweep": self.copy.iter().map(copy).collect::<Vec<_>>() },
            "theoretical": self.theoretical.as_ref().map(|t| serde_json::json!({
                "cpu": t.cpu, "cores": t.cores, "fma_pipes_per_core": t.fma_pipes_per_core,
                "lanes": t.lanes, "ghz": t.ghz, "clock_source": t.clock_source,
                "gflops": t.gflops,
                "measured_fraction": self.best_fma().gflops / t.gflops,
            })),
            "host_memcpy_gbps": self.host_memcpy_gbps,
        })
    }

    /// The human-readable report.
    pub fn print(&self) {
        println!("adapter: {}", self.adapter);
        println!("clock: {}", self.clock.describe());
        println!("\nFMA throughput (vec4 FMA chains; 1 FMA = 2 FLOPs)");
        println!("entry                 workgroup  chains  median ms   min ms   max ms   GFLOP/s");
        for p in &self.fma {
            println!(
                "{:<20}  {:>9}  {:>6}  {:>9.3}  {:>7.3}  {:>7.3}  {:>8.1}",
                p.entry,
                p.workgroup,
                p.chains,
                p.time.median_ms,
                p.time.min_ms,
                p.time.max_ms,
                p.gflops
            );
        }
        println!("\ncopy bandwidth (vec4 loads and stores; bytes = read + write)");
        println!("entry          workgroup  vec/step  invocations  median ms   GB/s");
        for p in &self.copy {
            println!(
                "{:<13}  {:>9}  {:>8}  {:>11}  {:>9.3}  {:>5.1}",
                p.entry, p.workgroup, p.vec_per_step, p.invocations, p.time.median_ms, p.gbps
            );
        }
        let fma = self.best_fma();
        let copy = self.best_copy();
        println!(
            "\nFMA ceiling:  {:.1} GFLOP/s ({}, workgroup {}, {} vec4 chains)",
            fma.gflops, fma.entry, fma.workgroup, fma.chains
        );
        if let Some(t) = &self.theoretical {
            println!(
                "  theoretical {:.1} GFLOP/s = {} cores x {} FMA pipes x {} lanes x 2 FLOPs x {:.2} GHz \
                 ({}; {}); measured = {:.0}% of it",
                t.gflops,
                t.cores,
                t.fma_pipes_per_core,
                t.lanes,
                t.ghz,
                t.clock_source,
                t.cpu,
                100.0 * fma.gflops / t.gflops
            );
        }
        println!(
            "copy ceiling: {:.1} GB/s ({}, workgroup {}, {} vec4 per step, {} invocations, {} MiB each way)",
            copy.gbps,
            copy.entry,
            copy.workgroup,
            copy.vec_per_step,
            copy.invocations,
            (copy.bytes / 2) >> 20
        );
        if let Some(host) = self.host_memcpy_gbps {
            println!("  host memcpy on all cores, same sizes: {host:.1} GB/s");
        }
    }
}

/// Runs both sweeps.
pub fn measure(ctx: &Context, options: &PeakOptions) -> Result<Peak> {
    let fma = fma_sweep(ctx, options)?;
    let copy = copy_sweep(ctx, options)?;
    let is_cpu = ctx.adapter().device_type == wgpu::DeviceType::Cpu;
    let clock = if ctx.has_timestamps() && !options.timing.force_wall_clock {
        Clock::GpuTimestamps
    } else {
        Clock::WallClock
    };
    Ok(Peak {
        adapter: ctx.adapter().describe(),
        clock,
        theoretical: if is_cpu {
            theoretical(&ctx.adapter().name)
        } else {
            None
        },
        host_memcpy_gbps: is_cpu.then(|| host_memcpy_gbps(COPY_BYTES as usize)),
        fma,
        copy,
    })
}

/// The FMA ceiling from the configurations that win on lavapipe and GPUs (the quick sweep),
/// for reports that need the number without the whole sweep.
pub fn fma_ceiling(ctx: &Context, timing: &TimingOptions) -> Result<f64> {
    let options = PeakOptions {
        quick: true,
        timing: *timing,
    };
    let points = fma_sweep(ctx, &options)?;
    Ok(points.iter().map(|p| p.gflops).fold(0.0, f64::max))
}

/// FLOPs per timed run of one FMA configuration: big enough that launch overhead is noise
/// (~50 ms at 100 GFLOP/s).
const FMA_FLOPS_PER_RUN: u64 = 5_000_000_000;
/// Invocations in the FMA grid: many workgroups per core even at the largest workgroup.
const FMA_INVOCATIONS: u64 = 1 << 15;

fn fma_sweep(ctx: &Context, options: &PeakOptions) -> Result<Vec<FmaPoint>> {
    // The quick sweep keeps the winners of the full one: workgroup 8 with 12 chains on lavapipe,
    // 64 with 4-6 on GPUs. A quick ceiling that misses them would flatter every share of it.
    let (workgroups, chains): (&[u32], &[u32]) = if options.quick {
        (&[8, 64], &[4, 12])
    } else {
        (&[8, 64, 256], &[1, 2, 4, 6, 8, 12, 16])
    };
    let out = ctx.storage_buffer("peak_fma out", FMA_INVOCATIONS * 4)?;
    let mut points = Vec::new();
    for entry in ["peak_fma", "peak_fma_accumulate"] {
        for &workgroup in workgroups {
            for &chain_count in chains {
                // peak_fma_accumulate also advances y: one more vec4 FMA per step.
                let fmas_per_step = chain_count as u64 + (entry == "peak_fma_accumulate") as u64;
                let per_iteration =
                    FMA_INVOCATIONS * FMA_UNROLL * fmas_per_step * FLOPS_PER_VEC4_FMA;
                let iterations = FMA_FLOPS_PER_RUN.div_ceil(per_iteration).max(1);
                let params = PeakFmaParams {
                    iterations: iterations as u32,
                    _pad: [0; 3],
                    a: [1.0 - 1e-6; 4],
                    b: [1e-6; 4],
                };
                let launch = Launch::new(
                    ctx,
                    format!("{entry} wg{workgroup} chains{chain_count}"),
                    &FMA_SHADER,
                    entry,
                    &[
                        ("WORKGROUP", workgroup as f64),
                        ("CHAINS", chain_count as f64),
                    ],
                    &params,
                    &[&out],
                    FMA_INVOCATIONS / workgroup as u64,
                )?;
                let timings = time_segments(ctx, &[Segment::launch(&launch)], &options.timing)?;
                let time = timings.segments[0].1.clone();
                let flops = iterations * per_iteration;
                points.push(FmaPoint {
                    entry,
                    workgroup,
                    chains: chain_count,
                    flops,
                    gflops: flops as f64 / (time.median_ms * 1e6),
                    time,
                });
            }
        }
    }
    Ok(points)
}

/// Bytes in each of the copy's source and destination: 128 MiB, 4x a 32 MiB L3 and within
/// WebGPU's default 128 MiB storage-binding limit.
const COPY_BYTES: u64 = 128 << 20;

fn copy_sweep(ctx: &Context, options: &PeakOptions) -> Result<Vec<CopyPoint>> {
    let bytes = COPY_BYTES.min(ctx.max_binding_bytes() / 16 * 16);
    let count = (bytes / 16) as u32;
    let src = ctx.storage_buffer("peak_copy src", bytes)?;
    let dst = ctx.storage_buffer("peak_copy dst", bytes)?;
    // Fill the source so that no page is a shared zero page on the first read.
    ctx.queue.write_buffer(&src, 0, &vec![1u8; bytes as usize]);
    let configs: Vec<(&'static str, u32, u32, u32)> = if options.quick {
        vec![
            ("copy_strided", 256, 1, 1 << 12),
            ("copy_strided", 64, 4, 1 << 16),
            ("copy_blocked", 256, 4, 1 << 12),
        ]
    } else {
        let mut configs = Vec::new();
        for entry in ["copy_strided", "copy_blocked"] {
            for workgroup in [64, 256] {
                for vec_per_step in [1, 4, 8] {
                    for invocations in [1 << 12, 1 << 16] {
                        configs.push((entry, workgroup, vec_per_step, invocations));
                    }
                }
            }
        }
        configs
    };
    let mut points = Vec::new();
    for (entry, workgroup, vec_per_step, invocations) in configs {
        // Every count divides evenly: count is a power of two >= invocations * 8.
        let params = PeakCopyParams {
            count,
            invocations,
            per_invocation: count / invocations,
            steps: count / invocations / vec_per_step,
        };
        let launch = Launch::new(
            ctx,
            format!("{entry} wg{workgroup} vec{vec_per_step} inv{invocations}"),
            &COPY_SHADER,
            entry,
            &[
                ("WORKGROUP", workgroup as f64),
                ("VEC_PER_STEP", vec_per_step as f64),
            ],
            &params,
            &[&src, &dst],
            invocations as u64 / workgroup as u64,
        )?;
        let timings = time_segments(ctx, &[Segment::launch(&launch)], &options.timing)?;
        let time = timings.segments[0].1.clone();
        let moved = 2 * bytes;
        points.push(CopyPoint {
            entry,
            workgroup,
            vec_per_step,
            invocations,
            bytes: moved,
            gbps: moved as f64 / (time.median_ms * 1e6),
            time,
        });
    }
    Ok(points)
}

/// SIMD width of a CPU rasterizer from its adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
fn simd_bits(adapter_name: &str) -> Option<u32> {
    let at = adapter_name.find(" bits")?;
    adapter_name[..at]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn cpuinfo_field(cpuinfo: &str, key: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// cores x FMA pipes x lanes x 2 x clock, for a CPU adapter on this host.
fn theoretical(adapter_name: &str) -> Option<Theoretical> {
    let lanes = simd_bits(adapter_name)? / 32;
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo_field(&cpuinfo, "model name").unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().ok()?.get();
    // Every x86 core with FMA since Haswell and Zen 1 has two FMA-capable vector pipes; without
    // FMA a multiply and an add pipe give the same FLOPs per cycle.
    let fma_pipes_per_core = 2;
    let (ghz, clock_source) = match measured_core_ghz(cores) {
        Some(ghz) => (
            ghz,
            "clock measured with a dependent-add chain on every core".to_string(),
        ),
        None => (
            cpuinfo_field(&cpuinfo, "cpu MHz")?.parse::<f64>().ok()? / 1e3,
            "clock from /proc/cpuinfo".to_string(),
        ),
    };
    Some(Theoretical {
        cpu,
        cores,
        fma_pipes_per_core,
        lanes,
        ghz,
        clock_source,
        gflops: cores as f64 * fma_pipes_per_core as f64 * lanes as f64 * 2.0 * ghz,
    })
}

/// The core clock under load on all cores: each thread runs a chain of dependent one-cycle
/// integer adds and counts them per second; the best over three tries and all threads.
#[cfg(target_arch = "x86_64")]
fn measured_core_ghz(threads: usize) -> Option<f64> {
    fn one_thread() -> f64 {
        const ITERATIONS: u64 = 40_000_000;
        const ADDS_PER_ITERATION: f64 = 8.0;
        let mut best: f64 = 0.0;
        for _ in 0..3 {
            let mut x: u64 = 0;
            let mut n: u64 = ITERATIONS;
            let start = Instant::now();
            // SAFETY: register-only arithmetic; no memory, no stack.
            unsafe {
                std::arch::asm!(
                    "2:",
                    "add {x}, 1",
                    "add {x}, 1",
                    "add {x}, 1",
                    "add {x}, 1",
                    "add {x}, 1",
                    "add {x}, 1",
                    "add {x}, 1",
                    "add {x}, 1",
                    "dec {n}",
                    "jnz 2b",
                    x = inout(reg) x,
                    n = inout(reg) n,
                    options(nomem, nostack),
                );
            }
            let seconds = start.elapsed().as_secs_f64();
            std::hint::black_box((x, n));
            best = best.max(ITERATIONS as f64 * ADDS_PER_ITERATION / seconds / 1e9);
        }
        best
    }
    let handles: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(one_thread))
        .collect();
    let rates: Vec<f64> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    // The fastest thread is the one that ran uncontested: other processes only slow a thread.
    rates.into_iter().reduce(f64::max)
}

#[cfg(not(target_arch = "x86_64"))]
fn measured_core_ghz(_threads: usize) -> Option<f64> {
    None
}

/// memcpy of `bytes` split over all host cores, best of five, read + write bytes per second.
fn host_memcpy_gbps(bytes: usize) -> f64 {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let src = vec![1u8; bytes];
    let mut dst = vec![0u8; bytes];
    let chunk = bytes.div_ceil(threads);
    let mut best = 0.0f64;
    for _ in 0..5 {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for (d, s) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                scope.spawn(move || d.copy_from_slice(s));
            }
        });
        let seconds = start.elapsed().as_secs_f64();
        best = best.max(2.0 * bytes as f64 / seconds / 1e9);
    }
    std::hint::black_box(&dst);
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_width_from_the_llvmpipe_name() {
        assert_eq!(simd_bits("llvmpipe (LLVM 15.0.6, 256 bits)"), Some(256));
        assert_eq!(simd_bits("NVIDIA GeForce RTX 4090"), None);
    }
}
