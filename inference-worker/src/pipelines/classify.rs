//! text-classification.

use std::time::Duration;

use serde_json::{json, Value};

use super::{embed::texts, Kind, LoadedModel};
use crate::error::{Result, WorkerError};

#[derive(Clone, Copy)]
pub enum Function {
    Softmax,
    Sigmoid,
    None,
}

pub fn function(params: &Value, multi_label: bool) -> Result<Function> {
    Ok(match params["function_to_apply"].as_str() {
        None if multi_label => Function::Sigmoid,
        None => Function::Softmax,
        Some("softmax") => Function::Softmax,
        Some("sigmoid") => Function::Sigmoid,
        Some("none") => Function::None,
        Some(other) => return Err(WorkerError::BadInput(format!("function_to_apply must be softmax, sigmoid or none, not {other:?}"))),
    })
}

pub fn apply(function: Function, logits: &[f32]) -> Vec<f32> {
    match function {
        Function::Softmax => softmax(logits),
        Function::Sigmoid => logits.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect(),
        Function::None => logits.to_vec(),
    }
}

pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

pub fn top_k(params: &Value) -> Result<Option<usize>> {
    match &params["top_k"] {
        Value::Null => Ok(None),
        v => match v.as_u64() {
            Some(k) if k > 0 => Ok(Some(k as usize)),
            _ => Err(WorkerError::BadInput("top_k must be a positive integer".into())),
        },
    }
}

pub async fn text_classification(model: &LoadedModel, body: &Value, timeout: Duration) -> Result<Value> {
    let Kind::Classifier { queue, head, labels, multi_label } = &model.kind else {
        return Err(WorkerError::Internal("not a classification model".into()));
    };
    let texts = texts(&body["inputs"])?;
    let params = &body["parameters"];
    let function = function(params, *multi_label)?;
    let k = top_k(params)?.unwrap_or(labels.len());
    let ids = texts.iter().map(|t| Ok(model.encode(t)?.get_ids().to_vec())).collect::<Result<Vec<_>>>()?;
    let hidden = queue.run(ids, timeout).await?;
    let mut out = Vec::with_capacity(hidden.len());
    for h in hidden {
        let logits = head.forward(&h.unsqueeze(0)?)?.squeeze(0)?.to_vec1::<f32>()?;
        let scores = apply(function, &logits);
        let mut ranked: Vec<(usize, f32)> = scores.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(k);
        out.push(ranked.into_iter().map(|(i, s)| json!({ "label": labels[i], "score": s })).collect::<Vec<_>>());
    }
    // Nested even for one text: InferenceClient takes element 0.
    Ok(json!(out))
}
