//! The GPU context: adapter choice, device creation with the adapter's real limits, error capture,
//! submission and synchronization. Everything else borrows a [`Context`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::pipeline::PipelineCache;

/// How long a synchronization waits for the GPU before the device is reported lost. Generous:
/// the biggest benchmark shapes take seconds on a CPU rasterizer.
const SYNC_TIMEOUT: Duration = Duration::from_secs(300);

const INSTALL_HINT: &str = "atrous needs a Vulkan, Metal, DX12 or OpenGL adapter. On headless \
Linux install Mesa's software drivers: `apt-get install mesa-vulkan-drivers libgl1-mesa-dri \
libegl1` (Debian 12: add `-t bookworm-backports` for Mesa 25, several times faster on compute). \
`atrous info` lists what wgpu sees; WGPU_BACKEND=vulkan|gl|metal|dx12 and WGPU_ADAPTER_NAME \
narrow the choice.";

/// What `atrous info` prints for one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: wgpu::Backend,
    pub device_type: wgpu::DeviceType,
    pub driver: String,
    pub driver_info: String,
}

impl From<wgpu::AdapterInfo> for AdapterSummary {
    fn from(info: wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: info.name,
            backend: info.backend,
            device_type: info.device_type,
            driver: info.driver,
            driver_info: info.driver_info,
        }
    }
}

impl AdapterSummary {
    /// One line: "llvmpipe (...) | Vulkan | Cpu | llvmpipe Mesa 25.0.7".
    pub fn describe(&self) -> String {
        format!(
            "{} | {:?} | {:?} | {} {}",
            self.name, self.backend, self.device_type, self.driver, self.driver_info
        )
    }

    /// A stable key for caches that depend on the adapter (name, driver, backend).
    pub fn cache_key(&self) -> String {
        format!(
            "{}|{} {}|{:?}",
            self.name, self.driver, self.driver_info, self.backend
        )
    }
}

/// Ranks adapters: hardware before software, then the backend's maturity for compute. With
/// `WGPU_POWER_PREF=low` an integrated GPU goes before a discrete one.
fn rank(info: &wgpu::AdapterInfo, power: Option<wgpu::PowerPreference>) -> (u8, u8) {
    use wgpu::DeviceType::*;
    let low_power = power == Some(wgpu::PowerPreference::LowPower);
    let device = match info.device_type {
        DiscreteGpu if !low_power => 0,
        IntegratedGpu if low_power => 0,
        DiscreteGpu | IntegratedGpu => 1,
        VirtualGpu => 2,
        Other => 3,
        Cpu => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    };
    (device, backend)
}

/// Lists every adapter wgpu sees under the current `WGPU_BACKEND`, best first, with the index of
/// the one [`Context::new`] would pick and why.
pub fn enumerate_adapters() -> (Vec<AdapterSummary>, Result<(usize, String)>) {
    let instance = new_instance();
    let adapters = sorted_adapters(&instance);
    let choice = choose(&adapters);
    (
        adapters.iter().map(|a| a.get_info().into()).collect(),
        choice,
    )
}

fn new_instance() -> wgpu::Instance {
    // `with_env` honours WGPU_BACKEND (and wgpu's debug flags).
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn sorted_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let power = wgpu::PowerPreference::from_env();
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| rank(&a.get_info(), power));
    // The GL backend may report the same renderer twice (EGL surfaceless and default display).
    let mut seen = Vec::new();
    adapters.retain(|a| {
        let info = a.get_info();
        let key = (info.name.clone(), info.backend, info.driver_info.clone());
        if seen.contains(&key) {
            false
        } else {
            seen.push(key);
            true
        }
    });
    adapters
}

/// Picks from adapters sorted best first, honouring `WGPU_ADAPTER_NAME` (a case-insensitive
/// substring of the adapter name, as in wgpu's own `initialize_adapter_from_env`).
fn choose(adapters: &[wgpu::Adapter]) -> Result<(usize, String)> {
    let backend_note = std::env::var("WGPU_BACKEND")
        .map(|b| format!(" with WGPU_BACKEND={b}"))
        .unwrap_or_default();
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let needle = wanted.to_lowercase();
        return match adapters
            .iter()
            .position(|a| a.get_info().name.to_lowercase().contains(&needle))
        {
            Some(index) => Ok((index, format!("WGPU_ADAPTER_NAME={wanted} matched"))),
            None => Err(Error::NoAdapter {
                selection: format!(" matching WGPU_ADAPTER_NAME={wanted}{backend_note}"),
                hint: format!(
                    "Adapters seen: [{}].",
                    adapters
                        .iter()
                        .map(|a| a.get_info().name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        };
    }
    let first = adapters.first().ok_or_else(|| Error::NoAdapter {
        selection: backend_note.clone(),
        hint: INSTALL_HINT.to_string(),
    })?;
    let reason = if first.get_info().device_type == wgpu::DeviceType::Cpu {
        "no hardware adapter found; falling back to a software adapter".to_string()
    } else {
        "best hardware adapter".to_string()
    };
    Ok((0, reason))
}

/// Errors reported by wgpu outside of an error scope, kept until the next check.
type ErrorSlot = Arc<Mutex<Option<Error>>>;

/// A device and queue on the chosen adapter, with the caches that belong to it.
///
/// Eager execution: each op records and submits its own work unless the caller records several
/// dispatches into one encoder (graphs do). Submission is asynchronous; [`Context::sync`] and
/// every read-back wait for the GPU and surface any error it reported.
pub struct Context {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    adapter: AdapterSummary,
    selection: String,
    limits: wgpu::Limits,
    features: wgpu::Features,
    /// The smallest subgroup the adapter may run (0 without subgroups).
    subgroup_min_size: u32,
    pub(crate) pipelines: PipelineCache,
    uncaptured: ErrorSlot,
    lost: Arc<Mutex<Option<String>>>,
    /// Small constant buffers shared by launches (e.g. a zero bias), keyed by purpose.
    pub(crate) constants: Mutex<HashMap<&'static str, Arc<wgpu::Buffer>>>,
    /// Kernel configurations chosen per layer shape ([`Context::with_tuning`]).
    tuning: TuningTable,
    /// Tells contexts apart, so that a layer's uploads are never used on another device.
    id: u64,
    /// A cap on the bytes one storage binding may cover, below the device's own limit.
    binding_limit: Option<u64>,
}

/// Kernel configurations by layer key (`Conv2d::tune_key`), e.g. `"conv3x3 1x512x33x33
/// cout=256 dil=6 pad=6,6" -> "conv3x3_packed8:c16p3w8"`: what `atrous tune` measured fastest on
/// one adapter. The engine never reads a tuning file itself; a caller passes a table in.
pub type TuningTable = std::collections::BTreeMap<String, String>;

impl Context {
    /// Creates a context on the adapter chosen by the environment (`WGPU_BACKEND`,
    /// `WGPU_ADAPTER_NAME`, `WGPU_POWER_PREF`), preferring hardware over software.
    pub fn new() -> Result<Self> {
        let instance = new_instance();
        let adapters = sorted_adapters(&instance);
        let (index, reason) = choose(&adapters)?;
        let adapter = &adapters[index];
        Self::from_adapter(adapter, reason)
    }

    fn from_adapter(adapter: &wgpu::Adapter, selection: String) -> Result<Self> {
        let raw_info = adapter.get_info();
        let subgroup_min_size = raw_info.subgroup_min_size;
        let info: AdapterSummary = raw_info.into();
        // Ask for everything the adapter offers: wgpu's defaults cap storage bindings at 128 MiB
        // and workgroup storage at 16 KiB whatever the hardware can do.
        let limits = adapter.limits();
        // Subgroups (and 64-bit integers, for 64-bit loads) feed the fastest convolution
        // kernels where the adapter has them.
        let wanted = wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::SUBGROUP
            | wgpu::Features::SHADER_INT64;
        let features = adapter.features() & wanted;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("atrous"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::RequestDevice {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;

        let uncaptured: ErrorSlot = Arc::new(Mutex::new(None));
        let slot = uncaptured.clone();
        // Without a handler wgpu panics on any error that no scope caught; keep the first one
        // and return it from the next check instead.
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(Error::from_wgpu("an earlier GPU command", error));
            }
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_slot = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            *lost_slot.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(format!("{reason:?}: {message}"));
        });

        Ok(Context {
            device,
            queue,
            adapter: info,
            selection,
            limits,
            features,
            subgroup_min_size: if features.contains(wgpu::Features::SUBGROUP) {
                subgroup_min_size
            } else {
                0
            },
            pipelines: PipelineCache::default(),
            uncaptured,
            lost,
            constants: Mutex::new(HashMap::new()),
            tuning: TuningTable::new(),
            id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
            binding_limit: None,
        })
    }

    /// This context with tensors capped at `bytes` per storage binding, below what the device
    /// allows: to check on a large GPU that a model runs within a smaller one's limit (WebGPU's
    /// default is 128 MiB). Models split a batch that would pass it.
    pub fn with_binding_limit(mut self, bytes: u64) -> Self {
        self.binding_limit = Some(bytes);
        self
    }

    /// This context with `table`'s kernel configurations for the layers it names (layers it
    /// does not name keep the measured defaults). Set before any layer is prepared.
    pub fn with_tuning(mut self, table: TuningTable) -> Self {
        self.tuning = table;
        self
    }

    /// The configuration the tuning table gives the layer `shape_key`, if any.
    pub fn tuned_config(&self, shape_key: &str) -> Option<&str> {
        self.tuning.get(shape_key).map(String::as_str)
    }

    /// A number no other context of this process has.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    /// Why this adapter was chosen, for the CLI to print.
    pub fn selection_reason(&self) -> &str {
        &self.selection
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Whether GPU timestamp queries can be written between passes of one encoder.
    pub fn has_timestamps(&self) -> bool {
        self.features.contains(
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS,
        )
    }

    /// How many compute pipelines have been compiled on this context (each is compiled once).
    pub fn pipelines_compiled(&self) -> usize {
        self.pipelines.len()
    }

    /// Whether kernels that share data through subgroup broadcasts of 8 lanes can run: the
    /// device has subgroup operations and every subgroup has at least 8 invocations (subgroup
    /// sizes are powers of two, so a multiple of 8). lavapipe: yes (8); the GL backend: no.
    pub fn has_subgroups(&self) -> bool {
        self.subgroup_min_size >= 8
    }

    /// Whether shaders may use 64-bit integers (wgpu's SHADER_INT64), which the 64-bit loads
    /// of the packed8 kernels need. lavapipe: yes; the GL backend: no.
    pub fn has_int64(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_INT64)
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The largest buffer one storage binding may cover; tensors above it are rejected with
    /// [`Error::TooLarge`].
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
            .min(self.binding_limit.unwrap_or(u64::MAX))
    }

    /// Runs `f` (which creates resources or records commands) inside error scopes for
    /// out-of-memory, validation and internal errors, and returns the first one caught.
    pub fn scoped<T>(&self, during: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check_lost()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let result = f();
        // Scopes pop in reverse order of their push.
        let caught = [
            pollster::block_on(internal.pop()),
            pollster::block_on(validation.pop()),
            pollster::block_on(oom.pop()),
        ];
        let value = result?;
        if let Some(error) = caught.into_iter().flatten().next() {
            // An error is often the first sign of a lost device: say so rather than report
            // its symptom.
            let _ = self.device.poll(wgpu::PollType::Poll);
            self.check_lost()?;
            return Err(Error::from_wgpu(during, error));
        }
        Ok(value)
    }

    /// Submits recorded work, capturing errors raised at submission.
    pub fn submit(&self, during: &str, encoder: wgpu::CommandEncoder) -> Result<()> {
        self.scoped(during, || {
            self.queue.submit([encoder.finish()]);
            Ok(())
        })?;
        self.check()
    }

    /// Waits for all submitted work; reports device loss or a wait past [`SYNC_TIMEOUT`] as
    /// [`Error::DeviceLost`] rather than hanging.
    pub fn sync(&self) -> Result<()> {
        self.check_lost()?;
        match self.device.poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout: Some(SYNC_TIMEOUT),
        }) {
            Ok(_) => {}
            Err(wgpu::PollError::Timeout) => {
                return Err(Error::DeviceLost(format!(
                    "the GPU did not finish within {} s",
                    SYNC_TIMEOUT.as_secs()
                )))
            }
            Err(e) => return Err(Error::DeviceLost(e.to_string())),
        }
        self.check()
    }

    /// Returns any error wgpu reported outside a scope, and device loss.
    pub fn check(&self) -> Result<()> {
        self.check_lost()?;
        if let Some(error) = self
            .uncaptured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(error);
        }
        Ok(())
    }

    fn check_lost(&self) -> Result<()> {
        if let Some(reason) = self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(Error::DeviceLost(reason));
        }
        Ok(())
    }

    /// Creates a storage buffer of `bytes` bytes for tensor `what`, after checking the binding
    /// limit so an oversize tensor is an error that names it, not a validation failure later.
    pub(crate) fn storage_buffer(&self, what: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let limit = self.max_binding_bytes();
        if bytes > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                bytes,
                limit,
            });
        }
        // wgpu rejects zero-sized bindings; tensors are never empty, but keep padding buffers
        // (e.g. an absent bias) at least 16 bytes.
        let size = bytes.max(16).next_multiple_of(4);
        self.scoped(&format!("allocating {what}"), || {
            Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }))
        })
    }

    /// A storage buffer holding `data`.
    pub(crate) fn upload<T: bytemuck::Pod>(&self, what: &str, data: &[T]) -> Result<wgpu::Buffer> {
        let data: &[u8] = bytemuck::cast_slice(data);
        let buffer = self.storage_buffer(what, data.len() as u64)?;
        self.queue.write_buffer(&buffer, 0, data);
        Ok(buffer)
    }

    /// A uniform buffer holding one parameter struct.
    pub(crate) fn uniform<T: bytemuck::Pod>(&self, what: &str, value: &T) -> Result<wgpu::Buffer> {
        self.scoped(&format!("allocating {what}"), || {
            let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size: std::mem::size_of::<T>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.queue
                .write_buffer(&buffer, 0, bytemuck::bytes_of(value));
            Ok(buffer)
        })
    }

    /// A shared zero-filled buffer of at least `bytes`, bound where a kernel's optional input
    /// (a bias) is absent.
    pub(crate) fn zeros_buffer(&self, bytes: u64) -> Result<Arc<wgpu::Buffer>> {
        let mut constants = self.constants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(buffer) = constants.get("zeros") {
            if buffer.size() >= bytes {
                return Ok(buffer.clone());
            }
        }
        let buffer = Arc::new(self.storage_buffer("zero bias", bytes.max(1024))?);
        self.queue
            .write_buffer(&buffer, 0, &vec![0u8; buffer.size() as usize]);
        constants.insert("zeros", buffer.clone());
        Ok(buffer)
    }

    /// Copies `bytes` from the start of `buffer` to host memory.
    pub(crate) fn read_buffer(
        &self,
        what: &str,
        buffer: &wgpu::Buffer,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        let staging = self.scoped(&format!("reading {what}"), || {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read-back"),
                size: bytes.next_multiple_of(4),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = self.encoder();
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes.next_multiple_of(4));
            self.queue.submit([encoder.finish()]);
            Ok(staging)
        })?;
        let slice = staging.slice(..);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        self.sync()?;
        match receiver.recv_timeout(Duration::from_secs(1)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(Error::Validation {
                    during: format!("reading {what}"),
                    message: e.to_string(),
                })
            }
            Err(_) => {
                return Err(Error::DeviceLost(format!(
                    "mapping {what} for reading never completed"
                )))
            }
        }
        let data = slice.get_mapped_range().map_err(|e| Error::Internal {
            during: format!("reading {what}"),
            message: e.to_string(),
        })?[..bytes as usize]
            .to_vec();
        staging.unmap();
        Ok(data)
    }

    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }
}
