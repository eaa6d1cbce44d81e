//! The ONNX-export bridge: the graph the appliance runs, written as fp32 and fp16 ONNX with a
//! `contract.json`, for GPU runtimes the appliance does not embed (TensorRT's `trtexec --onnx`,
//! onnxruntime-gpu).
//!
//! The fp32 file is the card's own f32 file, byte for byte, after the card check (sha256,
//! inputs, static shapes): it is already batch-norm folded with named, static inputs, so
//! re-serialising it could only lose something. The fp16 file is converted here rather than
//! shipped: every float initializer, constant and value type becomes float16, while the graph's
//! inputs and outputs stay float32 behind `Cast` nodes, so one input contract (and the same
//! preprocessing) serves both files and a consumer never converts tensors itself.

use super::card::{check, CheckedCard};
use super::error::ModelError;
use super::variant::Precision;
use crate::preprocess::PreprocessParams;
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, type_proto, GraphProto, ModelProto,
    NodeProto, TensorProto, ValueInfoProto,
};
use tract_onnx::prelude::f16;

/// Errors of the export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{path}: not an ONNX model: {message}")]
    Decode { path: PathBuf, message: String },
    #[error("{path}: cannot export: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One written file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedFile {
    pub path: PathBuf,
    pub precision: &'static str,
    pub sha256: String,
}

/// What `export_onnx` wrote.
#[derive(Clone, Debug)]
pub struct Export {
    pub files: Vec<ExportedFile>,
    pub contract: PathBuf,
}

/// File names inside the output folder.
pub const F32_FILE: &str = "ismf-net-fp32.onnx";
pub const F16_FILE: &str = "ismf-net-fp16.onnx";
pub const CONTRACT_FILE: &str = "contract.json";

/// Checks the card, then writes the fp32 and fp16 graphs and `contract.json` into `out`.
pub fn export_onnx(card_path: &Path, out: &Path) -> Result<Export, ExportError> {
    let card = check(card_path, Precision::F32, &PreprocessParams::default())?;
    let path = card.file_path.clone();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let model = ModelProto::decode(bytes.as_slice()).map_err(|e| ExportError::Decode {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let graph = model.graph.as_ref().ok_or_else(|| ExportError::Decode {
        path: path.clone(),
        message: "no graph".into(),
    })?;
    check_static_inputs(graph, &card, &path)?;
    let half = to_f16(model).map_err(|reason| ExportError::Unsupported {
        path: path.clone(),
        reason,
    })?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut files = Vec::new();
    for (name, precision, data) in [
        (F32_FILE, "fp32", bytes),
        (F16_FILE, "fp16", half.encode_to_vec()),
    ] {
        let target = out.join(name);
        std::fs::write(&target, &data).map_err(io(&target))?;
        files.push(ExportedFile {
            path: target,
            precision,
            sha256: hex(&Sha256::digest(&data)),
        });
    }
    // The card's own JSON for inputs, outputs and preprocessing, so the contract repeats it
    // word for word.
    let card_json: serde_json::Value = std::fs::read_to_string(&card.card_path)
        .map_err(io(&card.card_path))
        .and_then(|text| {
            serde_json::from_str(&text).map_err(|e| ExportError::Io {
                path: card.card_path.clone(),
                source: e.into(),
            })
        })?;
    let contract = out.join(CONTRACT_FILE);
    let text =
        serde_json::to_string_pretty(&contract_json(&card, &card_json, &files)).map_err(|e| {
            ExportError::Io {
                path: contract.clone(),
                source: e.into(),
            }
        })?;
    std::fs::write(&contract, text + "\n").map_err(io(&contract))?;
    Ok(Export { files, contract })
}

/// The graph's inputs must be the card's, in order, with every dimension a fixed number:
/// TensorRT builds an engine for static shapes without optimisation profiles.
fn check_static_inputs(
    graph: &GraphProto,
    card: &CheckedCard,
    path: &Path,
) -> Result<(), ExportError> {
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(&i.name.as_str()))
        .collect();
    let unsupported = |reason: String| ExportError::Unsupported {
        path: path.to_path_buf(),
        reason,
    };
    if inputs.len() != card.card.inputs.len() {
        return Err(unsupported(format!(
            "the graph has {} inputs, the card lists {}",
            inputs.len(),
            card.card.inputs.len()
        )));
    }
    for (input, want) in inputs.iter().zip(&card.card.inputs) {
        let dims = tensor_type(input).and_then(|t| t.shape.as_ref()).map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimValue(v))
                        if v > 0 =>
                    {
                        Some(v as usize)
                    }
                    _ => None,
                })
                .collect::<Option<Vec<usize>>>()
        });
        match dims {
            Some(Some(dims)) if input.name == want.name && dims == want.shape => {}
            _ => {
                return Err(unsupported(format!(
                    "graph input {:?} is not the card's static {:?} {:?}",
                    input.name, want.name, want.shape
                )))
            }
        }
    }
    Ok(())
}

fn tensor_type(v: &ValueInfoProto) -> Option<&type_proto::Tensor> {
    match v.r#type.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(t) => Some(t),
    }
}

fn tensor_type_mut(v: &mut ValueInfoProto) -> Option<&mut type_proto::Tensor> {
    match v.r#type.as_mut()?.value.as_mut()? {
        type_proto::Value::TensorType(t) => Some(t),
    }
}

const FLOAT: i32 = DataType::Float as i32;
const FLOAT16: i32 = DataType::Float16 as i32;

/// The fp16 graph: float tensors, constants and value types become float16; graph inputs and
/// outputs stay float32 through `Cast` nodes at the edges.
fn to_f16(mut model: ModelProto) -> Result<ModelProto, String> {
    let graph = model.graph.as_mut().ok_or("no graph")?;
    if !model.functions.is_empty() {
        return Err("graphs with local functions are not converted".into());
    }
    for t in &mut graph.initializer {
        tensor_to_f16(t)?;
    }
    let initializers: Vec<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    for node in &mut graph.node {
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(format!(
                "node {:?}: operator domain {:?} is not converted",
                node.name, node.domain
            ));
        }
        for a in &mut node.attribute {
            if a.r#type == AttributeType::Graph as i32 || a.r#type == AttributeType::Graphs as i32 {
                return Err(format!("node {:?}: subgraphs are not converted", node.name));
            }
            if let Some(t) = a.t.as_mut() {
                tensor_to_f16(t)?;
            }
            for t in &mut a.tensors {
                tensor_to_f16(t)?;
            }
            // Casts to float inside the graph now cast to half.
            if node.op_type == "Cast" && a.name == "to" && a.i == FLOAT as i64 {
                a.i = FLOAT16 as i64;
            }
        }
    }
    for v in &mut graph.value_info {
        if let Some(t) = tensor_type_mut(v) {
            if t.elem_type == FLOAT {
                t.elem_type = FLOAT16;
            }
        }
    }
    // Inputs: the graph reads `name`; inside, everything reads `name.fp16`.
    let mut renamed: HashMap<String, String> = HashMap::new();
    let mut edges = Vec::new();
    for input in &graph.input {
        if initializers.contains(&input.name)
            || tensor_type(input).map(|t| t.elem_type) != Some(FLOAT)
        {
            continue;
        }
        let inner = format!("{}.fp16", input.name);
        edges.push(cast(&input.name, &inner, FLOAT16));
        renamed.insert(input.name.clone(), inner);
    }
    for node in &mut graph.node {
        for i in &mut node.input {
            if let Some(inner) = renamed.get(i) {
                *i = inner.clone();
            }
        }
    }
    // Outputs: the producing node writes `name.fp16`; a cast writes `name` in float32.
    let mut tail = Vec::new();
    for output in &graph.output {
        if tensor_type(output).map(|t| t.elem_type) != Some(FLOAT) {
            continue;
        }
        let inner = format!("{}.fp16", output.name);
        for node in &mut graph.node {
            for o in &mut node.output {
                if *o == output.name {
                    *o = inner.clone();
                }
            }
            for i in &mut node.input {
                if *i == output.name {
                    *i = inner.clone();
                }
            }
        }
        tail.push(cast(&inner, &output.name, FLOAT));
    }
    edges.append(&mut graph.node);
    edges.extend(tail);
    graph.node = edges;
    model.producer_name = "ismf export-onnx".into();
    Ok(model)
}

fn cast(from: &str, to: &str, elem_type: i32) -> NodeProto {
    NodeProto {
        input: vec![from.into()],
        output: vec![to.into()],
        name: format!("cast:{to}"),
        op_type: "Cast".into(),
        attribute: vec![tract_onnx::pb::AttributeProto {
            name: "to".into(),
            r#type: AttributeType::Int as i32,
            i: elem_type as i64,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A float32 tensor rewritten as float16 (raw little-endian data); other types untouched.
fn tensor_to_f16(t: &mut TensorProto) -> Result<(), String> {
    if t.data_type != FLOAT {
        return Ok(());
    }
    if !t.external_data.is_empty() {
        return Err(format!(
            "tensor {:?}: external data is not converted",
            t.name
        ));
    }
    let values: Vec<f32> = if !t.raw_data.is_empty() {
        t.raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        std::mem::take(&mut t.float_data)
    };
    t.raw_data = values
        .iter()
        .flat_map(|v| f16::from_f32(*v).to_le_bytes())
        .collect();
    t.float_data.clear();
    t.data_type = FLOAT16;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `contract.json`: what a consumer must feed and what it gets back.
fn contract_json(
    card: &CheckedCard,
    card_json: &serde_json::Value,
    files: &[ExportedFile],
) -> serde_json::Value {
    let c = &card.card;
    serde_json::json!({
        "schema_version": 1,
        "model": {"name": c.name, "version": c.version, "source_sha256": card_file_sha(card)},
        "notice": c.notice,
        "files": files.iter().map(|f| serde_json::json!({
            "path": f.path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "precision": f.precision,
            "sha256": f.sha256,
            "io_dtype": "float32",
        })).collect::<Vec<_>>(),
        "inputs": card_json["inputs"],
        "preprocessing": card_json["preprocessing"],
        "outputs": card_json["outputs"],
        "classes": c.classes,
        "batch": "fixed at 1 (static shapes)",
        "consumers": {
            "trtexec": format!("trtexec --onnx={F16_FILE} --fp16 --saveEngine=ismf-net.plan (or --onnx={F32_FILE} without --fp16)"),
            "onnxruntime-gpu": "onnxruntime.InferenceSession(path, providers=['CUDAExecutionProvider', 'CPUExecutionProvider']); feed float32 arrays named as in inputs",
        },
    })
}

fn card_file_sha(card: &CheckedCard) -> String {
    card.card
        .files
        .iter()
        .find(|f| f.precision == Precision::F32 && f.transform.is_none())
        .map(|f| f.sha256.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_tensors_become_half_and_others_stay() {
        let mut t = TensorProto {
            data_type: FLOAT,
            dims: vec![3],
            float_data: vec![1.0, -0.5, 65504.0],
            ..Default::default()
        };
        tensor_to_f16(&mut t).expect("convert");
        assert_eq!(t.data_type, FLOAT16);
        assert!(t.float_data.is_empty());
        let back: Vec<f32> = t
            .raw_data
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect();
        assert_eq!(back, vec![1.0, -0.5, 65504.0]);
        let mut ints = TensorProto {
            data_type: DataType::Int64 as i32,
            raw_data: vec![1, 0, 0, 0, 0, 0, 0, 0],
            ..Default::default()
        };
        let before = ints.clone();
        tensor_to_f16(&mut ints).expect("ints");
        assert_eq!(ints, before);
    }

    #[test]
    fn graph_edges_stay_float32_behind_casts() {
        let value = |name: &str| ValueInfoProto {
            name: name.into(),
            r#type: Some(tract_onnx::pb::TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: FLOAT,
                    shape: None,
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let model = ModelProto {
            graph: Some(GraphProto {
                node: vec![NodeProto {
                    input: vec!["x".into(), "w".into()],
                    output: vec!["y".into()],
                    op_type: "Add".into(),
                    ..Default::default()
                }],
                initializer: vec![TensorProto {
                    name: "w".into(),
                    data_type: FLOAT,
                    float_data: vec![2.0],
                    ..Default::default()
                }],
                input: vec![value("x")],
                output: vec![value("y")],
                ..Default::default()
            }),
            ..Default::default()
        };
        let half = to_f16(model).expect("convert");
        let g = half.graph.expect("graph");
        let ops: Vec<(&str, &[String], &[String])> = g
            .node
            .iter()
            .map(|n| (n.op_type.as_str(), &n.input[..], &n.output[..]))
            .collect();
        assert_eq!(
            ops,
            vec![
                ("Cast", &["x".to_string()][..], &["x.fp16".to_string()][..]),
                (
                    "Add",
                    &["x.fp16".to_string(), "w".to_string()][..],
                    &["y.fp16".to_string()][..]
                ),
                ("Cast", &["y.fp16".to_string()][..], &["y".to_string()][..]),
            ]
        );
        assert_eq!(g.initializer[0].data_type, FLOAT16);
        assert_eq!(tensor_type(&g.input[0]).map(|t| t.elem_type), Some(FLOAT));
        assert_eq!(tensor_type(&g.output[0]).map(|t| t.elem_type), Some(FLOAT));
    }
}
