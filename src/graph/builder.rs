//! The graph builder: a model is a short composition of ops over symbolic [`Value`]s, reading
//! its weights through a [`StateDict`] view that descends by key prefix. Building checks every
//! weight shape and channel count on the host and allocates nothing on the GPU; the graph holds
//! no shapes but channel counts, so one graph serves every input size (`Graph::shapes`
//! computes them, the planner turns them into a [`Plan`](super::Plan)).
//!
//! ```text
//! let x = g.input();
//! let y = g.conv_bn("layer1.0.conv1", &w, "conv1", "bn1", x, Conv::k(1).relu())?;
//! let y = g.conv_bn("layer1.0.conv3", &w, "conv3", "bn3", y, Conv::k(1).residual(x).relu())?;
//! ```

use std::sync::Arc;

use crate::error::{Error, Result, Shape};
use crate::graph::StateDict;
use crate::ops::{Conv2d, ConvConfig, ConvWeights};
use crate::shape::{ConvGeometry, PoolGeometry};

/// A tensor of the graph, by the index of the node that produces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value(pub(crate) usize);

impl Value {
    pub fn index(self) -> usize {
        self.0
    }
}

/// An interpolation's output size: fixed, or the H x W of another value (DeepLabV3 resizes its
/// logits to the input image's size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Fixed([usize; 2]),
    Like(Value),
}

/// One node's op with its inputs.
#[derive(Clone)]
pub enum Op {
    /// The graph's input (node 0).
    Input,
    /// `relu?(conv(input) + bias + residual)`, one kernel: the bias per channel (the conv's
    /// own) or per image (`per_image_bias`, (N, C_out, 1, 1)).
    Conv {
        conv: Arc<Conv2d>,
        input: Value,
        per_image_bias: Option<Value>,
        residual: Option<Value>,
        relu: bool,
    },
    MaxPool {
        input: Value,
        geometry: PoolGeometry,
    },
    AdaptiveAvgPool {
        input: Value,
        size: [usize; 2],
    },
    Interpolate {
        input: Value,
        size: Size,
        align_corners: bool,
    },
    /// `torch.cat(inputs, dim=1)`. Inputs produced only for it are written in place (the
    /// planner makes them channel slices of the output); the others are copied.
    Concat {
        inputs: Vec<Value>,
    },
}

impl Op {
    /// The values whose data the op reads (a `Size::Like` reads only a shape).
    pub fn inputs(&self) -> Vec<Value> {
        match self {
            Op::Input => Vec::new(),
            Op::Conv {
                input,
                per_image_bias,
                residual,
                ..
            } => std::iter::once(*input)
                .chain(*per_image_bias)
                .chain(*residual)
                .collect(),
            Op::MaxPool { input, .. }
            | Op::AdaptiveAvgPool { input, .. }
            | Op::Interpolate { input, .. } => vec![*input],
            Op::Concat { inputs } => inputs.clone(),
        }
    }

    /// Whether the op's kernel can write a channel slice of a larger tensor (so that a concat
    /// of its output costs nothing).
    pub fn writes_slices(&self) -> bool {
        matches!(
            self,
            Op::Conv { .. } | Op::MaxPool { .. } | Op::Interpolate { .. }
        )
    }
}

/// A node: an op and the layer it belongs to, named by PyTorch module path
/// (`backbone.layer1.0.conv1`, `classifier.0.convs.1`). Benchmarks report by these names.
#[derive(Clone)]
pub struct Node {
    pub op: Op,
    pub name: String,
    /// The PyTorch modules whose work the node does (a conv and the batch norm folded into
    /// it), by path; empty for work PyTorch does outside modules (`F.interpolate`, `cat`).
    pub modules: Vec<String>,
}

/// A built graph: nodes in execution order (node 0 is the input) and the named outputs.
#[derive(Clone)]
pub struct Graph {
    nodes: Vec<Node>,
    outputs: Vec<(String, Value)>,
    /// The input's channel count, fixed by the first op that reads it.
    in_channels: usize,
    /// The weight that fixed it, named when an input has the wrong channel count.
    input_key: String,
}

impl Graph {
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, value: Value) -> &Node {
        &self.nodes[value.0]
    }

    pub fn input(&self) -> Value {
        Value(0)
    }

    /// The named outputs (`output`, and `aux` for a network with an auxiliary head).
    pub fn outputs(&self) -> &[(String, Value)] {
        &self.outputs
    }

    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// The full key of the weight whose shape fixed the input's channel count.
    pub fn input_key(&self) -> &str {
        &self.input_key
    }

    /// The convolutions, each with its node.
    pub fn convs(&self) -> impl Iterator<Item = (Value, &Node, &Arc<Conv2d>)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, node)| match &node.op {
                Op::Conv { conv, .. } => Some((Value(i), node, conv)),
                _ => None,
            })
    }

    /// Where every tensor would live for an input of `input_shape` on `ctx` (the kernels'
    /// choices decide which packed copies exist), without allocating anything.
    pub fn memory_plan(
        &self,
        ctx: &crate::Context,
        input_shape: [usize; 4],
    ) -> Result<(Vec<[usize; 4]>, crate::graph::MemoryPlan)> {
        let shapes = self.shapes(input_shape)?;
        let mut packs = vec![None; self.nodes.len()];
        let mut scratch = vec![None; self.nodes.len()];
        for (value, node, conv) in self.convs() {
            if let Op::Conv { input, .. } = &node.op {
                packs[value.0] = conv.pack_for(ctx, shapes[input.0])?;
                scratch[value.0] = conv.scratch_for(ctx, shapes[input.0])?;
            }
        }
        let memory = crate::graph::memory::plan(self, &shapes, &packs, &scratch);
        Ok((shapes, memory))
    }

    /// The shape of every value for an input of `input_shape`, or an error naming the first
    /// mismatch (the input's channel count, a map too small for a kernel).
    pub fn shapes(&self, input_shape: [usize; 4]) -> Result<Vec<[usize; 4]>> {
        crate::tensor::check_shape("input", input_shape)?;
        if input_shape[1] != self.in_channels {
            return Err(Error::shape(
                "input",
                format!(
                    "shape (N, {}, H, W), the input channels of the weights' '{}'",
                    self.in_channels, self.input_key
                ),
                Shape(input_shape),
            ));
        }
        let mut shapes: Vec<[usize; 4]> = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let shape = match &node.op {
                Op::Input => input_shape,
                Op::Conv { conv, input, .. } => conv.out_shape(shapes[input.0])?,
                Op::MaxPool { input, geometry } => {
                    crate::ops::max_pool2d::out_shape(shapes[input.0], geometry)?
                }
                Op::AdaptiveAvgPool { input, size } => {
                    let [n, c, _, _] = shapes[input.0];
                    [n, c, size[0], size[1]]
                }
                Op::Interpolate { input, size, .. } => {
                    let [n, c, _, _] = shapes[input.0];
                    let [h, w] = match size {
                        Size::Fixed(size) => *size,
                        Size::Like(other) => [shapes[other.0][2], shapes[other.0][3]],
                    };
                    [n, c, h, w]
                }
                Op::Concat { inputs } => {
                    let [n, _, h, w] = shapes[inputs[0].0];
                    let mut channels = 0;
                    for input in inputs {
                        let [ni, ci, hi, wi] = shapes[input.0];
                        if (ni, hi, wi) != (n, h, w) {
                            return Err(Error::shape(
                                format!("inputs of {}", node.name),
                                format!("the same N, H, W as {}", Shape(shapes[inputs[0].0])),
                                Shape(shapes[input.0]),
                            ));
                        }
                        channels += ci;
                    }
                    [n, channels, h, w]
                }
            };
            crate::tensor::check_shape(&node.name, shape)?;
            shapes.push(shape);
        }
        Ok(shapes)
    }
}

/// A convolution's geometry and epilogue, as the builder takes them: `Conv::k(3).stride(2)
/// .dilation(2).relu()`. The padding defaults to "same" for stride 1 (`dilation * (k - 1) /
/// 2`), which is what every conv of the supported networks uses; set it when it differs.
#[derive(Clone, Copy, Debug)]
pub struct Conv {
    kernel_size: usize,
    stride: usize,
    dilation: usize,
    padding: Option<usize>,
    relu: bool,
    residual: Option<Value>,
    per_image_bias: Option<Value>,
    config: ConvConfig,
}

impl Conv {
    pub fn k(kernel_size: usize) -> Self {
        Conv {
            kernel_size,
            stride: 1,
            dilation: 1,
            padding: None,
            relu: false,
            residual: None,
            per_image_bias: None,
            config: ConvConfig::AUTO,
        }
    }

    /// Runs the conv with kernel configuration `config` instead of the measured default.
    pub fn config(self, config: ConvConfig) -> Self {
        Conv { config, ..self }
    }

    pub fn stride(self, stride: usize) -> Self {
        Conv { stride, ..self }
    }

    pub fn dilation(self, dilation: usize) -> Self {
        Conv { dilation, ..self }
    }

    pub fn padding(self, padding: usize) -> Self {
        Conv {
            padding: Some(padding),
            ..self
        }
    }

    pub fn relu(self) -> Self {
        Conv { relu: true, ..self }
    }

    /// Adds `value` before the activation (ResNet's identity).
    pub fn residual(self, value: Value) -> Self {
        Conv {
            residual: Some(value),
            ..self
        }
    }

    /// Uses `value`, (N, C_out, 1, 1), as the bias in place of the conv's own.
    pub fn per_image_bias(self, value: Value) -> Self {
        Conv {
            per_image_bias: Some(value),
            ..self
        }
    }

    pub fn geometry(&self) -> ConvGeometry {
        let padding = self
            .padding
            .unwrap_or(self.dilation * self.kernel_size.saturating_sub(1) / 2);
        ConvGeometry::new(self.kernel_size, self.stride, padding, self.dilation)
    }
}

/// Collects nodes while a model composes itself. Every method checks what it can (weight
/// shapes against the channel counts of the values they read) and names the key that is wrong.
pub struct GraphBuilder {
    nodes: Vec<Node>,
    /// Channels of each value; `None` for the input until the first op reads it.
    channels: Vec<Option<usize>>,
    input_key: String,
}

impl Default for GraphBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GraphBuilder {
    /// A builder holding only the input (node 0).
    pub fn new() -> Self {
        GraphBuilder {
            nodes: vec![Node {
                op: Op::Input,
                name: "input".into(),
                modules: Vec::new(),
            }],
            channels: vec![None],
            input_key: String::new(),
        }
    }

    pub fn input(&self) -> Value {
        Value(0)
    }

    /// The channel count of `value`, if known yet (the input's is fixed by its first reader).
    pub fn channels(&self, value: Value) -> Option<usize> {
        self.channels[value.0]
    }

    fn push(&mut self, name: &str, op: Op, channels: usize, modules: Vec<String>) -> Value {
        self.nodes.push(Node {
            op,
            name: name.to_string(),
            modules,
        });
        self.channels.push(Some(channels));
        Value(self.nodes.len() - 1)
    }

    /// Records that `value` has `channels` channels as read by `key`: fixes the input's count
    /// the first time.
    fn bind_channels(&mut self, value: Value, channels: usize, key: &str) {
        if self.channels[value.0].is_none() {
            self.channels[value.0] = Some(channels);
            self.input_key = key.to_string();
        }
    }

    /// A convolution with `weights` (already read and folded: PyTorch's `modules`) on
    /// `input`, named `layer`.
    pub fn conv_weights(
        &mut self,
        layer: &str,
        modules: Vec<String>,
        weights: ConvWeights,
        input: Value,
        spec: Conv,
    ) -> Result<Value> {
        let conv = Conv2d::new(layer, weights, spec.geometry())?.with_config(spec.config);
        let channels = conv.out_channels();
        match self.channels(input) {
            Some(c) if c != conv.in_channels() => {
                return Err(Error::shape(
                    format!("{layer} weight"),
                    format!("{c} input channels (its input's)"),
                    conv.in_channels(),
                ))
            }
            _ => self.bind_channels(input, conv.in_channels(), &format!("{layer}.weight")),
        }
        for (what, value) in [("residual", spec.residual), ("bias", spec.per_image_bias)] {
            if let Some(value) = value {
                if self.channels(value) != Some(channels) {
                    return Err(Error::shape(
                        format!("{what} of {layer}"),
                        format!("{channels} channels"),
                        format!("{:?}", self.channels(value)),
                    ));
                }
            }
        }
        let op = Op::Conv {
            conv: Arc::new(conv),
            input,
            per_image_bias: spec.per_image_bias,
            residual: spec.residual,
            relu: spec.relu,
        };
        Ok(self.push(layer, op, channels, modules))
    }

    /// `Conv2d` `conv` of `w` (with its bias when the file has one) followed by `BatchNorm2d`
    /// `bn`, folded into one convolution, on `input`.
    pub fn conv_bn(
        &mut self,
        layer: &str,
        w: &StateDict,
        conv: &str,
        bn: &str,
        input: Value,
        spec: Conv,
    ) -> Result<Value> {
        let role = format!("{} of {layer}", spec.geometry().kernel_name());
        let weights = w.conv_bn(conv, bn, &role, spec.kernel_size, self.channels(input))?;
        let key = w.full_key(&format!("{conv}.weight"));
        self.bind_channels(input, weights.in_channels, &key);
        let modules = vec![w.path(conv), w.path(bn)];
        self.conv_weights(layer, modules, weights, input, spec)
    }

    /// `Conv2d` `conv` of `w` with its bias (a classifier), on `input`.
    pub fn conv(
        &mut self,
        layer: &str,
        w: &StateDict,
        conv: &str,
        input: Value,
        spec: Conv,
    ) -> Result<Value> {
        let role = format!("{} of {layer}", spec.geometry().kernel_name());
        let weights = w.conv(conv, &role, spec.kernel_size, self.channels(input), true)?;
        let key = w.full_key(&format!("{conv}.weight"));
        self.bind_channels(input, weights.in_channels, &key);
        self.conv_weights(layer, vec![w.path(conv)], weights, input, spec)
    }

    /// Fixes the input's channel count from a weight that reads it, for models whose first op
    /// on the input has no weights (the PPM pools its input first): dimension 1 of `key`.
    pub fn input_channels_from(&mut self, w: &StateDict, key: &str) -> Result<()> {
        let (_, shape) = w.info(key).ok_or_else(|| w.missing(key))?;
        let channels = *shape.get(1).ok_or_else(|| {
            Error::shape(
                format!("tensor '{}'", w.full_key(key)),
                "a conv weight (C_out, C_in, k, k)",
                crate::graph::state_dict::shape_text(shape),
            )
        })?;
        self.bind_channels(self.input(), channels, &w.full_key(key));
        Ok(())
    }

    /// `nn.MaxPool2d` at module path `layer`.
    pub fn max_pool(&mut self, layer: &str, input: Value, geometry: PoolGeometry) -> Result<Value> {
        let channels = self.known(layer, input)?;
        let op = Op::MaxPool { input, geometry };
        Ok(self.push(layer, op, channels, vec![layer.to_string()]))
    }

    pub fn adaptive_avg_pool(
        &mut self,
        layer: &str,
        input: Value,
        size: [usize; 2],
    ) -> Result<Value> {
        if size.contains(&0) {
            return Err(Error::invalid(
                format!("{layer} output size"),
                format!("must be >= 1 in both dimensions, found {size:?}"),
            ));
        }
        let channels = self.known(layer, input)?;
        Ok(self.push(
            layer,
            Op::AdaptiveAvgPool { input, size },
            channels,
            Vec::new(),
        ))
    }

    pub fn interpolate(
        &mut self,
        layer: &str,
        input: Value,
        size: Size,
        align_corners: bool,
    ) -> Result<Value> {
        if let Size::Fixed(size) = size {
            if size.contains(&0) {
                return Err(Error::invalid(
                    format!("{layer} output size"),
                    format!("must be >= 1 in both dimensions, found {size:?}"),
                ));
            }
        }
        let channels = self.known(layer, input)?;
        let op = Op::Interpolate {
            input,
            size,
            align_corners,
        };
        Ok(self.push(layer, op, channels, Vec::new()))
    }

    pub fn concat(&mut self, layer: &str, inputs: &[Value]) -> Result<Value> {
        if inputs.is_empty() {
            return Err(Error::invalid(layer, "a concat needs at least one input"));
        }
        let channels = inputs
            .iter()
            .map(|&v| self.known(layer, v))
            .sum::<Result<usize>>()?;
        let op = Op::Concat {
            inputs: inputs.to_vec(),
        };
        Ok(self.push(layer, op, channels, Vec::new()))
    }

    /// The channel count of a value an op without weights reads.
    fn known(&self, layer: &str, value: Value) -> Result<usize> {
        self.channels(value).ok_or_else(|| {
            Error::invalid(
                layer,
                "reads the input before any weight fixes its channel count \
                 (GraphBuilder::input_channels_from)",
            )
        })
    }

    /// The finished graph with its named outputs.
    pub fn finish(self, outputs: Vec<(&str, Value)>) -> Result<Graph> {
        if outputs.is_empty() {
            return Err(Error::invalid("graph", "a graph needs at least one output"));
        }
        let in_channels = self.channels[0].ok_or_else(|| {
            Error::invalid(
                "graph",
                "no operation reads the input, so its channels are unknown",
            )
        })?;
        Ok(Graph {
            nodes: self.nodes,
            outputs: outputs
                .into_iter()
                .map(|(name, value)| (name.to_string(), value))
                .collect(),
            in_channels,
            input_key: self.input_key,
        })
    }
}
