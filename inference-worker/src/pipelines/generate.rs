//! text-generation with TGI's parameters and answer shapes, streamed token by token.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use serde_json::{json, Value};

use super::{Kind, LoadedModel};
use crate::error::{Result, WorkerError};
use crate::limits::ComputeSlots;

/// The legacy hosted API's default when `max_new_tokens` is absent.
const DEFAULT_MAX_NEW_TOKENS: usize = 20;

pub struct Params {
    pub max_new_tokens: usize,
    sampling: Option<Sampling>,
    pub seed: Option<u64>,
    repetition_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    stop: Vec<String>,
    pub return_full_text: bool,
    pub details: bool,
    decoder_input_details: bool,
    truncate: Option<usize>,
    pub stream: bool,
}

fn positive_f64(params: &Value, key: &str) -> Result<Option<f64>> {
    match &params[key] {
        Value::Null => Ok(None),
        v => match v.as_f64() {
            Some(x) if x > 0.0 && x.is_finite() => Ok(Some(x)),
            _ => Err(WorkerError::BadInput(format!("`{key}` must be strictly positive"))),
        },
    }
}

fn positive_usize(params: &Value, key: &str) -> Result<Option<usize>> {
    match &params[key] {
        Value::Null => Ok(None),
        v => match v.as_u64() {
            Some(x) if x > 0 => Ok(Some(x as usize)),
            _ => Err(WorkerError::BadInput(format!("`{key}` must be a positive integer"))),
        },
    }
}

impl Params {
    /// Unknown parameters are ignored: InferenceClient sends TGI's whole set.
    pub fn parse(body: &Value) -> Result<Params> {
        let p = &body["parameters"];
        let temperature = positive_f64(p, "temperature")?;
        let top_k = positive_usize(p, "top_k")?;
        let top_p = positive_f64(p, "top_p")?;
        if top_p.is_some_and(|v| v > 1.0) {
            return Err(WorkerError::BadInput("`top_p` must be in (0, 1]".into()));
        }
        let do_sample = p["do_sample"].as_bool().unwrap_or(false);
        // TGI samples when asked to, or when any warper would change the distribution.
        let sample = do_sample || temperature.is_some_and(|t| t != 1.0) || top_k.is_some() || top_p.is_some_and(|v| v < 1.0);
        let sampling = sample.then(|| {
            let temperature = temperature.unwrap_or(1.0);
            match (top_k, top_p.filter(|v| *v < 1.0)) {
                (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
                (Some(k), None) => Sampling::TopK { k, temperature },
                (None, Some(p)) => Sampling::TopP { p, temperature },
                (None, None) => Sampling::All { temperature },
            }
        });
        let stop = match &p["stop"] {
            Value::Null => Vec::new(),
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| WorkerError::BadInput("`stop` must be a list of strings".into()))?,
            _ => return Err(WorkerError::BadInput("`stop` must be a list of strings".into())),
        };
        let frequency_penalty = match &p["frequency_penalty"] {
            Value::Null => None,
            v => Some(v.as_f64().ok_or_else(|| WorkerError::BadInput("`frequency_penalty` must be a number".into()))? as f32),
        };
        let seed = match &p["seed"] {
            Value::Null => None,
            v => Some(v.as_u64().ok_or_else(|| WorkerError::BadInput("`seed` must be a non-negative integer".into()))?),
        };
        Ok(Params {
            max_new_tokens: positive_usize(p, "max_new_tokens")?.unwrap_or(DEFAULT_MAX_NEW_TOKENS),
            sampling,
            seed,
            repetition_penalty: positive_f64(p, "repetition_penalty")?.map(|v| v as f32),
            frequency_penalty,
            stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
            return_full_text: p["return_full_text"].as_bool().unwrap_or(false),
            details: p["details"].as_bool().unwrap_or(false),
            decoder_input_details: p["decoder_input_details"].as_bool().unwrap_or(false),
            truncate: positive_usize(p, "truncate")?,
            stream: body["stream"].as_bool().unwrap_or(false),
        })
    }
}

pub struct TokenOut {
    pub id: u32,
    pub text: String,
    pub logprob: f32,
    pub special: bool,
}

impl TokenOut {
    pub fn json(&self) -> Value {
        json!({ "id": self.id, "text": self.text, "logprob": self.logprob, "special": self.special })
    }
}

pub struct Outcome {
    pub generated_text: String,
    pub finish_reason: &'static str,
    pub tokens: Vec<TokenOut>,
    pub seed: Option<u64>,
    pub prompt: String,
    pub prefill: Vec<Value>,
    pub input_length: usize,
}

impl Outcome {
    pub fn full_text(&self, params: &Params) -> String {
        if params.return_full_text {
            format!("{}{}", self.prompt, self.generated_text)
        } else {
            self.generated_text.clone()
        }
    }

    pub fn details(&self, with_tokens: bool) -> Value {
        let mut d = json!({
            "finish_reason": self.finish_reason,
            "generated_tokens": self.tokens.len(),
            "seed": self.seed,
        });
        if with_tokens {
            d["prefill"] = json!(self.prefill);
            d["tokens"] = json!(self.tokens.iter().map(TokenOut::json).collect::<Vec<_>>());
            d["top_tokens"] = json!([]);
            d["best_of_sequences"] = Value::Null;
        } else {
            d["input_length"] = json!(self.input_length);
        }
        d
    }

    /// The non-streamed answer: a list, as the hosted API returns it.
    pub fn response(&self, params: &Params) -> Value {
        let mut item = json!({ "generated_text": self.full_text(params) });
        if params.details {
            item["details"] = self.details(true);
        }
        json!([item])
    }
}

/// Text of newly generated tokens, held back while it ends in an incomplete UTF-8 sequence
/// (byte-level BPE splits characters across tokens).
struct Detokenizer {
    prefix: usize,
    read: usize,
}

impl Detokenizer {
    fn next(&mut self, tokenizer: &tokenizers::Tokenizer, ids: &[u32]) -> String {
        let before = tokenizer.decode(&ids[self.prefix..self.read], false).unwrap_or_default();
        let after = tokenizer.decode(&ids[self.prefix..], false).unwrap_or_default();
        if after.len() > before.len() && !after.ends_with('\u{fffd}') && after.is_char_boundary(before.len()) {
            let piece = after[before.len()..].to_string();
            self.prefix = self.read;
            self.read = ids.len();
            piece
        } else {
            String::new()
        }
    }
}

fn log_softmax_at(logits: &[f32], id: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|x| (x - max).exp()).sum();
    logits.get(id).map(|x| x - max - sum.ln()).unwrap_or(f32::NEG_INFINITY)
}

/// Generates token by token, calling `emit` for each one (it returns false when the listener is
/// gone). Blocking; holds a compute slot per step so concurrent generations interleave.
pub fn run(
    model: &LoadedModel,
    params: &Params,
    prompt: &str,
    compute: &ComputeSlots,
    deadline: Instant,
    timeout_s: f64,
    mut emit: impl FnMut(&TokenOut) -> bool,
) -> Result<Outcome> {
    let Kind::Generator { lm, eos } = &model.kind else {
        return Err(WorkerError::Internal("not a text-generation model".into()));
    };
    let tokenizer = &model.tokenizer;
    if prompt.is_empty() {
        return Err(WorkerError::BadInput("inputs must not be empty".into()));
    }
    let enc = tokenizer.encode(prompt, true).map_err(|e| WorkerError::BadInput(format!("could not tokenize the input: {e}")))?;
    let mut prompt_ids = enc.get_ids().to_vec();
    if let Some(t) = params.truncate {
        if prompt_ids.len() > t {
            prompt_ids.drain(..prompt_ids.len() - t);
        }
    }
    if prompt_ids.is_empty() {
        return Err(WorkerError::BadInput("inputs must not be empty".into()));
    }
    if prompt_ids.len() + params.max_new_tokens > lm.max_positions {
        return Err(WorkerError::BadInput(format!(
            "inputs has {} tokens and max_new_tokens is {}: together they must not exceed the model's context of {} tokens",
            prompt_ids.len(),
            params.max_new_tokens,
            lm.max_positions
        )));
    }
    let seed = params.sampling.as_ref().map(|_| params.seed.unwrap_or_else(rand::random));
    let mut sampler = params.sampling.clone().map(|s| LogitsProcessor::from_sampling(seed.unwrap_or(0), s));
    let prefill = if params.decoder_input_details {
        prompt_ids
            .iter()
            .map(|&id| json!({ "id": id, "text": tokenizer.decode(&[id], false).unwrap_or_default(), "logprob": null }))
            .collect()
    } else {
        Vec::new()
    };

    let mut state = lm.new_state()?;
    let mut ids = prompt_ids.clone();
    let mut detok = Detokenizer { prefix: ids.len(), read: ids.len() };
    let mut counts: HashMap<u32, usize> = HashMap::new();
    let mut tokens = Vec::new();
    let mut finish_reason = "length";
    let mut logits = {
        let _slot = compute.acquire();
        lm.forward(&prompt_ids, 0, &mut state)?
    };
    for step in 0..params.max_new_tokens {
        if Instant::now() > deadline {
            return Err(WorkerError::Timeout(timeout_s));
        }
        let mut scores = logits.to_vec1::<f32>()?;
        if let Some(p) = params.repetition_penalty {
            let mut seen = std::collections::HashSet::new();
            for &id in &ids {
                if seen.insert(id) {
                    if let Some(s) = scores.get_mut(id as usize) {
                        *s = if *s >= 0.0 { *s / p } else { *s * p };
                    }
                }
            }
        }
        if let Some(fp) = params.frequency_penalty {
            for (&id, &n) in &counts {
                if let Some(s) = scores.get_mut(id as usize) {
                    *s -= fp * n as f32;
                }
            }
        }
        let next = match sampler.as_mut() {
            Some(s) => s.sample(&Tensor::new(scores.as_slice(), &Device::Cpu)?)?,
            None => scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32).unwrap_or(0),
        };
        let logprob = log_softmax_at(&scores, next as usize);
        ids.push(next);
        *counts.entry(next).or_default() += 1;
        let special =
            eos.contains(&next) || tokenizer.get_added_vocabulary().is_special_token(&tokenizer.id_to_token(next).unwrap_or_default());
        let text = detok.next(tokenizer, &ids);
        let token = TokenOut { id: next, text, logprob, special };
        let is_eos = eos.contains(&next);
        let hit_stop = !is_eos && !params.stop.is_empty() && {
            let generated = tokenizer.decode(&ids[prompt_ids.len()..], true).unwrap_or_default();
            params.stop.iter().any(|s| tail_contains(&generated, s, &token.text))
        };
        let last = is_eos || hit_stop || step + 1 == params.max_new_tokens;
        if is_eos {
            finish_reason = "eos_token";
        } else if hit_stop {
            finish_reason = "stop_sequence";
        }
        if !last {
            // Hand the token out before computing the next one: streams show tokens as chosen.
            if !emit(&token) {
                return Err(WorkerError::BadInput("the client went away".into()));
            }
            tokens.push(token);
            let _slot = compute.acquire();
            logits = lm.forward(&[next], ids.len() - 1, &mut state)?;
        } else {
            tokens.push(token);
            break;
        }
    }
    let generated_text = tokenizer.decode(&ids[prompt_ids.len()..], true).map_err(|e| WorkerError::Internal(e.to_string()))?;
    Ok(Outcome { generated_text, finish_reason, tokens, seed, prompt: prompt.to_string(), prefill, input_length: prompt_ids.len() })
}

/// Whether `stop` ends within the text the newest token added (it may end mid-token).
fn tail_contains(generated: &str, stop: &str, piece: &str) -> bool {
    let window = stop.len() + piece.len();
    let start = generated.len().saturating_sub(window);
    let start = (start..=generated.len()).find(|&i| generated.is_char_boundary(i)).unwrap_or(generated.len());
    generated[start..].contains(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_follows_tgi_rules() {
        let p = |v: Value| Params::parse(&json!({ "inputs": "x", "parameters": v })).unwrap();
        assert!(p(json!({})).sampling.is_none(), "greedy by default");
        assert!(p(json!({ "temperature": 1.0 })).sampling.is_none(), "temperature 1 alone changes nothing");
        assert!(matches!(p(json!({ "temperature": 0.7 })).sampling, Some(Sampling::All { .. })));
        assert!(matches!(p(json!({ "top_k": 5, "top_p": 0.9 })).sampling, Some(Sampling::TopKThenTopP { k: 5, .. })));
        assert!(matches!(p(json!({ "do_sample": true })).sampling, Some(Sampling::All { temperature }) if temperature == 1.0));
        assert_eq!(p(json!({})).max_new_tokens, DEFAULT_MAX_NEW_TOKENS);
        // TGI parameters this worker doesn't use are accepted, not refused.
        assert!(Params::parse(
            &json!({ "inputs": "x", "parameters": { "watermark": true, "grammar": null, "best_of": 1, "adapter_id": "a" } })
        )
        .is_ok());
    }

    #[test]
    fn bad_parameters_are_refused_with_the_reason() {
        for (params, needle) in [
            (json!({ "temperature": 0 }), "temperature"),
            (json!({ "top_p": 1.5 }), "top_p"),
            (json!({ "top_k": -1 }), "top_k"),
            (json!({ "max_new_tokens": 0 }), "max_new_tokens"),
            (json!({ "stop": [1] }), "stop"),
            (json!({ "seed": "x" }), "seed"),
        ] {
            let err = Params::parse(&json!({ "inputs": "x", "parameters": params })).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(needle), "{params}: {err}");
        }
    }

    #[test]
    fn a_stop_sequence_may_end_inside_the_newest_token() {
        assert!(tail_contains("Hello world!", "world", " world!"));
        assert!(!tail_contains("Hello world! And more", "world", " more"));
        assert!(tail_contains("é stop", "stop", "stop"));
    }
}
