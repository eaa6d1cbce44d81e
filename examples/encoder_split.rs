//! Issue 5's question: do the four sequence encoders, run concurrently, beat one graph?
//!
//! `cargo run --release --example encoder_split -- FULL.onnx SPLIT_DIR [RUNS]`
//!
//! SPLIT_DIR holds `encoder.onnx` and `fusion.onnx` from `benches/encoder_split.py`. Prints the
//! median latency of one study (zeros in, the cost does not depend on values) for:
//! the whole graph on one thread; the whole graph with tract's 2-thread matrix executor; the four
//! encoders split over two OS threads (two each, single-threaded tract) followed by the fusion
//! head; and the same on one thread (the split's own overhead).

use anyhow::Context;
use std::time::Instant;
use tract_onnx::prelude::*;

type Plan = Arc<TypedRunnableModel>;

fn load(path: &str, shapes: &[&[usize]]) -> anyhow::Result<Plan> {
    let mut model = tract_onnx::onnx()
        .model_for_path(path)
        .with_context(|| format!("loading {path}"))?;
    for (i, shape) in shapes.iter().enumerate() {
        model.set_input_fact(i, f32::fact(shape.to_vec()).into())?;
    }
    model.into_optimized()?.into_runnable()
}

fn zeros(shape: &[usize]) -> TValue {
    Tensor::zero::<f32>(shape).expect("tensor").into()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(t))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [full, split, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: encoder_split FULL.onnx SPLIT_DIR [RUNS]");
    };
    let runs: usize = rest.first().map(|r| r.parse()).transpose()?.unwrap_or(50);
    let stack: &[usize] = &[1, 5, 160, 160];
    let token: &[usize] = &[1, 128];
    let clinical: &[usize] = &[1, 9];
    let whole = load(full, &[stack, stack, stack, stack, clinical])?;
    let encoder = load(&format!("{split}/encoder.onnx"), &[stack])?;
    let fusion = load(
        &format!("{split}/fusion.onnx"),
        &[token, token, token, token, clinical],
    )?;
    let whole_inputs = || -> TVec<TValue> {
        tvec![
            zeros(stack),
            zeros(stack),
            zeros(stack),
            zeros(stack),
            zeros(clinical)
        ]
    };
    let run_encoder =
        |e: &Plan| -> anyhow::Result<TValue> { Ok(e.run(tvec![zeros(stack)])?.remove(0)) };

    ismf::model::set_threads(1);
    let whole_1 = time(runs, || whole.run(whole_inputs()).map(|_| ()))?;
    let split_serial = time(runs, || {
        let mut tokens: TVec<TValue> = (0..4)
            .map(|_| run_encoder(&encoder))
            .collect::<anyhow::Result<_>>()?;
        tokens.push(zeros(clinical));
        fusion.run(tokens)?;
        Ok(())
    })?;
    let split_2 = time(runs, || {
        let (a, b) = std::thread::scope(|s| {
            let h = s.spawn(|| -> anyhow::Result<Vec<TValue>> {
                Ok(vec![run_encoder(&encoder)?, run_encoder(&encoder)?])
            });
            let b = (|| -> anyhow::Result<Vec<TValue>> {
                Ok(vec![run_encoder(&encoder)?, run_encoder(&encoder)?])
            })();
            (h.join().expect("thread"), b)
        });
        let mut tokens: TVec<TValue> = a?.into_iter().chain(b?).collect();
        tokens.push(zeros(clinical));
        fusion.run(tokens)?;
        Ok(())
    })?;
    let encoder_alone = time(runs, || run_encoder(&encoder).map(|_| ()))?;
    let fusion_alone = time(runs, || {
        let mut tokens: TVec<TValue> = (0..4).map(|_| zeros(token)).collect();
        tokens.push(zeros(clinical));
        fusion.run(tokens)?;
        Ok(())
    })?;
    ismf::model::set_threads(2);
    let whole_2 = time(runs, || whole.run(whole_inputs()).map(|_| ()))?;
    println!("| layout | ms / study (median of {runs}) |");
    println!("|---|---|");
    println!("| whole graph, 1 thread | {whole_1:.2} |");
    println!("| whole graph, tract 2-thread matmul executor | {whole_2:.2} |");
    println!("| split: 4 encoders then fusion, 1 thread | {split_serial:.2} |");
    println!("| split: 4 encoders on 2 threads (2 each), then fusion | {split_2:.2} |");
    println!("| one encoder alone | {encoder_alone:.2} |");
    println!("| fusion head alone | {fusion_alone:.3} |");
    Ok(())
}
