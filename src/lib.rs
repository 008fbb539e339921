//! atrous: dilated convolutions and the multi-scale context heads of semantic segmentation
//! (DeepLabV3's ASPP, PSPNet's pyramid pooling) on any GPU wgpu supports, every kernel
//! hand-written in WGSL and checked against PyTorch.
//!
//! ```no_run
//! use atrous::{Context, Tensor, ops::{Conv3x3, ConvWeights}, shape::ConvGeometry};
//! let ctx = Context::new()?;
//! let x = Tensor::from_slice(&ctx, "x", [1, 2, 5, 5], &[0.5; 50])?;
//! let weights = ConvWeights::new("conv", [4, 2, 3, 3], vec![0.1; 72], None)?;
//! let conv = Conv3x3::new(&ctx, "conv", &weights, ConvGeometry::same_3x3(2), true, Default::default())?;
//! let y = conv.forward(&ctx, &x)?.to_vec(&ctx)?;
//! # Ok::<(), atrous::Error>(())
//! ```

pub mod bench;
pub mod check;
pub mod cli_run;
pub mod context;
pub mod error;
pub mod files;
pub mod graph;
pub mod ops;
pub mod pipeline;
pub mod plot;
pub mod reference;
pub mod shape;
pub mod tensor;
pub mod tune;

pub use context::Context;
pub use error::{Error, Result};
pub use tensor::{OutputSlice, Tensor};
