//! Compute pipelines, built once per (shader, entry point, override constants) and cached on the
//! [`Context`]; and [`Launch`], one prepared dispatch (pipeline + bind group + grid) that can be
//! recorded any number of times without host-side rebuilding.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::context::Context;
use crate::error::{Error, Result};

/// A WGSL source file of `shaders/`, embedded at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
    /// The kind of each binding of group 0, in binding order.
    pub bindings: &'static [Binding],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binding {
    Uniform,
    ReadOnly,
    ReadWrite,
}

/// `shader!("conv2d", [Uniform, ReadOnly, ...])` embeds shaders/conv2d.wgsl;
/// `shader!("conv2d_subgroup", prelude ["subgroup_tile", ...], [...])` puts
/// shaders/subgroup_tile.wgsl, ... (code shared by several kernels; WGSL has no includes) in
/// front of it.
macro_rules! shader {
    ($name:literal, [$($binding:ident),* $(,)?]) => {
        $crate::pipeline::Shader {
            name: $name,
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $name, ".wgsl")),
            bindings: &[$($crate::pipeline::Binding::$binding),*],
        }
    };
    ($name:literal, prelude [$($prelude:literal),+], [$($binding:ident),* $(,)?]) => {
        $crate::pipeline::Shader {
            name: $name,
            source: concat!(
                $(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $prelude, ".wgsl")), "\n",)+
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $name, ".wgsl"))
            ),
            bindings: &[$($crate::pipeline::Binding::$binding),*],
        }
    };
}
pub(crate) use shader;

/// Cache key: the shader, its entry point and its override constants (as exact bit patterns).
type Key = (&'static str, &'static str, Vec<(&'static str, u64)>);

#[derive(Default)]
pub struct PipelineCache {
    modules: Mutex<HashMap<&'static str, Arc<wgpu::ShaderModule>>>,
    layouts: Mutex<HashMap<&'static str, Arc<wgpu::BindGroupLayout>>>,
    pipelines: Mutex<HashMap<Key, Arc<wgpu::ComputePipeline>>>,
}

impl PipelineCache {
    /// Number of pipelines compiled so far (used by tests to prove reuse).
    pub fn len(&self) -> usize {
        self.pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Context {
    fn bind_group_layout(&self, shader: &Shader) -> Arc<wgpu::BindGroupLayout> {
        let mut layouts = self
            .pipelines
            .layouts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        layouts
            .entry(shader.name)
            .or_insert_with(|| {
                let entries: Vec<_> = shader
                    .bindings
                    .iter()
                    .enumerate()
                    .map(|(index, kind)| wgpu::BindGroupLayoutEntry {
                        binding: index as u32,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: match kind {
                                Binding::Uniform => wgpu::BufferBindingType::Uniform,
                                Binding::ReadOnly => {
                                    wgpu::BufferBindingType::Storage { read_only: true }
                                }
                                Binding::ReadWrite => {
                                    wgpu::BufferBindingType::Storage { read_only: false }
                                }
                            },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    })
                    .collect();
                Arc::new(
                    self.device
                        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                            label: Some(shader.name),
                            entries: &entries,
                        }),
                )
            })
            .clone()
    }

    /// Returns the pipeline for `entry` of `shader` with the given override constants, compiling
    /// it on first use.
    pub(crate) fn pipeline(
        &self,
        shader: &Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let key: Key = (
            shader.name,
            entry,
            constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
        );
        if let Some(pipeline) = self
            .pipelines
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(pipeline.clone());
        }
        let pipeline = self.scoped(&format!("compiling {}::{entry}", shader.name), || {
            let module = self
                .pipelines
                .modules
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(shader.name)
                .or_insert_with(|| {
                    Arc::new(
                        self.device
                            .create_shader_module(wgpu::ShaderModuleDescriptor {
                                label: Some(shader.name),
                                source: wgpu::ShaderSource::Wgsl(shader.source.into()),
                            }),
                    )
                })
                .clone();
            let layout = self.bind_group_layout(shader);
            let pipeline_layout =
                self.device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(shader.name),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
            Ok(Arc::new(self.device.create_compute_pipeline(
                &wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                },
            )))
        })?;
        self.pipelines
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, pipeline.clone());
        Ok(pipeline)
    }
}

/// Largest workgroup count per grid dimension (WebGPU's `maxComputeWorkgroupsPerDimension`).
pub const MAX_WORKGROUPS_PER_DIM: u32 = 65535;

/// Splits a 1-D count of workgroups over a 2-D grid when it exceeds the per-dimension limit.
/// Kernels recover the linear workgroup index as `wid.x + wid.y * num_workgroups.x` and return
/// early past the end (the grid may overshoot by less than one row).
pub fn grid(workgroups: u64, max_per_dim: u32) -> Result<(u32, u32)> {
    let max = max_per_dim as u64;
    if workgroups <= max {
        return Ok((workgroups.max(1) as u32, 1));
    }
    let rows = workgroups.div_ceil(max);
    if rows > max {
        return Err(Error::invalid(
            "dispatch",
            format!("{workgroups} workgroups exceed a {max}x{max} grid"),
        ));
    }
    Ok((workgroups.div_ceil(rows) as u32, rows as u32))
}

/// What one dispatch has to do, counted by the op that prepares it: the basis of the
/// benchmarks' GFLOP/s, GB/s and share of the adapter's ceilings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cost {
    /// Every multiply-add of the op's definition, 2 FLOPs each (padding taps included).
    pub nominal_flops: f64,
    /// Only the arithmetic on real data: for a convolution, taps that read an input pixel.
    pub useful_flops: f64,
    /// Compulsory traffic: every input, weight and output byte read or written once.
    pub bytes: f64,
    /// The input and output shapes, e.g. `1x512x33x33 -> 1x256x33x33`.
    pub shape: String,
    /// The op's parameters, e.g. `3x3 dil=6 pad=6`.
    pub params: String,
}

/// `NxCxHxW`.
pub(crate) fn shape_text(shape: [usize; 4]) -> String {
    format!("{}x{}x{}x{}", shape[0], shape[1], shape[2], shape[3])
}

/// One prepared kernel dispatch, or a short sequence of them ([`Launch::then`]): everything
/// needed to record it again, built once.
pub struct Launch {
    pub label: String,
    /// What the dispatch computes and moves (for the benchmarks).
    pub cost: Cost,
    steps: Vec<Dispatch>,
    /// Buffers private to the launch (a tap-pruned kernel's table of pixel runs, Winograd's
    /// tile table).
    owned: Vec<wgpu::Buffer>,
}

struct Dispatch {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
    /// Keeps the parameter buffer alive as long as the bind group.
    _params: wgpu::Buffer,
}

impl Launch {
    /// Builds the dispatch of `entry` in `shader`: `params` is the kernel's uniform struct,
    /// `buffers` the storage bindings after it (binding 1, 2, ...), `workgroups` the 1-D count.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new<P: bytemuck::Pod>(
        ctx: &Context,
        label: String,
        shader: &Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        params: &P,
        buffers: &[&wgpu::Buffer],
        workgroups: u64,
    ) -> Result<Launch> {
        let pipeline = ctx.pipeline(shader, entry, constants)?;
        let grid = grid(
            workgroups,
            ctx.limits().max_compute_workgroups_per_dimension,
        )?;
        let params_buffer = ctx.uniform(&format!("{label} params"), params)?;
        let layout = ctx.bind_group_layout(shader);
        let bind_group = ctx.scoped(&format!("binding {label}"), || {
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: params_buffer.as_entire_binding(),
            }];
            for (index, buffer) in buffers.iter().enumerate() {
                entries.push(wgpu::BindGroupEntry {
                    binding: index as u32 + 1,
                    resource: buffer.as_entire_binding(),
                });
            }
            Ok(ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&label),
                layout: &layout,
                entries: &entries,
            }))
        })?;
        Ok(Launch {
            label,
            cost: Cost::default(),
            steps: vec![Dispatch {
                pipeline,
                bind_group,
                grid,
                _params: params_buffer,
            }],
            owned: Vec::new(),
        })
    }

    /// Appends `next`'s dispatches (and the buffers it owns) after this launch's: one launch,
    /// one label and cost, several dispatches in order.
    pub(crate) fn then(mut self, next: Launch) -> Launch {
        self.steps.extend(next.steps);
        self.owned.extend(next.owned);
        self
    }

    /// Keeps `buffer` alive as long as the launch (an intermediate only it uses).
    pub(crate) fn owning(mut self, buffer: wgpu::Buffer) -> Launch {
        self.owned.push(buffer);
        self
    }

    /// Sets what the dispatch computes and moves.
    pub(crate) fn with_cost(mut self, cost: Cost) -> Launch {
        self.cost = cost;
        self
    }

    /// Records the dispatch into an open compute pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for step in &self.steps {
            pass.set_pipeline(&step.pipeline);
            pass.set_bind_group(0, &step.bind_group, &[]);
            pass.dispatch_workgroups(step.grid.0, step.grid.1, 1);
        }
    }

    /// Records `launches` into one compute pass of a new encoder and submits it.
    pub fn run_all(ctx: &Context, launches: &[&Launch]) -> Result<()> {
        let mut encoder = ctx.encoder();
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            for launch in launches {
                launch.record(&mut pass);
            }
        }
        let during = launches
            .first()
            .map(|l| l.label.clone())
            .unwrap_or_default();
        ctx.submit(&during, encoder)
    }

    /// The workgroup grid of the last (main) dispatch, (x, y).
    pub fn grid(&self) -> (u32, u32) {
        self.steps.last().expect("a launch has a dispatch").grid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_stays_one_dimensional_below_the_limit() {
        assert_eq!(grid(1, 65535).unwrap(), (1, 1));
        assert_eq!(grid(65535, 65535).unwrap(), (65535, 1));
    }

    #[test]
    fn grid_splits_over_rows_and_covers_every_workgroup() {
        for count in [65536u64, 65535 * 3 + 1, 1 << 24, 4_000_000_007 / 1000] {
            let (x, y) = grid(count, 65535).unwrap();
            assert!(x <= 65535 && y <= 65535);
            assert!(x as u64 * y as u64 >= count);
            // Less than one row of overshoot.
            assert!((x as u64) * (y as u64) - count < x as u64);
        }
    }

    #[test]
    fn grid_rejects_more_than_the_square() {
        assert!(grid(65535u64 * 65535 + 1, 65535).is_err());
    }
}
