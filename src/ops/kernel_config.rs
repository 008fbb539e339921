//! A convolution's kernel variant with its launch parameters, shared by `Conv3x3Config` and
//! `Conv1x1Config`: each op has its own variant enum (its entry points, `<op>_<variant>`) and
//! its own defaults and tuning grid; the checks, labels and parsing live here once.

use std::fmt::Debug;
use std::hash::Hash;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::RegisterTile;

/// What the shared code needs from an op's variant enum.
pub trait ConvVariant: Copy + Eq + Hash + Debug + Default + 'static {
    /// The op, e.g. `conv3x3`: its entry points are `<OP>_<variant>`.
    const OP: &'static str;
    const DIRECT: Self;
    const TILED: Self;
    const BLOCKED: Self;
    const SUBGROUP: Self;
    /// The subgroup kernel reading a channel-packed copy of the input, where the op has one.
    const PACKED: Option<Self>;
    /// The same with 64-bit loads of 8 packed channels, where the op has one.
    const PACKED8: Option<Self>;
    const AUTO: Self;

    /// The entry point (`<OP>_auto` for `AUTO`, which resolves to another one).
    fn entry_point(self) -> &'static str;

    /// The tile a variant gets when none is given.
    fn default_tile(self) -> RegisterTile;

    /// The configuration `AUTO` resolves to on `ctx` without a tuned one.
    fn select(ctx: &Context, in_channels: usize, out_channels: usize) -> KernelConfig<Self>;
}

/// A variant with its launch parameters: what an autotuner enumerates and a benchmark names.
/// `tile` matters only to the blocked and subgroup variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelConfig<V> {
    pub variant: V,
    pub tile: RegisterTile,
}

impl<V: ConvVariant> KernelConfig<V> {
    pub fn new(variant: V, tile: RegisterTile) -> Self {
        KernelConfig { variant, tile }
    }

    /// Resolves `AUTO` and checks that `ctx` can run the variant with this tile.
    pub fn resolve(self, ctx: &Context, in_channels: usize, out_channels: usize) -> Result<Self> {
        let name = self.variant.entry_point();
        if self.variant == V::AUTO {
            return Ok(V::select(ctx, in_channels, out_channels));
        }
        if self.variant == V::BLOCKED {
            self.tile.validate(name, &[1, 2, 3, 4, 5, 6, 7, 8], 4)?;
        } else if self.variant == V::SUBGROUP || self.is_packed() {
            if !ctx.has_subgroups() {
                return Err(Error::invalid(
                    name,
                    format!(
                        "needs subgroup operations with subgroups of at least 8 invocations; \
                         adapter '{}' has none (use {}_blocked)",
                        ctx.adapter().name,
                        V::OP
                    ),
                ));
            }
            if Some(self.variant) == V::PACKED8 {
                if !ctx.has_int64() {
                    return Err(Error::invalid(
                        name,
                        format!(
                            "needs 64-bit integers in shaders (SHADER_INT64); adapter '{}' has \
                             none (use {}_packed)",
                            ctx.adapter().name,
                            V::OP
                        ),
                    ));
                }
                // Its broadcasts spell out the lanes of these widths only.
                self.tile.validate(name, &[2, 4, 8], 4)?;
            } else {
                self.tile.validate(name, &[2, 4, 6, 8], 4)?;
            }
        }
        Ok(self)
    }

    fn is_packed(&self) -> bool {
        Some(self.variant) == V::PACKED || Some(self.variant) == V::PACKED8
    }

    /// `conv3x3_blocked:c16p1w8`, or the entry point alone for the untiled variants.
    pub fn label(&self) -> String {
        if self.variant == V::BLOCKED || self.variant == V::SUBGROUP || self.is_packed() {
            format!("{}:{}", self.variant.entry_point(), self.tile.label())
        } else {
            self.variant.entry_point().to_string()
        }
    }

    /// Parses `direct`, `tiled`, `blocked`, `subgroup`, `packed` and `packed8` (where the op has
    /// them) and `auto`, optionally with a tile as in `blocked:c16p1w8` (an `<op>_` prefix is
    /// accepted).
    pub fn parse(text: &str) -> Result<Self> {
        let prefix = format!("{}_", V::OP);
        let text = text.strip_prefix(prefix.as_str()).unwrap_or(text);
        let (variant, tile) = match text.split_once(':') {
            Some((variant, tile)) => (variant, Some(RegisterTile::parse(tile)?)),
            None => (text, None),
        };
        let variant = match variant {
            "direct" => V::DIRECT,
            "tiled" => V::TILED,
            "blocked" => V::BLOCKED,
            "subgroup" => V::SUBGROUP,
            "auto" => V::AUTO,
            "packed" if V::PACKED.is_some() => V::PACKED.unwrap(),
            "packed8" if V::PACKED8.is_some() => V::PACKED8.unwrap(),
            _ => {
                let packed = match (V::PACKED, V::PACKED8) {
                    (Some(_), Some(_)) => ", packed[:c16p2w8], packed8[:c16p2w8]",
                    (Some(_), None) => ", packed[:c16p2w8]",
                    _ => "",
                };
                return Err(Error::invalid(
                    format!("{} variant", V::OP),
                    format!(
                        "expected direct, tiled, blocked[:c16p1w8], subgroup[:c16p2w8]{packed} or \
                         auto, found '{text}'"
                    ),
                ));
            }
        };
        Ok(KernelConfig {
            variant,
            tile: tile.unwrap_or_else(|| variant.default_tile()),
        })
    }
}

impl<V: ConvVariant> From<V> for KernelConfig<V> {
    /// The variant with its default tile.
    fn from(variant: V) -> Self {
        KernelConfig {
            variant,
            tile: variant.default_tile(),
        }
    }
}

/// The label, e.g. `conv3x3_blocked:c16p1w8`; [`std::str::FromStr`] reads it back (the tuner's
/// cache stores configurations so).
impl<V: ConvVariant> std::fmt::Display for KernelConfig<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl<V: ConvVariant> std::str::FromStr for KernelConfig<V> {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

impl<V: ConvVariant> Default for KernelConfig<V> {
    fn default() -> Self {
        V::default().into()
    }
}
