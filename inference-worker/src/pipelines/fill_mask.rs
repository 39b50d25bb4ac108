//! fill-mask.

use std::time::Duration;

use serde_json::{json, Value};

use super::{classify::softmax, Kind, LoadedModel};
use crate::error::{Result, WorkerError};

pub async fn fill_mask(model: &LoadedModel, body: &Value, timeout: Duration) -> Result<Value> {
    let Kind::MaskedLm { queue, head, mask_token, mask_id } = &model.kind else {
        return Err(WorkerError::Internal("not a fill-mask model".into()));
    };
    let text = body["inputs"].as_str().ok_or_else(|| WorkerError::BadInput("inputs must be a string".into()))?;
    let params = &body["parameters"];
    let top_k = super::classify::top_k(params)?.unwrap_or(5);
    let enc = model.encode(text)?;
    let ids = enc.get_ids().to_vec();
    let masks: Vec<usize> = ids.iter().enumerate().filter(|(_, id)| *id == mask_id).map(|(i, _)| i).collect();
    if masks.is_empty() {
        return Err(WorkerError::BadInput(format!("no mask token ({mask_token}) found in the input")));
    }
    // Restrict the candidates to `targets`, as transformers does (first token of a multi-token target).
    let targets: Option<Vec<u32>> = match &params["targets"] {
        Value::Null => None,
        Value::String(s) => Some(vec![target_id(model, s)?]),
        Value::Array(a) => Some(a.iter().map(|t| target_id(model, t.as_str().unwrap_or_default())).collect::<Result<Vec<_>>>()?),
        _ => return Err(WorkerError::BadInput("targets must be a string or a list of strings".into())),
    };
    let hidden = queue.run(vec![ids.clone()], timeout).await?;
    let hidden = hidden.into_iter().next().ok_or_else(|| WorkerError::Internal("no output".into()))?;
    let mut per_mask = Vec::with_capacity(masks.len());
    for &pos in &masks {
        let logits = head.forward(&hidden.narrow(0, pos, 1)?)?.squeeze(0)?.to_vec1::<f32>()?;
        let probs = softmax(&logits);
        let mut candidates: Vec<(u32, f32)> = match &targets {
            Some(t) => t.iter().map(|&id| (id, probs.get(id as usize).copied().unwrap_or(0.0))).collect(),
            None => probs.iter().enumerate().map(|(i, &p)| (i as u32, p)).collect(),
        };
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
        candidates.truncate(top_k);
        let mut out = Vec::with_capacity(candidates.len());
        for (token, score) in candidates {
            let mut filled = ids.clone();
            filled[pos] = token;
            // With one mask transformers decodes without special tokens; with several it keeps them.
            let sequence = model.tokenizer.decode(&filled, masks.len() == 1).map_err(|e| WorkerError::Internal(e.to_string()))?;
            let token_str = model.tokenizer.decode(&[token], false).map_err(|e| WorkerError::Internal(e.to_string()))?;
            out.push(json!({ "sequence": sequence, "score": score, "token": token, "token_str": token_str }));
        }
        per_mask.push(out);
    }
    Ok(if per_mask.len() == 1 { json!(per_mask.remove(0)) } else { json!(per_mask) })
}

fn target_id(model: &LoadedModel, target: &str) -> Result<u32> {
    if let Some(id) = model.tokenizer.token_to_id(target) {
        return Ok(id);
    }
    let enc = model.tokenizer.encode(target, false).map_err(|e| WorkerError::BadInput(e.to_string()))?;
    enc.get_ids().first().copied().ok_or_else(|| WorkerError::BadInput(format!("target {target:?} is empty after tokenization")))
}
