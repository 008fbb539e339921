//! One module per op, each the launcher of `shaders/<op>.wgsl`. Ops are eager: `forward`
//! allocates its output, records one dispatch and submits it. `prepare` builds the dispatch
//! ([`Launch`](crate::pipeline::Launch)) once for a fixed input and output so graphs can record
//! it again without rebuilding anything.

pub mod adaptive_avg_pool2d;
pub mod batchnorm;
pub mod concat;
pub mod conv2d;
pub mod interpolate;
pub mod max_pool2d;
pub mod pack_channels;
pub mod resize_argmax;

pub use adaptive_avg_pool2d::adaptive_avg_pool2d;
pub use batchnorm::{BatchNorm, BatchNorm2d};
pub use concat::concat;
pub use conv2d::{
    Conv2d, ConvConfig, ConvVariant, ConvWeights, Epilogue, RegisterTile, WinogradTile,
};
pub use interpolate::interpolate;
pub use max_pool2d::max_pool2d;
pub use pack_channels::pack_channels;

use crate::error::{Error, Result};

/// Workgroup size of every kernel (the `WORKGROUP` override constant).
pub(crate) const WORKGROUP: u32 = 64;

pub(crate) fn workgroups(invocations: usize) -> u64 {
    (invocations as u64).div_ceil(WORKGROUP as u64)
}

pub(crate) fn to_u32(what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::invalid(what, format!("{value} does not fit in u32")))
}

pub(crate) const WORKGROUP_CONSTANT: [(&str, f64); 1] = [("WORKGROUP", WORKGROUP as f64)];
