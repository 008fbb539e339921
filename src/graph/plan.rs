//! [`Plan`]: a graph prepared for one input shape. Building a plan runs the memory planner
//! (`memory.rs`), allocates its buffers, and prepares every dispatch (pipeline + bind group)
//! once; running it records those dispatches into one compute pass of one encoder and submits
//! it, with no host-side rebuilding.

use std::sync::Mutex;

use crate::context::Context;
use crate::error::{Error, Result, Shape};
use crate::graph::builder::{Graph, Op, Value};
use crate::graph::memory::{self, Location, MemoryPlan};
use crate::ops::conv2d::Epilogue;
use crate::ops::{self, pack_channels};
use crate::pipeline::Launch;
use crate::tensor::{OutputSlice, Tensor};

/// A graph's dispatches for one input shape, with the buffers they read and write.
///
/// The plan's buffers are reused by every run; [`Plan::execute`] runs it and reads its outputs
/// under a lock, so threads sharing a plan take turns.
pub struct Plan {
    input: Tensor,
    outputs: Vec<(String, Tensor)>,
    launches: Vec<Launch>,
    /// The layer each launch belongs to, named by PyTorch module path (`convs.1`, `project`).
    layer_names: Vec<String>,
    shapes: Vec<[usize; 4]>,
    memory: MemoryPlan,
    run_lock: Mutex<()>,
}

impl Plan {
    /// Plans `graph` for inputs of `input_shape` on `ctx`.
    pub fn build(ctx: &Context, graph: &Graph, input_shape: [usize; 4]) -> Result<Plan> {
        let (shapes, memory) = graph.memory_plan(ctx, input_shape)?;
        let nodes = graph.nodes();
        let limit = ctx.max_binding_bytes();
        if let Some(t) = memory.tensors.iter().find(|t| t.bytes > limit) {
            let name = match t.buffer {
                memory::Buffer::Value(v) => nodes[v.0].name.clone(),
                memory::Buffer::Packed(copy) => {
                    let c = memory.packed[copy];
                    format!("{} packed by {}", nodes[c.value.0].name, c.pack)
                }
                memory::Buffer::Scratch { node, index } => {
                    format!("{} scratch {index}", nodes[node].name)
                }
            };
            return Err(Error::TooLarge {
                what: format!("tensor '{name}'"),
                bytes: t.bytes,
                limit,
            });
        }
        let slots = memory
            .slots
            .iter()
            .enumerate()
            .map(|(i, &bytes)| ctx.storage_buffer(&format!("plan slot {i}"), bytes))
            .collect::<Result<Vec<_>>>()?;
        let mut tensors: Vec<Option<Tensor>> = Vec::with_capacity(nodes.len());
        for (index, node) in nodes.iter().enumerate() {
            tensors.push(match memory.locations[index] {
                Location::Own { slot } => {
                    Some(Tensor::view(&node.name, &slots[slot], shapes[index])?)
                }
                _ => None,
            });
        }
        let tensor = |value: Value| -> Result<&Tensor> {
            let (root, offset) = memory.resolve(value);
            match (&tensors[root.0], offset) {
                (Some(t), 0) => Ok(t),
                _ => Err(Error::invalid(
                    &nodes[value.0].name,
                    "is read while it lives in a channel slice (a planner error)",
                )),
            }
        };
        let output_slice = |value: Value| -> Result<OutputSlice> {
            let (root, offset) = memory.resolve(value);
            let tensor = tensors[root.0]
                .as_ref()
                .expect("every value resolves to a tensor of its own");
            Ok(OutputSlice::channels(tensor, offset))
        };
        let mut packed: Vec<Option<Tensor>> = vec![None; memory.packed.len()];
        let mut launches = Vec::new();
        let mut layer_names = Vec::new();
        let mut push = |name: &str, launch: Launch| {
            launches.push(launch);
            layer_names.push(name.to_string());
        };
        for (index, node) in nodes.iter().enumerate() {
            let value = Value(index);
            match &node.op {
                Op::Input => {}
                Op::Conv {
                    conv,
                    input,
                    per_image_bias,
                    residual,
                    relu,
                } => {
                    let x = tensor(*input)?;
                    if let Some(&copy) = memory.pack_of.get(&index) {
                        let c = memory.packed[copy];
                        if c.first == index {
                            let shape = c.pack.packed_shape(x.shape());
                            let name = format!("{} packed by {}", x.name(), c.pack);
                            let t = Tensor::view(&name, &slots[c.slot], shape)?;
                            let launch = pack_channels::prepare(ctx, x, c.pack, t.buffer())?;
                            push(&node.name, launch);
                            packed[copy] = Some(t);
                        }
                    }
                    let packed_input = memory
                        .pack_of
                        .get(&index)
                        .and_then(|&copy| packed[copy].as_ref());
                    let epilogue = Epilogue {
                        relu: *relu,
                        per_image_bias: per_image_bias.map(&tensor).transpose()?,
                        residual: residual.map(&tensor).transpose()?,
                    };
                    let scratch = memory
                        .scratch_of
                        .get(&index)
                        .map(|&[v, m]| [&slots[v], &slots[m]]);
                    let launch = conv.prepare_with(
                        ctx,
                        x,
                        packed_input,
                        scratch,
                        output_slice(value)?,
                        &epilogue,
                    )?;
                    push(&node.name, launch);
                }
                Op::MaxPool { input, geometry } => {
                    let launch = ops::max_pool2d::prepare(
                        ctx,
                        tensor(*input)?,
                        output_slice(value)?,
                        geometry,
                    )?;
                    push(&node.name, launch);
                }
                Op::AdaptiveAvgPool { input, .. } => {
                    let launch =
                        ops::adaptive_avg_pool2d::prepare(ctx, tensor(*input)?, tensor(value)?)?;
                    push(&node.name, launch);
                }
                Op::Interpolate {
                    input,
                    align_corners,
                    ..
                } => {
                    if !matches!(memory.locations[index], Location::Same(_)) {
                        let launch = ops::interpolate::prepare(
                            ctx,
                            tensor(*input)?,
                            output_slice(value)?,
                            *align_corners,
                        )?;
                        push(&node.name, launch);
                    }
                }
                Op::Concat { inputs } => {
                    let mut offset = 0;
                    for &member in inputs {
                        let in_place = memory.locations[member.0]
                            == Location::Slice {
                                concat: value,
                                offset,
                            };
                        if !in_place {
                            let (root, base) = memory.resolve(value);
                            let out = OutputSlice::channels(
                                tensors[root.0].as_ref().expect("concats own a tensor"),
                                base + offset,
                            );
                            push(&node.name, ops::concat::prepare(ctx, tensor(member)?, out)?);
                        }
                        offset += shapes[member.0][1];
                    }
                }
            }
        }
        let input = tensor(graph.input())?.clone();
        let outputs = graph
            .outputs()
            .iter()
            .map(|(name, value)| Ok((name.clone(), tensor(*value)?.clone())))
            .collect::<Result<Vec<_>>>()?;
        Ok(Plan {
            input,
            outputs,
            launches,
            layer_names,
            shapes,
            memory,
            run_lock: Mutex::new(()),
        })
    }

    /// The tensor the graph reads: fill it with [`Plan::write_input`] or a buffer copy.
    pub fn input(&self) -> &Tensor {
        &self.input
    }

    /// The named outputs, in the graph's order.
    pub fn outputs(&self) -> &[(String, Tensor)] {
        &self.outputs
    }

    /// The first output (`output`).
    pub fn output(&self) -> &Tensor {
        &self.outputs[0].1
    }

    /// The shape of every value of the graph.
    pub fn shapes(&self) -> &[[usize; 4]] {
        &self.shapes
    }

    /// The memory planner's decisions: slots, lifetimes, the bound.
    pub fn memory(&self) -> &MemoryPlan {
        &self.memory
    }

    /// Bytes of GPU memory held by the plan's tensors.
    pub fn bytes(&self) -> u64 {
        self.memory.allocated_bytes()
    }

    /// The prepared dispatches, in recording order.
    pub fn launches(&self) -> &[Launch] {
        &self.launches
    }

    /// The layer of each launch, by module path.
    pub fn layer_names(&self) -> &[String] {
        &self.layer_names
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
            label: Some("atrous plan"),
            ..Default::default()
        });
        for launch in &self.launches {
            launch.record(&mut pass);
        }
    }

    /// Records the plan into a new encoder and submits it (asynchronously: reading an output
    /// waits for it).
    pub fn run(&self, ctx: &Context) -> Result<()> {
        let mut encoder = ctx.encoder();
        self.record(&mut encoder);
        ctx.submit(self.output().name(), encoder)
    }

    /// Writes `data` as the input, runs, and reads every output back, holding the plan for
    /// the whole sequence so that another thread's run cannot interleave.
    pub fn execute(&self, ctx: &Context, data: &[f32]) -> Result<Vec<Vec<f32>>> {
        self.execute_with(ctx, data, |plan| {
            plan.outputs.iter().map(|(_, t)| t.to_vec(ctx)).collect()
        })
    }

    /// Writes `data` as the input, runs, and lets `read` use the outputs on the GPU (a class
    /// map from the logits, say), holding the plan until it returns.
    pub fn execute_with<T>(
        &self,
        ctx: &Context,
        data: &[f32],
        read: impl FnOnce(&Plan) -> Result<T>,
    ) -> Result<T> {
        let _turn = self.run_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.write_input(ctx, data)?;
        self.run(ctx)?;
        read(self)
    }
}
