//! ISMF-Net on tract: loaded, checked and optimised once per process, then run from any thread.

use super::card::CLASSES;
use super::card::{check, CheckedCard, InputSource};
use super::error::ModelError;
use super::variant::{Backend, Precision};
use crate::preprocess::{ModelInputs, PreprocessParams};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::SimpleState;
use tract_onnx::tract_core::runtime::{runtime_for_name, Runnable, Runtime};

/// A runnable model. The plan is immutable and shared: clones are cheap, and `run` may be called
/// from several threads at once (each call builds its own state).
#[derive(Clone)]
pub struct Model {
    card: Arc<CheckedCard>,
    /// tract's plan for the chosen runtime (the CPU plan, or the CUDA one).
    plan: Arc<dyn Runnable>,
    /// Where the plan runs: `Cpu` or `Cuda`, never `Auto`.
    backend: Backend,
    /// Datum type of each graph input after any precision transform (f16 inputs for `f16`).
    input_types: Vec<DatumType>,
    load_ms: f64,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("card", &self.card.card_path)
            .field("file", &self.card.file_path)
            .field("precision", &self.card.file.precision)
            .field("backend", &self.backend)
            .finish()
    }
}

/// Class probabilities in [`CLASSES`] order.
pub type Probabilities = [f32; 5];

impl Model {
    /// Checks the card at `card_path` (hashes, inputs against `params`) and loads the file for
    /// `precision`: input facts from the card, the precision transform, tract's optimiser.
    pub fn load(
        card_path: &Path,
        precision: Precision,
        params: &PreprocessParams,
    ) -> Result<Model, ModelError> {
        Self::load_on(card_path, precision, params, Backend::Cpu)
    }

    /// [`Model::load`] on a chosen backend. `Cuda` fails with what is missing (no CUDA in this
    /// build, or no driver/toolkit on this machine); `Auto` falls back to the CPU and logs why.
    pub fn load_on(
        card_path: &Path,
        precision: Precision,
        params: &PreprocessParams,
        backend: Backend,
    ) -> Result<Model, ModelError> {
        let started = Instant::now();
        let (runtime, backend) = choose_runtime(backend)?;
        let card = check(card_path, precision, params)?;
        let tract = |e: TractError| ModelError::Tract {
            path: card.file_path.clone(),
            source: e,
        };
        let mut model = tract_onnx::onnx()
            .model_for_path(&card.file_path)
            .map_err(tract)?;
        for (i, input) in card.card.inputs.iter().enumerate() {
            model
                .set_input_fact(i, f32::fact(&input.shape).into())
                .map_err(tract)?;
        }
        let mut typed = model.into_typed().map_err(tract)?;
        let names: Vec<String> = typed
            .input_outlets()
            .map_err(tract)?
            .iter()
            .map(|o| typed.node(o.node).name.clone())
            .collect();
        let card_names: Vec<String> = card.card.inputs.iter().map(|i| i.name.clone()).collect();
        if names != card_names {
            return Err(ModelError::Card {
                path: card.card_path.clone(),
                problems: vec![format!(
                    "inputs: the graph's inputs are {names:?}, the card lists {card_names:?}"
                )],
            });
        }
        if let Some(name) = &card.file.transform {
            let transform = tract_onnx::tract_core::transform::get_transform(name)
                .map_err(tract)?
                .ok_or_else(|| ModelError::Card {
                    path: card.card_path.clone(),
                    problems: vec![format!("files: unknown tract transform {name:?}")],
                })?;
            transform.transform(&mut typed).map_err(tract)?;
        }
        let input_types = typed
            .input_outlets()
            .map_err(tract)?
            .iter()
            .map(|o| typed.outlet_fact(*o).map(|f| f.datum_type))
            .collect::<TractResult<Vec<_>>>()
            .map_err(tract)?;
        // The CPU runtime optimises and plans; the CUDA one first moves the ops it has kernels
        // for onto the GPU (the rest stay on the CPU with copies between).
        let plan: Arc<dyn Runnable> = runtime.prepare(typed).map_err(tract)?.into();
        let model = Model {
            card: Arc::new(card),
            plan,
            backend,
            input_types,
            load_ms: 0.0,
        };
        // Warm-up: the first run pays for lazy packing and allocation; do it here, not on a study.
        model.run_raw(&zeros(&model.card))?;
        Ok(Model {
            load_ms: started.elapsed().as_secs_f64() * 1e3,
            ..model
        })
    }

    pub fn card(&self) -> &CheckedCard {
        &self.card
    }

    pub fn precision(&self) -> Precision {
        self.card.file.precision
    }

    /// Where the model runs (`Cpu` or `Cuda`; `Auto` was resolved at load).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Time taken by `load`, including the card check and the warm-up run.
    pub fn load_ms(&self) -> f64 {
        self.load_ms
    }

    /// Runs one study's inputs; probabilities in [`CLASSES`] order.
    pub fn run(&self, inputs: &ModelInputs) -> Result<Probabilities, ModelError> {
        self.run_raw(&self.raw_inputs(inputs)?)
    }

    /// Runs raw input buffers given in card input order (for tests and benchmarks on stored
    /// tensors).
    pub fn run_raw<S: AsRef<[f32]>>(&self, raw: &[S]) -> Result<Probabilities, ModelError> {
        let values = self.tensors(raw)?;
        let outputs = self.plan.run(values).map_err(|e| self.tract_error(e))?;
        self.probabilities(&outputs[0])
    }

    /// Time per node over `runs` runs after a warm-up, largest first: where tract spends a study.
    pub fn profile(&self, inputs: &ModelInputs, runs: usize) -> Result<Vec<NodeTime>, ModelError> {
        let raw = self.raw_inputs(inputs)?;
        let plan = self.plan.typed_plan().ok_or_else(|| {
            self.tract_error(TractError::msg(
                "this runtime cannot be profiled node by node",
            ))
        })?;
        let mut state = SimpleState::new(plan).map_err(|e| self.tract_error(e))?;
        // Milliseconds per run, indexed by node id; nodes that never ran stay None.
        let mut ms: Vec<Option<f64>> = vec![None; plan.model().nodes().len()];
        for run in 0..=runs {
            let values = self.tensors(&raw)?;
            state
                .run_plan_with_eval(values, |ctx, op_state, node, input| {
                    let t = Instant::now();
                    let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, input);
                    if run > 0 {
                        let per_run = t.elapsed().as_secs_f64() * 1e3 / runs as f64;
                        *ms[node.id].get_or_insert(0.0) += per_run;
                    }
                    out
                })
                .map_err(|e| self.tract_error(e))?;
        }
        let nodes = plan.model().nodes();
        let mut times: Vec<NodeTime> = ms
            .into_iter()
            .zip(nodes)
            .filter_map(|(ms, node)| {
                ms.map(|ms| NodeTime {
                    node: node.name.clone(),
                    op: node.op().name().to_string(),
                    ms,
                })
            })
            .collect();
        times.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Ok(times)
    }

    fn tract_error(&self, e: TractError) -> ModelError {
        ModelError::Tract {
            path: self.card.file_path.clone(),
            source: e,
        }
    }

    /// Position among the graph's inputs of `kind`'s stack.
    pub fn input_index(&self, kind: crate::series::SequenceKind) -> Option<usize> {
        self.card
            .sources
            .iter()
            .position(|s| matches!(s, InputSource::Sequence(k) if *k == kind))
    }

    /// The study's buffers in card input order.
    pub fn raw_inputs<'a>(&self, inputs: &'a ModelInputs) -> Result<Vec<&'a [f32]>, ModelError> {
        let mut raw = Vec::with_capacity(self.card.sources.len());
        for source in &self.card.sources {
            match source {
                InputSource::Sequence(kind) => {
                    let stack = inputs
                        .stacks
                        .iter()
                        .find(|(k, _)| k == kind)
                        .map(|(_, s)| s.data.as_slice())
                        .ok_or(ModelError::MissingInput(kind.key()))?;
                    raw.push(stack);
                }
                InputSource::Clinical => raw.push(inputs.clinical.as_slice()),
            }
        }
        Ok(raw)
    }

    /// Input tensors in the graph's datum types, sizes checked against the card.
    fn tensors<S: AsRef<[f32]>>(&self, raw: &[S]) -> Result<TVec<TValue>, ModelError> {
        let tract = |e: TractError| self.tract_error(e);
        let inputs = self.card.card.inputs.iter();
        let mut values = TVec::new();
        for ((input, data), dt) in inputs.zip(raw).zip(&self.input_types) {
            let data = data.as_ref();
            let expected: usize = input.shape.iter().product();
            if data.len() != expected {
                return Err(ModelError::InputSize {
                    name: input.name.clone(),
                    expected,
                    actual: data.len(),
                });
            }
            let tensor = Tensor::from_shape(&input.shape, data).map_err(tract)?;
            let tensor = if *dt == DatumType::F32 {
                tensor
            } else {
                tensor.cast_to_dt(*dt).map_err(tract)?.into_owned()
            };
            values.push(tensor.into_tvalue());
        }
        Ok(values)
    }

    /// The output tensor as probabilities in [`CLASSES`] order.
    fn probabilities(&self, output: &TValue) -> Result<Probabilities, ModelError> {
        let tract = |e: TractError| self.tract_error(e);
        let out = output.cast_to::<f32>().map_err(tract)?.into_owned();
        let view = out.try_as_plain_ram().map_err(tract)?;
        let out = view.as_slice::<f32>().map_err(tract)?;
        if out.len() != CLASSES.len() {
            return Err(ModelError::OutputSize(out.len()));
        }
        Ok(self.card.class_order.map(|i| out[i]))
    }
}

/// Time one node took per run (`Model::profile`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeTime {
    pub node: String,
    pub op: String,
    pub ms: f64,
}

/// Threads for tract's matrix products in this process (1 = the calling thread only). Set it
/// before loading: tract reads the executor when a plan runs, and one process serves one model.
pub fn set_threads(threads: usize) {
    use tract_linalg::multithread::{set_default_executor, Executor};
    set_default_executor(if threads > 1 {
        Executor::multithread(threads)
    } else {
        Executor::SingleThread
    });
}

/// tract's runtime for `backend`, and the backend it resolves to.
fn choose_runtime(backend: Backend) -> Result<(&'static dyn Runtime, Backend), ModelError> {
    let cpu = || {
        runtime_for_name("cpu")
            .ok()
            .flatten()
            .ok_or_else(|| ModelError::Backend {
                backend: Backend::Cpu,
                reason: "tract's CPU runtime is missing from this build".into(),
            })
    };
    match backend {
        Backend::Cpu => Ok((cpu()?, Backend::Cpu)),
        Backend::Cuda => cuda_runtime()
            .map(|rt| (rt, Backend::Cuda))
            .map_err(|reason| ModelError::Backend { backend, reason }),
        Backend::Auto => match cuda_runtime() {
            Ok(rt) => Ok((rt, Backend::Cuda)),
            Err(reason) => {
                tracing::warn!(%reason, "backend auto: running on the CPU");
                Ok((cpu()?, Backend::Cpu))
            }
        },
    }
}

/// tract's CUDA runtime, or why there is none: not built in, or CUDA not usable here (tract
/// names the library it could not load, e.g. "CUDA driver library not found").
fn cuda_runtime() -> Result<&'static dyn Runtime, String> {
    if !cfg!(feature = "cuda") {
        return Err("this build has no CUDA backend (rebuild with `--features cuda`)".into());
    }
    match runtime_for_name("cuda") {
        Ok(Some(rt)) => Ok(rt),
        Ok(None) => Err("tract's CUDA runtime is not registered in this build".into()),
        Err(e) => Err(format!("CUDA is not usable on this machine: {e:#}")),
    }
}

fn zeros(card: &CheckedCard) -> Vec<Vec<f32>> {
    card.card
        .inputs
        .iter()
        .map(|i| vec![0f32; i.shape.iter().product()])
        .collect()
}
