//! summarization, translation and text2text-generation on an encoder-decoder.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Kind, LoadedModel, Task};
use crate::error::{Result, WorkerError};
use crate::limits::ComputeSlots;

const DEFAULT_MAX_NEW_TOKENS: usize = 20;

/// The prefix transformers' pipelines put before the input (`summarize: `, `translate English to
/// German: `), from config.json's task_specific_params.
fn prefix(task_params: &Value, task: Task, params: &Value) -> String {
    let entry = match task {
        Task::Summarization => task_params.get("summarization"),
        Task::Translation => match (params["src_lang"].as_str(), params["tgt_lang"].as_str()) {
            (Some(src), Some(tgt)) => task_params.get(format!("translation_{src}_to_{tgt}")),
            _ => {
                let all: Vec<&Value> = task_params
                    .as_object()
                    .map(|m| m.iter().filter(|(k, _)| k.starts_with("translation")).map(|(_, v)| v).collect())
                    .unwrap_or_default();
                if all.len() == 1 {
                    Some(all[0])
                } else {
                    None
                }
            }
        },
        _ => None,
    };
    entry.and_then(|e| e["prefix"].as_str()).unwrap_or_default().to_string()
}

fn max_new_tokens(params: &Value) -> Result<usize> {
    let g = &params["generate_parameters"];
    for v in [&g["max_new_tokens"], &params["max_new_tokens"]] {
        if !v.is_null() {
            return match v.as_u64() {
                Some(n) if n > 0 => Ok(n as usize),
                _ => Err(WorkerError::BadInput("max_new_tokens must be a positive integer".into())),
            };
        }
    }
    // transformers' max_length counts the decoder start token.
    if let Some(n) = g["max_length"].as_u64() {
        return Ok((n as usize).saturating_sub(1).max(1));
    }
    Ok(DEFAULT_MAX_NEW_TOKENS)
}

pub async fn run(
    model: std::sync::Arc<LoadedModel>,
    task: Task,
    body: &Value,
    compute: std::sync::Arc<ComputeSlots>,
    timeout: Duration,
) -> Result<Value> {
    let Kind::Seq2Seq { model: s2s, task_params } = &model.kind else {
        return Err(WorkerError::Internal("not an encoder-decoder model".into()));
    };
    let text = body["inputs"].as_str().ok_or_else(|| WorkerError::BadInput("inputs must be a string".into()))?;
    if text.trim().is_empty() {
        return Err(WorkerError::BadInput("inputs must not be empty".into()));
    }
    let params = &body["parameters"];
    let max_new = max_new_tokens(params)?;
    let input = format!("{}{text}", prefix(task_params, task, params));
    let ids = model
        .tokenizer
        .encode(input.as_str(), true)
        .map_err(|e| WorkerError::BadInput(format!("could not tokenize the input: {e}")))?
        .get_ids()
        .to_vec();
    let (s2s, deadline, timeout_s) = (s2s.clone(), Instant::now() + timeout, timeout.as_secs_f64());
    let out = tokio::task::spawn_blocking(move || compute.run(|| s2s.generate(&ids, max_new, deadline, timeout_s)))
        .await
        .map_err(|e| WorkerError::Internal(e.to_string()))??;
    let text = model.tokenizer.decode(&out, true).map_err(|e| WorkerError::Internal(e.to_string()))?;
    let key = match task {
        Task::Summarization => "summary_text",
        Task::Translation => "translation_text",
        _ => "generated_text",
    };
    Ok(json!([{ key: text }]))
}
