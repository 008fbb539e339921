//! atrous: semantic segmentation networks (torchvision's DeepLabV3 and FCN, PSPNet) and their
//! layers on any GPU wgpu supports, every kernel hand-written in WGSL and checked against
//! PyTorch.
//!
//! Data flow: a PyTorch state_dict ([`graph::StateDict`]) -> a model of the registry
//! ([`models::Model`], built with [`graph::GraphBuilder`]) -> for each input shape a
//! [`graph::Plan`] (the memory planner's buffers and every dispatch prepared once) -> launches.
//!
//! ```no_run
//! use atrous::{graph::StateDict, models::{Model, ModelOptions}, Context};
//! let ctx = Context::new()?;
//! let weights = StateDict::open("deeplabv3_resnet50.safetensors", "")?;
//! let model = Model::load("deeplabv3", &weights, &ModelOptions::default())?;
//! let logits = model.run(&ctx, [1, 3, 520, 520], &vec![0.0; 3 * 520 * 520])?;
//! # Ok::<(), atrous::Error>(())
//! ```
//!
//! Single ops run eagerly:
//!
//! ```no_run
//! use atrous::{Context, Tensor, ops::{Conv2d, ConvWeights}, shape::ConvGeometry};
//! let ctx = Context::new()?;
//! let x = Tensor::from_slice(&ctx, "x", [1, 2, 5, 5], &[0.5; 50])?;
//! let weights = ConvWeights::new("conv", [4, 2, 3, 3], vec![0.1; 72], None)?;
//! let conv = Conv2d::new("conv", weights, ConvGeometry::same_3x3(2))?;
//! let y = conv.forward(&ctx, &x, true)?.to_vec(&ctx)?;
//! # Ok::<(), atrous::Error>(())
//! ```

pub mod context;
pub mod error;
pub mod files;
pub mod graph;
pub mod image;
pub mod models;
pub mod ops;
pub mod pipeline;
pub mod reference;
pub mod rng;
pub mod shape;
pub mod tensor;
pub mod tools;

pub use context::Context;
pub use error::{Error, Result};
pub use tensor::{OutputSlice, Tensor};
