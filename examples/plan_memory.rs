use atrous::models::{Model, ModelOptions, Synthetic, REGISTRY};
fn main() {
    let ctx = atrous::Context::new().unwrap();
    for spec in REGISTRY {
        for (width, size) in [(8usize, [65usize, 65usize]), (64, [520, 520])] {
            let network = matches!(spec.name, "deeplabv3" | "fcn" | "pspnet");
            let sizes = Synthetic {
                base_width: width,
                in_channels: if width == 8 { 32 } else { 2048 },
                out_channels: if width == 8 { 16 } else { 256 },
                bottleneck_channels: if width == 8 { 16 } else { 512 },
                ..Default::default()
            };
            let mut options = ModelOptions::default();
            if spec.name == "aspp" {
                options.rates = Some(vec![6, 12, 18]);
            }
            if network {
                options.aux = true;
            }
            let model = Model::synthetic(spec.name, &sizes, &options, 1).unwrap();
            let shape = if network {
                [1, 3, size[0], size[1]]
            } else {
                [1, sizes.in_channels, size[0] / 8, size[1] / 8]
            };
            let plan = model.plan(&ctx, shape).unwrap();
            let m = plan.memory();
            println!("{:13} w{width:3} {:?}: allocated {:.2} MiB bound {:.2} MiB ratio {:.3} slots {} tensors {}", spec.name, shape, m.allocated_bytes() as f64 / 1048576.0, m.lower_bound_bytes as f64 / 1048576.0, m.allocated_bytes() as f64 / m.lower_bound_bytes as f64, m.slots.len(), m.tensors.len());
        }
    }
}
