//! Simulator throughput by stage: sampling the patient, rendering the series, encoding DICOM,
//! and writing files. `cargo bench --bench simulate [-- STUDIES]` prints a table; the end-to-end
//! rates of both export modes come from `benches/simulate_rate.sh`.

use ismf::simulate::dicom_writer::{encode, image_object, ImageRef};
use ismf::simulate::{Site, Study, StudyOptions};
use std::time::Instant;

fn main() {
    let studies: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(12);
    let opts = StudyOptions {
        seed: 1,
        site: Site::Internal,
        classes: Vec::new(),
        vendor: None,
        distractors: Default::default(),
    };
    let dir = std::env::temp_dir().join(format!("ismf-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let (mut t_sample, mut t_render, mut t_encode, mut t_write) = (0.0, 0.0, 0.0, 0.0);
    let (mut files, mut bytes, mut pixels) = (0usize, 0usize, 0usize);
    for i in 0..studies {
        let t = Instant::now();
        let study = Study::sample(&opts, i);
        t_sample += t.elapsed().as_secs_f64();
        for plan in &study.series {
            let t = Instant::now();
            let px = study.render(plan);
            t_render += t.elapsed().as_secs_f64();
            pixels += px.values.len();
            let mut instance = 0;
            for (si, stack) in px.stacks.iter().enumerate() {
                for slice in 0..stack.slices {
                    instance += 1;
                    let t = Instant::now();
                    let image = ImageRef {
                        stack: si,
                        slice,
                        instance,
                    };
                    let Ok(data) = encode(image_object(&study, plan, &px, image)) else {
                        panic!("encoding failed");
                    };
                    t_encode += t.elapsed().as_secs_f64();
                    let t = Instant::now();
                    let path = dir.join(format!("{i}_{}_{instance}.dcm", plan.number));
                    if let Err(e) = std::fs::write(&path, &data) {
                        panic!("{}: {e}", path.display());
                    }
                    t_write += t.elapsed().as_secs_f64();
                    files += 1;
                    bytes += data.len();
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let total = t_sample + t_render + t_encode + t_write;
    println!("simulator stages, {studies} studies, one study at a time (rendering uses all cores)");
    println!("| stage | seconds/study | share |");
    println!("|---|---|---|");
    for (name, t) in [
        ("sample patient + plan", t_sample),
        ("render series", t_render),
        ("encode DICOM", t_encode),
        ("write files", t_write),
    ] {
        println!(
            "| {name} | {:.3} | {:.0} % |",
            t / studies as f64,
            100.0 * t / total
        );
    }
    println!(
        "| total | {:.3} | {} files, {:.1} MB, {:.1} Mpixel per study |",
        total / studies as f64,
        files / studies,
        bytes as f64 / 1e6 / studies as f64,
        pixels as f64 / 1e6 / studies as f64
    );
}
