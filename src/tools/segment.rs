//! `atrous segment`: a photo (or a directory of photos) through a whole network to a class map.
//!
//! ```text
//! atrous segment deeplabv3|fcn|pspnet --weights W --image PHOTO --output MASK.png
//!     [--overlay OUT.png] [--logits L.safetensors] [--resize 520] [--prefix P] [model options]
//! ```
//!
//! The photo is decoded and preprocessed exactly as torchvision's
//! `DeepLabV3_ResNet50_Weights.DEFAULT.transforms()` does to `Image.open(p).convert("RGB")`
//! (src/image.rs), the network runs, its logits are resized to the photo's size (bilinear,
//! align_corners=False) and the argmax is taken on the GPU (ops::resize_argmax). The class map
//! is written as an 8-bit indexed PNG of the photo's size with the PASCAL VOC palette (how VOC
//! stores its own labels). Every file is written through a temporary file and a rename.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::graph::StateDict;
use crate::image::{self, RgbImage};
use crate::models::{Model, Output};
use crate::tools::run::{check_output_dir, output_dir, write_outputs, ModelArgs};

#[derive(Args, Debug)]
pub struct SegmentArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// safetensors file holding the PyTorch state_dict (see scripts/export_safetensors.py).
    #[arg(long, value_name = "W.safetensors")]
    pub weights: PathBuf,
    /// A PNG or JPEG photo, or a directory of them.
    #[arg(long, value_name = "PHOTO")]
    pub image: PathBuf,
    /// The class map: an 8-bit indexed PNG of the photo's size with the VOC palette (a
    /// directory when --image is one).
    #[arg(long, value_name = "MASK.png")]
    pub output: PathBuf,
    /// Also write the class colours blended over the photo (PNG or JPEG by extension; a
    /// directory of PNGs when --image is one).
    #[arg(long, value_name = "OUT.png")]
    pub overlay: Option<PathBuf>,
    /// Also write the logits at network size, `output` (what the model returns for the
    /// preprocessed photo), as safetensors (a directory when --image is one).
    #[arg(long, value_name = "L.safetensors")]
    pub logits: Option<PathBuf>,
    /// The shorter side of the photo as the network sees it (torchvision's transforms: 520).
    #[arg(long, default_value_t = 520)]
    pub resize: usize,
    /// Key prefix of the model inside the state_dict, e.g. `module.`.
    #[arg(long, default_value = "")]
    pub prefix: String,
}

impl SegmentArgs {
    /// The paths asked for: the class map, and the overlay and logits when given (files, or
    /// directories when --image is one).
    fn outputs(&self) -> impl Iterator<Item = &PathBuf> {
        [
            Some(&self.output),
            self.overlay.as_ref(),
            self.logits.as_ref(),
        ]
        .into_iter()
        .flatten()
    }
}

/// One photo's files.
struct Job {
    image: PathBuf,
    output: PathBuf,
    overlay: Option<PathBuf>,
    logits: Option<PathBuf>,
}

fn is_photo(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| matches!(e.as_str(), "png" | "jpg" | "jpeg"))
}

/// A path as it will be opened: the existing part resolved (links, `..`), so two spellings
/// of one file compare equal.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(full) = path.canonicalize() {
        return full;
    }
    let dir = output_dir(path);
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.join(path.file_name().unwrap_or_default())
}

/// Refuses jobs that would write one file twice or write over a photo they read.
fn check_distinct(jobs: &[Job]) -> Result<()> {
    let photos: HashMap<PathBuf, &Path> = jobs
        .iter()
        .map(|j| (resolved(&j.image), j.image.as_path()))
        .collect();
    let mut written: HashMap<PathBuf, &Path> = HashMap::new();
    for job in jobs {
        for path in [Some(&job.output), job.overlay.as_ref(), job.logits.as_ref()]
            .into_iter()
            .flatten()
        {
            let key = resolved(path);
            if let Some(photo) = photos.get(&key) {
                return Err(Error::file(
                    path.display(),
                    format!("would overwrite the photo {}", photo.display()),
                ));
            }
            if let Some(earlier) = written.insert(key, &job.image) {
                return Err(Error::file(
                    path.display(),
                    format!(
                        "written twice: for {} and for {} (photos of one name with different \
                         extensions, or one path given to two options)",
                        earlier.display(),
                        job.image.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The photos to segment and where each one's files go; every path checked, and the output
/// directories made, before anything runs.
fn jobs(args: &SegmentArgs) -> Result<Vec<Job>> {
    if !args.image.is_dir() {
        for path in args.outputs() {
            check_output_dir(path)?;
        }
        if let Some(overlay) = &args.overlay {
            image::is_jpeg_name(overlay)?;
        }
        let jobs = vec![Job {
            image: args.image.clone(),
            output: args.output.clone(),
            overlay: args.overlay.clone(),
            logits: args.logits.clone(),
        }];
        check_distinct(&jobs)?;
        return Ok(jobs);
    }
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&args.image)
        .map_err(|e| Error::file(args.image.display(), e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && is_photo(path))
        .collect();
    photos.sort();
    if photos.is_empty() {
        return Err(Error::file(
            args.image.display(),
            "expected PNG or JPEG photos (.png, .jpg, .jpeg) in the directory, found none",
        ));
    }
    for dir in args.outputs() {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::file(
                dir.display(),
                "--image is a directory, so this must be one too, and a file is in the way",
            ));
        }
    }
    let jobs: Vec<Job> = photos
        .into_iter()
        .map(|image| {
            let stem = image
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Job {
                output: args.output.join(format!("{stem}.png")),
                overlay: args.overlay.as_ref().map(|d| d.join(format!("{stem}.png"))),
                logits: args
                    .logits
                    .as_ref()
                    .map(|d| d.join(format!("{stem}.safetensors"))),
                image,
            }
        })
        .collect();
    // Checked before any directory is made.
    check_distinct(&jobs)?;
    for dir in args.outputs() {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir.display(), e))?;
    }
    Ok(jobs)
}

/// A photo's class map and, when asked, its logits at network size.
pub struct Segmentation {
    pub classes: Vec<u8>,
    pub logits: Option<Output>,
}

/// Runs `model` on `photo` as torchvision would: preprocess (shorter side to `resize`), the
/// network, the logits resized to the photo and their argmax on the GPU.
pub fn segment(
    ctx: &Context,
    model: &Model,
    photo: &RgbImage,
    resize: usize,
    keep_logits: bool,
) -> Result<Segmentation> {
    let classes = model.spec().display;
    let (shape, input) = image::preprocess(photo, resize)?;
    let out_shape = model.out_shape(shape)?;
    if out_shape[1] > 256 {
        return Err(Error::invalid(
            format!("{classes} logits"),
            format!(
                "an 8-bit class map holds at most 256 classes, the weights have {}",
                out_shape[1]
            ),
        ));
    }
    let plan = model.plan(ctx, shape)?;
    plan.execute_with(ctx, &input, |plan| {
        let logits = plan.output();
        let map =
            crate::ops::resize_argmax::resize_argmax(ctx, logits, [photo.height, photo.width])?;
        let logits = match keep_logits {
            true => Some(Output {
                name: "output".into(),
                shape: logits.shape(),
                data: logits.to_vec(ctx)?,
            }),
            false => None,
        };
        Ok(Segmentation {
            classes: map,
            logits,
        })
    })
}

/// "person 41.2%, background 55.0%, ...": the classes found, most pixels first.
pub fn class_shares(classes: &[u8], num_classes: usize) -> Vec<(String, f64)> {
    let mut counts = [0usize; 256];
    for &c in classes {
        counts[c as usize] += 1;
    }
    let mut found: Vec<(String, f64)> = counts
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(c, &n)| {
            let name = match num_classes {
                21 => image::VOC_CLASSES[c].to_string(),
                _ => format!("class {c}"),
            };
            (name, 100.0 * n as f64 / classes.len() as f64)
        })
        .collect();
    found.sort_by(|a, b| b.1.total_cmp(&a.1));
    found
}

/// `atrous segment`: everything the subcommand does.
pub fn run(args: &SegmentArgs, ctx: impl FnOnce() -> Result<Context>) -> Result<()> {
    if args.model.aux {
        return Err(Error::invalid(
            "--aux",
            "segment maps the main head's logits; `atrous run --aux` writes the auxiliary ones",
        ));
    }
    let options = args.model.options()?;
    let spec = crate::models::spec(&args.model.model)?;
    let weights = StateDict::open(&args.weights, &args.prefix)?;
    let model = Model::from_spec(spec, &weights, &options)?;
    if model.in_channels() != 3 {
        return Err(Error::invalid(
            "segment",
            format!(
                "{} reads {} channels, not an RGB photo (`atrous run {}` takes feature maps)",
                spec.name,
                model.in_channels(),
                spec.name
            ),
        ));
    }
    if args.resize == 0 {
        return Err(Error::invalid("--resize", "must be >= 1, found 0"));
    }
    let jobs = jobs(args)?;
    // The first photo is decoded before the GPU is opened: a bad file fails fast.
    let mut first = Some(image::open_rgb(&jobs[0].image)?);
    let ctx = ctx()?;
    let bar = (jobs.len() > 1).then(|| {
        indicatif::ProgressBar::new(jobs.len() as u64).with_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({eta})")
                .expect("a valid template"),
        )
    });
    for job in &jobs {
        if let Some(bar) = &bar {
            bar.set_message(job.image.display().to_string());
        }
        let started = Instant::now();
        let photo = match first.take() {
            Some(photo) => photo,
            None => image::open_rgb(&job.image)?,
        };
        let result = segment(&ctx, &model, &photo, args.resize, job.logits.is_some())?;
        image::write_class_png(&job.output, photo.width, photo.height, &result.classes)?;
        if let Some(path) = &job.overlay {
            image::write_rgb(path, &image::overlay(&photo, &result.classes, 0.5)?)?;
        }
        if let (Some(path), Some(logits)) = (&job.logits, result.logits) {
            write_outputs(path, &[logits], model.name())?;
        }
        let num_classes = model.out_shape([1, 3, args.resize, args.resize])?[1];
        let shares: Vec<String> = class_shares(&result.classes, num_classes)
            .into_iter()
            .map(|(name, share)| format!("{name} {share:.1}%"))
            .collect();
        let line = format!(
            "{}: {}x{} -> {} in {:.2} s: {}",
            job.image.display(),
            photo.width,
            photo.height,
            job.output.display(),
            started.elapsed().as_secs_f64(),
            shares.join(", ")
        );
        match &bar {
            Some(bar) => {
                bar.suspend(|| println!("{line}"));
                bar.inc(1);
            }
            None => println!("{line}"),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}
