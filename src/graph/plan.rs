//! [`Plan`]: a graph prepared for one input shape. Building a plan allocates the input, output
//! and intermediate tensors and prepares every dispatch (pipeline + bind group) once; running it
//! records those dispatches into one compute pass of one encoder and submits it, with no
//! host-side rebuilding. Graphs keep their plans in a [`PlanCache`] keyed by input shape.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::context::Context;
use crate::error::{Error, Result, Shape};
use crate::pipeline::Launch;
use crate::tensor::Tensor;

/// A graph's dispatches for one input shape, with the tensors they read and write.
///
/// The plan's buffers are reused by every run: read the output before running it again.
pub struct Plan {
    input: Tensor,
    output: Tensor,
    launches: Vec<Launch>,
    /// The layer each launch belongs to, named by PyTorch module path (`convs.1`, `project`).
    layer_names: Vec<String>,
    /// Intermediate tensors (pooled maps, the concat buffer, ...), owned here so they live as
    /// long as the dispatches that use them.
    intermediates: Vec<Tensor>,
}

/// Collects the dispatches and intermediate tensors of a plan while a graph records itself.
pub(crate) struct PlanBuilder {
    launches: Vec<Launch>,
    layer_names: Vec<String>,
    intermediates: Vec<Tensor>,
    /// Module path of the graph being recorded (`0.` for an ASPP inside a DeepLabHead).
    prefix: String,
}

impl PlanBuilder {
    /// Adds a dispatch of `layer` (a PyTorch module path relative to the current graph).
    pub fn push(&mut self, layer: &str, launch: Launch) {
        self.launches.push(launch);
        self.layer_names.push(format!("{}{layer}", self.prefix));
    }

    /// Records a sub-graph whose layers live under `prefix` (e.g. `0.`).
    pub fn nested<T>(
        &mut self,
        prefix: &str,
        record: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        let outer = self.prefix.len();
        self.prefix.push_str(prefix);
        let result = record(self);
        self.prefix.truncate(outer);
        result
    }

    /// Keeps intermediate tensors alive for the plan's lifetime.
    pub fn keep(&mut self, tensors: impl IntoIterator<Item = Tensor>) {
        self.intermediates.extend(tensors);
    }
}

impl Plan {
    /// Allocates the input and output of a plan and lets `record` add the dispatches that read
    /// the one and write the other.
    pub(crate) fn build(
        ctx: &Context,
        graph: &str,
        input_shape: [usize; 4],
        output_shape: [usize; 4],
        record: impl FnOnce(&Tensor, &Tensor, &mut PlanBuilder) -> Result<()>,
    ) -> Result<Plan> {
        let input = Tensor::empty(ctx, &format!("{graph} input"), input_shape)?;
        let output = Tensor::empty(ctx, &format!("{graph} output"), output_shape)?;
        let mut builder = PlanBuilder {
            launches: Vec::new(),
            layer_names: Vec::new(),
            intermediates: Vec::new(),
            prefix: String::new(),
        };
        record(&input, &output, &mut builder)?;
        Ok(Plan {
            input,
            output,
            launches: builder.launches,
            layer_names: builder.layer_names,
            intermediates: builder.intermediates,
        })
    }

    /// The tensor the graph reads: fill it with [`Plan::write_input`] or a buffer copy.
    pub fn input(&self) -> &Tensor {
        &self.input
    }

    /// The tensor the graph writes.
    pub fn output(&self) -> &Tensor {
        &self.output
    }

    /// The prepared dispatches, in recording order.
    pub fn launches(&self) -> &[Launch] {
        &self.launches
    }

    /// The layers in recording order: each a PyTorch module path and its consecutive launches.
    pub fn layers(&self) -> Vec<(&str, &[Launch])> {
        let mut layers: Vec<(&str, &[Launch])> = Vec::new();
        let mut start = 0;
        for end in 1..=self.launches.len() {
            if end == self.launches.len() || self.layer_names[end] != self.layer_names[start] {
                layers.push((&self.layer_names[start], &self.launches[start..end]));
                start = end;
            }
        }
        layers
    }

    /// Bytes of GPU memory held by the plan's own tensors (input, output, intermediates).
    pub fn bytes(&self) -> u64 {
        self.input.bytes()
            + self.output.bytes()
            + self.intermediates.iter().map(Tensor::bytes).sum::<u64>()
    }

    /// Uploads `data` (NCHW, contiguous, the plan's input shape) into the input tensor. The
    /// write is ordered before the next submission.
    pub fn write_input(&self, ctx: &Context, data: &[f32]) -> Result<()> {
        if data.len() != self.input.len() {
            return Err(Error::shape(
                self.input.name(),
                format!(
                    "{} values for shape {}",
                    self.input.len(),
                    Shape(self.input.shape())
                ),
                format!("{} values", data.len()),
            ));
        }
        ctx.queue()
            .write_buffer(self.input.buffer(), 0, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Records every dispatch into one compute pass of `encoder`.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("atrous graph"),
            ..Default::default()
        });
        for launch in &self.launches {
            launch.record(&mut pass);
        }
    }

    /// Records the plan into a new encoder and submits it (asynchronously: reading the output
    /// waits for it).
    pub fn run(&self, ctx: &Context) -> Result<()> {
        let mut encoder = ctx.encoder();
        self.record(&mut encoder);
        ctx.submit(self.output.name(), encoder)
    }
}

/// Plans of one graph, one per input shape, built on first use.
#[derive(Default)]
pub(crate) struct PlanCache {
    plans: Mutex<HashMap<[usize; 4], Arc<Plan>>>,
}

impl PlanCache {
    pub fn get_or_build(
        &self,
        shape: [usize; 4],
        build: impl FnOnce() -> Result<Plan>,
    ) -> Result<Arc<Plan>> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(plan) = plans.get(&shape) {
            return Ok(plan.clone());
        }
        let plan = Arc::new(build()?);
        plans.insert(shape, plan.clone());
        Ok(plan)
    }
}
