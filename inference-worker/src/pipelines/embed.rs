//! feature-extraction and sentence-similarity.

use std::time::Duration;

use candle_core::{Tensor, D};
use serde_json::{json, Value};
use tokenizers::TruncationDirection;

use super::{Kind, LoadedModel, Pooling, Task};
use crate::error::{Result, WorkerError};
use crate::models::encoder::l2_normalize;

pub fn texts(inputs: &Value) -> Result<Vec<String>> {
    match inputs {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| WorkerError::BadInput("inputs must be a string or a list of strings".into())),
        _ => Err(WorkerError::BadInput("inputs must be a string or a non-empty list of strings".into())),
    }
}

/// Which embedding task a request means: similarity requests carry a source sentence.
pub fn requested_task(body: &Value) -> Task {
    if body["inputs"].get("source_sentence").is_some() {
        Task::SentenceSimilarity
    } else {
        Task::FeatureExtraction
    }
}

struct Options {
    truncate: bool,
    left: bool,
}

/// Token ids per text, truncated (or refused) as asked.
fn tokenize(model: &LoadedModel, texts: &[String], opts: &Options) -> Result<Vec<Vec<u32>>> {
    let left_tokenizer;
    let tokenizer = if opts.left {
        let mut t = model.tokenizer.clone();
        if let Some(p) = t.get_truncation_mut() {
            p.direction = TruncationDirection::Left;
        }
        left_tokenizer = t;
        &left_tokenizer
    } else {
        &model.tokenizer
    };
    texts
        .iter()
        .map(|text| {
            if text.is_empty() {
                return Err(WorkerError::BadInput("inputs must not contain empty strings".into()));
            }
            let enc =
                tokenizer.encode(text.as_str(), true).map_err(|e| WorkerError::BadInput(format!("could not tokenize the input: {e}")))?;
            if !opts.truncate && !enc.get_overflowing().is_empty() {
                return Err(WorkerError::BadInput(format!(
                    "an input is longer than the model's {} tokens; shorten it or send \"truncate\": true",
                    model.max_tokens
                )));
            }
            Ok(enc.get_ids().to_vec())
        })
        .collect()
}

fn pooled(hidden: &[Tensor], pooling: &Pooling) -> Result<Vec<Tensor>> {
    hidden
        .iter()
        .map(|h| {
            Ok(match pooling {
                Pooling::Mean => h.mean(0)?,
                Pooling::Cls => h.get(0)?,
                Pooling::Max => h.max(0)?,
            })
        })
        .collect()
}

fn embedder(model: &LoadedModel) -> Result<(&super::batcher::EncodeQueue, &Option<Pooling>, bool)> {
    match &model.kind {
        Kind::Embedder { queue, pooling, normalize } => Ok((queue, pooling, *normalize)),
        _ => Err(WorkerError::Internal("not an embedding model".into())),
    }
}

pub async fn feature_extraction(model: &LoadedModel, body: &Value, timeout: Duration) -> Result<Value> {
    let texts = texts(&body["inputs"])?;
    let (queue, pooling, model_normalizes) = embedder(model)?;
    // TEI puts these at the root; accept them under `parameters` too.
    let param = |k: &str| if body[k].is_null() { body["parameters"][k].clone() } else { body[k].clone() };
    let opts = Options {
        truncate: param("truncate").as_bool().unwrap_or(true),
        left: match param("truncation_direction").as_str().map(str::to_ascii_lowercase).as_deref() {
            None | Some("right") => false,
            Some("left") => true,
            Some(other) => return Err(WorkerError::BadInput(format!("truncation_direction must be \"left\" or \"right\", not {other:?}"))),
        },
    };
    if let Some(name) = param("prompt_name").as_str() {
        return Err(WorkerError::BadInput(format!("prompt_name {name:?}: this model defines no prompts")));
    }
    let normalize = param("normalize").as_bool().unwrap_or(model_normalizes);
    let ids = tokenize(model, &texts, &opts)?;
    let hidden = queue.run(ids, timeout).await?;
    match pooling {
        Some(pooling) => {
            let mut rows = Vec::with_capacity(hidden.len());
            for v in pooled(&hidden, pooling)? {
                let v = if normalize { l2_normalize(&v)? } else { v };
                rows.push(v.to_vec1::<f32>()?);
            }
            Ok(json!(rows))
        }
        // Not a sentence-transformers model: token vectors, as the transformers pipeline gives.
        None => {
            let mut out = Vec::with_capacity(hidden.len());
            for h in &hidden {
                let h = if normalize { l2_normalize(h)? } else { h.clone() };
                out.push(h.to_vec2::<f32>()?);
            }
            Ok(json!(out))
        }
    }
}

pub async fn sentence_similarity(model: &LoadedModel, body: &Value, timeout: Duration) -> Result<Value> {
    let inputs = &body["inputs"];
    let source =
        inputs["source_sentence"].as_str().ok_or_else(|| WorkerError::BadInput("inputs.source_sentence must be a string".into()))?;
    let sentences =
        texts(&inputs["sentences"]).map_err(|_| WorkerError::BadInput("inputs.sentences must be a non-empty list of strings".into()))?;
    let (queue, pooling, _) = embedder(model)?;
    let mut all = vec![source.to_string()];
    all.extend(sentences);
    let ids = tokenize(model, &all, &Options { truncate: true, left: false })?;
    let hidden = queue.run(ids, timeout).await?;
    let vectors = match pooling {
        Some(p) => pooled(&hidden, p)?,
        None => pooled(&hidden, &Pooling::Mean)?,
    };
    let stacked = l2_normalize(&Tensor::stack(&vectors, 0)?)?;
    let source = stacked.get(0)?;
    let others = stacked.narrow(0, 1, vectors.len() - 1)?;
    let scores = others.broadcast_mul(&source)?.sum(D::Minus1)?.to_vec1::<f32>()?;
    Ok(json!(scores))
}
