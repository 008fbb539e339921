//! Graphs: a model is built once as a graph of ops over symbolic values (`builder.rs`), reading
//! its weights by PyTorch key from a safetensors state_dict (`state_dict.rs`); for each input
//! shape the memory planner (`memory.rs`) decides where every tensor lives and a [`Plan`]
//! (`plan.rs`) allocates that and prepares every dispatch once.
//!
//! weights -> builder -> graph -> planner -> plan -> launches

pub mod builder;
pub mod memory;
pub mod plan;
pub mod state_dict;

pub use builder::{Conv, Graph, GraphBuilder, Node, Op, Size, Value};
pub use memory::MemoryPlan;
pub use plan::Plan;
pub use state_dict::StateDict;
