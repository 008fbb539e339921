use atrous::graph::StateDict;
use atrous::models::{Model, ModelOptions};
fn main() {
    let ctx = atrous::Context::new().unwrap();
    let w = StateDict::open(
        "tests/fixtures/networks/fcn_bottleneck_os8_aux_n2_h41w35.weights.safetensors",
        "",
    )
    .unwrap();
    let model = Model::load(
        "fcn",
        &w,
        &ModelOptions {
            aux: true,
            ..Default::default()
        },
    )
    .unwrap();
    let (_shapes, m) = model.graph().memory_plan(&ctx, [2, 3, 41, 35]).unwrap();
    let nodes = model.graph().nodes();
    for t in &m.tensors {
        let name = match t.buffer {
            atrous::graph::memory::Buffer::Value(v) => nodes[v.index()].name.clone(),
            atrous::graph::memory::Buffer::Packed(c) => format!(
                "{} p{}",
                nodes[m.packed[c].value.index()].name,
                m.packed[c].pack
            ),
        };
        println!(
            "{:40} {:8} [{:3},{:3}] slot {}",
            name,
            t.bytes,
            t.first,
            t.last.min(999),
            t.slot
        );
    }
    println!("slots {:?}", m.slots);
    let count = nodes.len();
    for step in 0..count {
        let alive: u64 = m
            .tensors
            .iter()
            .filter(|t| t.first <= step && step <= t.last)
            .map(|t| t.bytes)
            .sum();
        println!("step {step} {} alive {alive}", nodes[step].name);
    }
    println!(
        "allocated {} bound {}",
        m.allocated_bytes(),
        m.lower_bound_bytes
    );
}
