//! The memory planner: one place that decides where every tensor of a graph lives for one
//! input shape. It never touches the GPU; [`Plan`](super::Plan) allocates what it decides.
//!
//! - A concat's inputs that are produced only for it, by an op that can write a channel slice,
//!   live in the concat's tensor (each writes its slice: no copy).
//! - A bilinear resize to the size it already has is the identity: its output is its input.
//! - Channel-packed copies of a conv's input (the packed kernels read them) are tensors too,
//!   shared by convs that read the same value packed alike one right after the other (a ResNet
//!   block's stride-1 downsample and conv1, ASPP's branches; a strided 1x1's copy keeps only
//!   the pixels it reads, so it is its own); a later reader packs again rather than
//!   keep a copy alive across the nodes between (a network's aux head reads layer3's output
//!   after all of layer4).
//! - Every other value is a tensor whose lifetime runs from the node that writes it to the last
//!   node that reads it. Tensors whose lifetimes do not overlap share a buffer ("slot"): slots
//!   are assigned greedily, largest tensor first, each to the smallest slot free for its whole
//!   lifetime (TFLite's greedy-by-size, ggml's gallocr idea), a slot as large as its largest
//!   tensor. The graph's input and outputs are pinned: alive to the end of the run (the input
//!   from its start), so no later tensor recycles them and a plan can be run again and its
//!   outputs read after it (an output may reuse the buffer of tensors that died before it).
//! - The lower bound: the largest total size of the tensors alive at any one node. The
//!   planner reports it beside what it allocates.
//!
//! A node reads its inputs and writes its output in one step: both are alive then, so a kernel
//! never reads and writes one buffer (WebGPU forbids it within a dispatch, and it would race).

use std::collections::HashMap;

use crate::graph::builder::{Graph, Op, Value};
use crate::ops::pack_channels::Packing;

/// Where a value's data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// A tensor of its own in slot `slot`.
    Own { slot: usize },
    /// Channels `offset..` of the concat `concat`'s tensor.
    Slice { concat: Value, offset: usize },
    /// The same tensor as another value (a resize to the size it has).
    Same(Value),
}

/// A tensor the planner placed: a value, a packed copy of one (an index into
/// [`MemoryPlan::packed`]), or a conv node's scratch tensor (a Winograd layer's transformed
/// input, `index` 0, and product, 1), alive during its node only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Buffer {
    Value(Value),
    Packed(usize),
    Scratch { node: usize, index: usize },
}

/// A copy of `value` packed as `pack` says (shaders/pack_channels.wgsl), made by node
/// `first`'s launch and read by the convs that [`MemoryPlan::pack_of`] maps to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedCopy {
    pub value: Value,
    pub pack: Packing,
    pub first: usize,
    pub slot: usize,
}

/// A placed tensor's size and lifetime (node indices, inclusive; `usize::MAX`: to the end).
#[derive(Clone, Copy, Debug)]
pub struct Lifetime {
    pub buffer: Buffer,
    pub bytes: u64,
    pub first: usize,
    pub last: usize,
    pub pinned: bool,
    pub slot: usize,
}

/// The planner's decisions for one input shape.
#[derive(Clone, Debug)]
pub struct MemoryPlan {
    /// Where each value lives (indexed by value).
    pub locations: Vec<Location>,
    /// The packed copies of conv inputs.
    pub packed: Vec<PackedCopy>,
    /// The packed copy each conv node that reads one reads (node index -> index in `packed`).
    pub pack_of: HashMap<usize, usize>,
    /// The slots of each conv node's scratch tensors (node index -> slots).
    pub scratch_of: HashMap<usize, [usize; 2]>,
    /// Bytes of each slot: one GPU buffer each.
    pub slots: Vec<u64>,
    /// Every tensor placed, with its lifetime and slot.
    pub tensors: Vec<Lifetime>,
    /// The largest total size of the tensors alive at any one node.
    pub lower_bound_bytes: u64,
}

impl MemoryPlan {
    /// Bytes of GPU memory the plan's tensors take: the sum of the slots.
    pub fn allocated_bytes(&self) -> u64 {
        self.slots.iter().sum()
    }

    /// The value whose tensor holds `value`'s data, and the channel offset there.
    pub fn resolve(&self, mut value: Value) -> (Value, usize) {
        let mut offset = 0;
        loop {
            match self.locations[value.0] {
                Location::Own { .. } => return (value, offset),
                Location::Slice {
                    concat,
                    offset: more,
                } => {
                    offset += more;
                    value = concat;
                }
                Location::Same(other) => value = other,
            }
        }
    }
}

fn bytes(shape: [usize; 4]) -> u64 {
    4 * shape.iter().map(|&d| d as u64).product::<u64>()
}

/// Plans `graph` for the value shapes `shapes` (from `Graph::shapes`); `packs[node]` is how
/// the packed copy of its input a conv node reads is packed, if it reads one; `scratch[node]` the
/// bytes of the scratch tensors its kernel needs, if any.
pub fn plan(
    graph: &Graph,
    shapes: &[[usize; 4]],
    packs: &[Option<Packing>],
    scratch: &[Option<[u64; 2]>],
) -> MemoryPlan {
    let nodes = graph.nodes();
    let count = nodes.len();
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (index, node) in nodes.iter().enumerate() {
        for input in node.op.inputs() {
            consumers[input.0].push(index);
        }
    }
    let is_output = |v: Value| graph.outputs().iter().any(|(_, o)| *o == v);
    let input = graph.input();

    // Resizes to the size they already have are the identity, unless that would make the
    // graph's input and an output one tensor.
    let mut locations: Vec<Location> = (0..count).map(|slot| Location::Own { slot }).collect();
    let root_of = |locations: &[Location], mut v: Value| {
        while let Location::Same(other) = locations[v.0] {
            v = other;
        }
        v
    };
    for (index, node) in nodes.iter().enumerate() {
        if let Op::Interpolate { input: source, .. } = &node.op {
            let same_size = shapes[index][2..] == shapes[source.0][2..];
            let root = root_of(&locations, *source);
            if same_size && !(root == input && is_output(Value(index))) {
                locations[index] = Location::Same(root);
            }
        }
    }
    // Concat inputs written in place.
    for (index, node) in nodes.iter().enumerate() {
        if let Op::Concat { inputs } = &node.op {
            let mut offset = 0;
            for (position, &member) in inputs.iter().enumerate() {
                let sole_reader = consumers[member.0] == [index];
                let once = !inputs[..position].contains(&member);
                let eligible = member != input
                    && nodes[member.0].op.writes_slices()
                    && matches!(locations[member.0], Location::Own { .. })
                    && sole_reader
                    && once
                    && !is_output(member);
                if eligible {
                    locations[member.0] = Location::Slice {
                        concat: Value(index),
                        offset,
                    };
                }
                offset += shapes[member.0][1];
            }
        }
    }

    // Lifetimes of the tensors: values that own one, then packed copies.
    let resolve = |locations: &[Location], mut v: Value| loop {
        match locations[v.0] {
            Location::Own { .. } => return v,
            Location::Slice { concat, .. } => v = concat,
            Location::Same(other) => v = other,
        }
    };
    let mut first = vec![usize::MAX; count];
    let mut last = vec![0usize; count];
    for (index, readers) in consumers.iter().enumerate() {
        let root = resolve(&locations, Value(index)).0;
        first[root] = first[root].min(index);
        last[root] = last[root].max(index);
        for &reader in readers {
            last[root] = last[root].max(reader);
        }
    }
    let mut tensors: Vec<Lifetime> = Vec::new();
    for index in 0..count {
        if !matches!(locations[index], Location::Own { .. }) {
            continue;
        }
        let value = Value(index);
        let output = graph
            .outputs()
            .iter()
            .any(|(_, o)| resolve(&locations, *o) == value);
        let pinned = value == input || output;
        tensors.push(Lifetime {
            buffer: Buffer::Value(value),
            bytes: bytes(shapes[index]),
            first: if value == input { 0 } else { first[index] },
            last: if pinned { usize::MAX } else { last[index] },
            pinned,
            slot: usize::MAX,
        });
    }
    let mut packed: Vec<PackedCopy> = Vec::new();
    let mut pack_of: HashMap<usize, usize> = HashMap::new();
    let mut pack_last: Vec<usize> = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        if let (Op::Conv { input: source, .. }, Some(pack)) = (&node.op, packs[index]) {
            let value = resolve(&locations, *source);
            let recent = packed
                .iter()
                .rposition(|c| c.value == value && c.pack == pack);
            let copy = match recent {
                // Read by the node just before: share it.
                Some(copy) if pack_last[copy] + 1 == index => copy,
                _ => {
                    packed.push(PackedCopy {
                        value,
                        pack,
                        first: index,
                        slot: usize::MAX,
                    });
                    pack_last.push(index);
                    packed.len() - 1
                }
            };
            pack_last[copy] = index;
            pack_of.insert(index, copy);
        }
    }
    for (copy, c) in packed.iter().enumerate() {
        tensors.push(Lifetime {
            buffer: Buffer::Packed(copy),
            bytes: bytes(c.pack.packed_shape(shapes[c.value.0])),
            first: c.first,
            last: pack_last[copy],
            pinned: false,
            slot: usize::MAX,
        });
    }

    for (node, bytes) in scratch.iter().enumerate() {
        for (index, &bytes) in bytes.iter().flatten().enumerate() {
            tensors.push(Lifetime {
                buffer: Buffer::Scratch { node, index },
                bytes,
                first: node,
                last: node,
                pinned: false,
                slot: usize::MAX,
            });
        }
    }

    // Slots: each tensor in turn to the smallest slot free for its whole lifetime (pinned
    // tensors too: their lifetimes run to the end, so only tensors that died before them
    // share). The order decides how well sizes pack: largest first wins on most graphs,
    // first-written first on some; both are tried and the smaller total kept.
    let by_size = |t: &Lifetime| (std::cmp::Reverse(t.bytes), t.first);
    let by_start = |t: &Lifetime| (t.first, std::cmp::Reverse(t.bytes));
    let (slots, assignment) = [assign(&tensors, by_size), assign(&tensors, by_start)]
        .into_iter()
        .min_by_key(|(slots, _)| slots.iter().sum::<u64>())
        .expect("two orders tried");
    for (t, slot) in tensors.iter_mut().zip(assignment) {
        t.slot = slot;
    }

    let mut lower_bound_bytes = 0;
    for step in 0..count {
        let alive: u64 = tensors
            .iter()
            .filter(|t| t.first <= step && step <= t.last)
            .map(|t| t.bytes)
            .sum();
        lower_bound_bytes = lower_bound_bytes.max(alive);
    }
    let mut scratch_of: HashMap<usize, [usize; 2]> = HashMap::new();
    for t in &tensors {
        match t.buffer {
            Buffer::Value(value) => locations[value.0] = Location::Own { slot: t.slot },
            Buffer::Packed(copy) => packed[copy].slot = t.slot,
            Buffer::Scratch { node, index } => {
                scratch_of.entry(node).or_insert([usize::MAX; 2])[index] = t.slot;
            }
        }
    }
    MemoryPlan {
        locations,
        packed,
        pack_of,
        scratch_of,
        slots,
        tensors,
        lower_bound_bytes,
    }
}

/// Assigns `tensors`, taken in the order of `key`, to slots: best fit among the slots free for
/// the tensor's whole lifetime. Returns the slot sizes and each tensor's slot.
fn assign<K: Ord>(tensors: &[Lifetime], key: impl Fn(&Lifetime) -> K) -> (Vec<u64>, Vec<usize>) {
    let mut slots: Vec<u64> = Vec::new();
    let mut tenants: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut assignment = vec![usize::MAX; tensors.len()];
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| key(&tensors[i]));
    for i in order {
        let t = tensors[i];
        let overlaps = |slot: &[(usize, usize)]| {
            slot.iter()
                .any(|&(first, last)| first <= t.last && t.first <= last)
        };
        // Smallest slot that holds it; else the largest free one grows (never wider than
        // opening a new slot would be).
        let free: Vec<usize> = (0..slots.len())
            .filter(|&s| !overlaps(&tenants[s]))
            .collect();
        let slot = match free
            .iter()
            .copied()
            .filter(|&s| slots[s] >= t.bytes)
            .min_by_key(|&s| slots[s])
        {
            Some(slot) => slot,
            None => match free.into_iter().max_by_key(|&s| slots[s]) {
                Some(slot) => {
                    slots[slot] = t.bytes;
                    slot
                }
                None => {
                    slots.push(t.bytes);
                    tenants.push(Vec::new());
                    slots.len() - 1
                }
            },
        };
        tenants[slot].push((t.first, t.last));
        assignment[i] = slot;
    }
    (slots, assignment)
}
