//! text-generation with TGI's parameters and answer shapes, streamed token by token.
//!
//! Every request to one model joins that model's decode loop (`Streams`): at each step, one
//! chunk of a new prompt is prefilled, every sequence chooses its next token, and all of them
//! are decoded together in one batch, so the weights are read once per step for everyone instead
//! of once per sequence. Sequences join and leave at any step; a client that goes away frees its
//! place at the next one; requests beyond the batch wait in a bounded queue, then get 503.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use prometheus::{IntCounter, IntGauge};
use rayon::prelude::*;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::LoadedModel;
use crate::error::{Result, WorkerError};
use crate::limits::ComputeSlots;
use crate::models::causal::{CausalLm, State};

/// The legacy hosted API's default when `max_new_tokens` is absent.
const DEFAULT_MAX_NEW_TOKENS: usize = 20;

#[derive(Clone)]
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

#[derive(Clone)]
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

/// log softmax(logits)[id], vectorized: with 16 sequences decoding, libm's scalar exp over a
/// 50k vocabulary each took a few ms of every step.
fn log_softmax_at(logits: &[f32], id: usize) -> f32 {
    match logits.get(id) {
        Some(x) => x - crate::models::vmath::simd(|| crate::models::vmath::log_sum_exp(logits)),
        None => f32::NEG_INFINITY,
    }
}

/// One generation request as the decode loop drives it: the prompt, the parameters, and what
/// has been generated so far.
pub struct Sequence {
    params: Params,
    prompt: String,
    prompt_ids: Vec<u32>,
    ids: Vec<u32>,
    detok: Detokenizer,
    counts: HashMap<u32, usize>,
    tokens: Vec<TokenOut>,
    sampler: Option<LogitsProcessor>,
    seed: Option<u64>,
    prefill: Vec<Value>,
    finish_reason: &'static str,
    deadline: Instant,
    timeout_s: f64,
}

impl Sequence {
    /// Tokenizes and checks a request; refuses what cannot run (empty, longer than the context).
    pub fn new(model: &LoadedModel, params: Params, prompt: &str, deadline: Instant, timeout_s: f64) -> Result<Sequence> {
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
        if prompt_ids.len() + params.max_new_tokens > model.max_tokens {
            return Err(WorkerError::BadInput(format!(
                "inputs has {} tokens and max_new_tokens is {}: together they must not exceed the model's context of {} tokens",
                prompt_ids.len(),
                params.max_new_tokens,
                model.max_tokens
            )));
        }
        let seed = params.sampling.as_ref().map(|_| params.seed.unwrap_or_else(rand::random));
        let sampler = params.sampling.clone().map(|s| LogitsProcessor::from_sampling(seed.unwrap_or(0), s));
        let prefill = if params.decoder_input_details {
            prompt_ids
                .iter()
                .map(|&id| json!({ "id": id, "text": tokenizer.decode(&[id], false).unwrap_or_default(), "logprob": null }))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Sequence {
            ids: prompt_ids.clone(),
            detok: Detokenizer { prefix: prompt_ids.len(), read: prompt_ids.len() },
            prompt_ids,
            params,
            prompt: prompt.to_string(),
            counts: HashMap::new(),
            tokens: Vec::new(),
            sampler,
            seed,
            prefill,
            finish_reason: "length",
            deadline,
            timeout_s,
        })
    }

    /// Chooses the next token from the model's `scores` for it; returns the token and whether
    /// it ends the sequence (end of sequence, a stop sequence, or `max_new_tokens`).
    fn choose(&mut self, tokenizer: &tokenizers::Tokenizer, eos: &[u32], mut scores: Vec<f32>) -> Result<(TokenOut, bool)> {
        if let Some(p) = self.params.repetition_penalty {
            let mut seen = std::collections::HashSet::new();
            for &id in &self.ids {
                if seen.insert(id) {
                    if let Some(s) = scores.get_mut(id as usize) {
                        *s = if *s >= 0.0 { *s / p } else { *s * p };
                    }
                }
            }
        }
        if let Some(fp) = self.params.frequency_penalty {
            for (&id, &n) in &self.counts {
                if let Some(s) = scores.get_mut(id as usize) {
                    *s -= fp * n as f32;
                }
            }
        }
        let next = match self.sampler.as_mut() {
            Some(s) => s.sample(&Tensor::new(scores.as_slice(), &Device::Cpu)?)?,
            None => scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32).unwrap_or(0),
        };
        let logprob = log_softmax_at(&scores, next as usize);
        self.ids.push(next);
        *self.counts.entry(next).or_default() += 1;
        let special =
            eos.contains(&next) || tokenizer.get_added_vocabulary().is_special_token(&tokenizer.id_to_token(next).unwrap_or_default());
        let text = self.detok.next(tokenizer, &self.ids);
        let token = TokenOut { id: next, text, logprob, special };
        let is_eos = eos.contains(&next);
        let hit_stop = !is_eos && !self.params.stop.is_empty() && {
            let generated = tokenizer.decode(&self.ids[self.prompt_ids.len()..], true).unwrap_or_default();
            self.params.stop.iter().any(|s| tail_contains(&generated, s, &token.text))
        };
        if is_eos {
            self.finish_reason = "eos_token";
        } else if hit_stop {
            self.finish_reason = "stop_sequence";
        }
        let last = is_eos || hit_stop || self.tokens.len() + 1 == self.params.max_new_tokens;
        self.tokens.push(token.clone());
        Ok((token, last))
    }

    fn finish(self, tokenizer: &tokenizers::Tokenizer) -> Result<Outcome> {
        let generated_text =
            tokenizer.decode(&self.ids[self.prompt_ids.len()..], true).map_err(|e| WorkerError::Internal(e.to_string()))?;
        Ok(Outcome {
            generated_text,
            finish_reason: self.finish_reason,
            tokens: self.tokens,
            seed: self.seed,
            prompt: self.prompt,
            prefill: self.prefill,
            input_length: self.prompt_ids.len(),
        })
    }
}

/// What a generation sends back: each token but the last as it is chosen, then the outcome
/// (which holds the last token).
pub enum Event {
    Token(TokenOut),
    Done(Box<Result<Outcome>>),
}

/// Generation requests to one model: a bounded queue in front of a decode loop that runs every
/// active sequence's next step together (continuous batching).
pub struct Streams {
    tx: SyncSender<Job>,
    gauges: Arc<StreamGauges>,
}

struct Job {
    seq: Sequence,
    events: UnboundedSender<Event>,
}

/// The decode loops' gauges, shared by every model's loop and shown on `/metrics`.
pub struct StreamGauges {
    /// Sequences in a decode loop now.
    pub active: IntGauge,
    /// Requests waiting for a place in one.
    pub queued: IntGauge,
    /// Tokens chosen, counted as each is chosen (also for sequences whose client left).
    pub tokens: IntCounter,
    /// Decode steps run (each for all the active sequences of one model).
    pub steps: IntCounter,
}

impl StreamGauges {
    pub fn new() -> StreamGauges {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        StreamGauges {
            active: gauge("inference_generation_active", "Generation sequences in a decode batch now"),
            queued: gauge("inference_generation_queued", "Generation requests waiting for a place in a decode batch"),
            tokens: counter("inference_generation_chosen_tokens_total", "Tokens chosen by the decode loops"),
            steps: counter("inference_generation_steps_total", "Decode steps run (one per batch of sequences)"),
        }
    }
}

impl Default for StreamGauges {
    fn default() -> Self {
        StreamGauges::new()
    }
}

/// How many sequences a model decodes together, and how many more may wait.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    pub active: usize,
    pub queued: usize,
}

impl Streams {
    /// Starts the model's decode loop; it ends when the queue is dropped (model evicted).
    pub fn start(
        lm: Arc<CausalLm>,
        tokenizer: tokenizers::Tokenizer,
        eos: Vec<u32>,
        limits: StreamLimits,
        compute: Arc<ComputeSlots>,
        gauges: Arc<StreamGauges>,
    ) -> Streams {
        let (tx, rx) = sync_channel(limits.queued);
        let looping = gauges.clone();
        let spawned = std::thread::Builder::new()
            .name("decoder".into())
            .spawn(move || decode_loop(&lm, &tokenizer, &eos, rx, limits.active.max(1), &compute, &looping));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a decode thread");
        }
        Streams { tx, gauges }
    }

    /// Queues a sequence; its events arrive on the receiver. A full queue is refused (503). A
    /// dropped receiver takes the sequence out of the batch at the next step.
    pub fn submit(&self, seq: Sequence) -> Result<UnboundedReceiver<Event>> {
        let (events, rx) = unbounded_channel();
        self.gauges.queued.inc();
        match self.tx.try_send(Job { seq, events }) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.gauges.queued.dec();
                Err(match e {
                    TrySendError::Full(_) => {
                        WorkerError::Overloaded("too many generation requests are queued for this model; retry shortly".into())
                    }
                    TrySendError::Disconnected(_) => WorkerError::Internal("the model's decode thread stopped".into()),
                })
            }
        }
    }
}

/// A sequence in the decode loop: its cache, how much of its prompt is in it, and the logits of
/// its next token once they are known.
struct Active {
    job: Job,
    state: State,
    fed: usize,
    logits: Option<Vec<f32>>,
    /// The token chosen this step, which the next decode step feeds.
    pending: Option<u32>,
    /// Set when the sequence leaves the batch after this step.
    leaving: Option<Leaving>,
}

/// Why a sequence leaves the batch.
enum Leaving {
    /// Its client went away: nothing to send.
    Gone,
    Finished,
    Failed(WorkerError),
}

fn decode_loop(
    lm: &CausalLm,
    tokenizer: &tokenizers::Tokenizer,
    eos: &[u32],
    rx: Receiver<Job>,
    max_active: usize,
    compute: &ComputeSlots,
    gauges: &StreamGauges,
) {
    let mut active: Vec<Active> = Vec::new();
    let admit = |job: Job, active: &mut Vec<Active>| {
        gauges.queued.dec();
        match lm.new_state() {
            Ok(state) => {
                gauges.active.inc();
                active.push(Active { job, state, fed: 0, logits: None, pending: None, leaving: None });
            }
            Err(e) => {
                let _ = job.events.send(Event::Done(Box::new(Err(e))));
            }
        }
    };
    loop {
        if active.is_empty() {
            match rx.recv() {
                Ok(job) => admit(job, &mut active),
                Err(_) => return,
            }
        }
        while active.len() < max_active {
            match rx.try_recv() {
                Ok(job) => admit(job, &mut active),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        for a in active.iter_mut() {
            if a.job.events.is_closed() {
                a.leaving = Some(Leaving::Gone);
            } else if now > a.job.seq.deadline {
                a.leaving = Some(Leaving::Failed(WorkerError::Timeout(a.job.seq.timeout_s)));
            }
        }
        compute.run(|| {
            // Every sequence with fresh logits chooses its next token, all at once on the
            // cores (each choice reads its whole vocabulary's logits).
            active.par_iter_mut().filter(|a| a.leaving.is_none()).for_each(|a| {
                let Some(scores) = a.logits.take() else { return };
                gauges.tokens.inc();
                match a.job.seq.choose(tokenizer, eos, scores) {
                    Ok((_, true)) => a.leaving = Some(Leaving::Finished),
                    Ok((token, false)) => {
                        let id = token.id;
                        if a.job.events.send(Event::Token(token)).is_err() {
                            a.leaving = Some(Leaving::Gone);
                        } else {
                            a.pending = Some(id);
                        }
                    }
                    Err(e) => a.leaving = Some(Leaving::Failed(e)),
                }
            });
            // Then one batch: the chosen tokens of the running sequences, and chunks of the
            // prompts still to prefill, at most `prefill_chunk` prompt tokens in all, so that a
            // long prompt holds the running streams up for one chunk per step, not its length.
            // A prompt is cut only at multiples of `prefill_chunk`, whatever else runs: its
            // numbers then never depend on the company it keeps (with quantized activations, a
            // different cut can round one activation differently and change the tokens).
            let chunk = lm.prefill_chunk();
            let mut budget = chunk;
            let mut feeds: Vec<(&[u32], usize)> = Vec::new();
            let mut states = Vec::new();
            // (sequence, prompt tokens fed up to, whether that ends the prompt); None: decoding.
            let mut rows: Vec<(usize, Option<(usize, bool)>)> = Vec::new();
            for (i, a) in active.iter_mut().enumerate() {
                let Active { job, state, fed, pending, leaving, .. } = a;
                if leaving.is_some() {
                    continue;
                }
                let prompt = &job.seq.prompt_ids;
                if *fed < prompt.len() {
                    let end = prompt.len().min((*fed / chunk + 1).saturating_mul(chunk));
                    if end - *fed > budget {
                        continue;
                    }
                    budget -= end - *fed;
                    feeds.push((&prompt[*fed..end], *fed));
                    rows.push((i, Some((end, end == prompt.len()))));
                } else if let Some(id) = pending.as_ref() {
                    feeds.push((std::slice::from_ref(id), job.seq.ids.len() - 1));
                    rows.push((i, None));
                } else {
                    continue;
                }
                states.push(state);
            }
            if !feeds.is_empty() {
                gauges.steps.inc();
                match lm.step(&feeds, &mut states) {
                    Ok(logits) => {
                        for ((i, prefill), l) in rows.into_iter().zip(logits) {
                            let a = &mut active[i];
                            a.pending = None;
                            match prefill {
                                Some((end, last)) => {
                                    a.fed = end;
                                    a.logits = last.then_some(l);
                                }
                                None => a.logits = Some(l),
                            }
                        }
                    }
                    Err(e) => {
                        for (i, _) in rows {
                            active[i].leaving = Some(Leaving::Failed(WorkerError::Internal(e.to_string())));
                        }
                    }
                }
            }
        });
        // Finished, failed and abandoned sequences leave the batch; their places are free.
        let mut i = 0;
        while i < active.len() {
            let Some(leaving) = active[i].leaving.take() else {
                i += 1;
                continue;
            };
            let a = active.remove(i);
            gauges.active.dec();
            let result = match leaving {
                Leaving::Gone => continue,
                Leaving::Finished => a.job.seq.finish(tokenizer),
                Leaving::Failed(e) => Err(e),
            };
            let _ = a.job.events.send(Event::Done(Box::new(result)));
        }
    }
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
