//! A model loaded for one task, and what each task does with it.

pub mod batcher;
pub mod classify;
pub mod embed;
pub mod fill_mask;
pub mod generate;
pub mod text2text;
pub mod tokens;

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use candle_nn::Linear;
use serde_json::Value;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Result, WorkerError};
use crate::models::causal::CausalLm;
use crate::models::encoder::{self, Encoder, MaskedLmHead, SequenceHead};
use crate::models::{architectures, id2label, read_config, Weights};
use batcher::EncodeQueue;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Task {
    FeatureExtraction,
    SentenceSimilarity,
    TextClassification,
    TokenClassification,
    FillMask,
    TextGeneration,
    Summarization,
    Translation,
    Text2TextGeneration,
}

impl Task {
    pub const ALL: [Task; 9] = [
        Task::FeatureExtraction,
        Task::SentenceSimilarity,
        Task::TextClassification,
        Task::TokenClassification,
        Task::FillMask,
        Task::TextGeneration,
        Task::Summarization,
        Task::Translation,
        Task::Text2TextGeneration,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Task::FeatureExtraction => "feature-extraction",
            Task::SentenceSimilarity => "sentence-similarity",
            Task::TextClassification => "text-classification",
            Task::TokenClassification => "token-classification",
            Task::FillMask => "fill-mask",
            Task::TextGeneration => "text-generation",
            Task::Summarization => "summarization",
            Task::Translation => "translation",
            Task::Text2TextGeneration => "text2text-generation",
        }
    }

    pub fn parse(s: &str) -> Option<Task> {
        let s = match s {
            "sentiment-analysis" => "text-classification",
            "ner" => "token-classification",
            other => other,
        };
        Task::ALL.into_iter().find(|t| t.name() == s)
    }

    /// Tasks one loaded model serves together: embedding models answer both embedding tasks
    /// (the request's shape says which), encoder-decoders all three text2text ones.
    pub fn kind(self) -> Task {
        match self {
            Task::SentenceSimilarity => Task::FeatureExtraction,
            Task::Summarization | Task::Translation => Task::Text2TextGeneration,
            t => t,
        }
    }
}

/// Which task a model serves: its card's `pipeline_tag`, else what its architecture is for.
pub fn task_for(pipeline_tag: Option<&str>, config: &Value) -> Result<Task> {
    if let Some(tag) = pipeline_tag {
        return Task::parse(tag)
            .ok_or_else(|| WorkerError::Unsupported(format!("the model's pipeline_tag {tag:?} is not a task this worker runs")));
    }
    let archs = architectures(config);
    let has = |suffix: &str| archs.iter().any(|a| a.ends_with(suffix));
    Ok(if has("ForSequenceClassification") {
        Task::TextClassification
    } else if has("ForTokenClassification") {
        Task::TokenClassification
    } else if has("ForMaskedLM") {
        Task::FillMask
    } else if has("ForConditionalGeneration") || crate::models::model_type(config) == "t5" {
        Task::Text2TextGeneration
    } else if has("LMHeadModel") || has("ForCausalLM") || CausalLm::supports(config) {
        Task::TextGeneration
    } else if encoder::family(config).is_some() {
        Task::FeatureExtraction
    } else {
        return Err(WorkerError::Unsupported(format!(
            "can't tell the task of a model with architectures {archs:?}; set pipeline_tag in its card"
        )));
    })
}

pub enum Pooling {
    Mean,
    Cls,
    Max,
}

pub enum Kind {
    Embedder {
        /// The encoder behind its micro-batching queue.
        queue: EncodeQueue,
        /// `Some` for sentence-transformers models: pooled, one vector per text.
        pooling: Option<Pooling>,
        normalize: bool,
    },
    Classifier {
        queue: EncodeQueue,
        head: SequenceHead,
        labels: Vec<String>,
        multi_label: bool,
    },
    TokenClassifier {
        queue: EncodeQueue,
        classifier: Linear,
        labels: Vec<String>,
    },
    MaskedLm {
        queue: EncodeQueue,
        head: MaskedLmHead,
        mask_token: String,
        mask_id: u32,
    },
    Generator {
        /// The decode loop every generation request of this model joins.
        streams: generate::Streams,
    },
    Seq2Seq {
        model: Arc<crate::models::seq2seq::Seq2Seq>,
        /// `task_specific_params` of config.json: the prefix transformers' pipelines prepend.
        task_params: Value,
    },
}

pub struct LoadedModel {
    pub id: String,
    pub revision: String,
    pub task: Task,
    pub tokenizer: Tokenizer,
    pub max_tokens: usize,
    pub kind: Kind,
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

pub struct LoadRequest<'a> {
    pub dir: &'a Path,
    pub id: String,
    pub revision: String,
    pub task: Task,
    pub device: Device,
    pub max_batch: usize,
    pub compute: Arc<crate::limits::ComputeSlots>,
    /// Generation: sequences decoded together per model, and requests waiting.
    pub streams: generate::StreamLimits,
    pub stream_gauges: Arc<generate::StreamGauges>,
    /// The GGUF file to load instead of safetensors weights.
    pub gguf: Option<std::path::PathBuf>,
}

/// Builds the model for `task` from a snapshot directory. Blocking: call it off the runtime.
/// Whatever goes wrong is the model's fault (missing tensors, odd shapes), reported as such.
pub fn load(req: LoadRequest<'_>) -> Result<LoadedModel> {
    load_inner(req).map_err(|e| match e {
        WorkerError::Internal(m) => WorkerError::Unsupported(format!("the model could not be loaded: {m}")),
        other => other,
    })
}

/// The model's tokenizer.json (a GGUF file's own vocabulary is not read).
fn read_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
        .map_err(|e| WorkerError::Unsupported(format!("the model needs a tokenizer.json the tokenizers crate can read: {e}")))?;
    // Padding baked into tokenizer.json (MiniLM pads every text to 128) would waste most of
    // the compute: batches are padded to their longest text instead.
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

fn load_inner(req: LoadRequest<'_>) -> Result<LoadedModel> {
    let dir = req.dir;
    if let Some(path) = &req.gguf {
        return load_gguf(&req, path);
    }
    let config = read_config(dir)?;
    let mut tokenizer = read_tokenizer(dir)?;
    let tokenizer_config = read_json(&dir.join("tokenizer_config.json")).unwrap_or(Value::Null);
    let weights = Weights::load(dir, &req.device)?;
    let (kind, max_tokens) = match req.task.kind() {
        Task::TextGeneration => generator(&req, &config, weights, &mut tokenizer)?,
        Task::Text2TextGeneration => seq2seq(&config, &tokenizer_config, &weights, &mut tokenizer, &req.device)?,
        task => encoder_task(task, &req, &config, &tokenizer_config, &weights, &mut tokenizer)?,
    };
    Ok(LoadedModel { id: req.id, revision: req.revision, task: req.task, tokenizer, max_tokens, kind })
}

/// A quantized language model from a GGUF file, with the repo's tokenizer.json (the GGUF's own
/// vocabulary is not turned into one).
fn load_gguf(req: &LoadRequest<'_>, path: &Path) -> Result<LoadedModel> {
    if req.task.kind() != Task::TextGeneration {
        return Err(WorkerError::Unsupported(format!("a GGUF model serves text-generation, not {}", req.task.name())));
    }
    let mut tokenizer = read_tokenizer(req.dir)?;
    let config = read_json(&req.dir.join("config.json")).unwrap_or(Value::Null);
    let lm = CausalLm::load_gguf(path, &req.device)?;
    let (kind, max_tokens) = start_generator(req, &config, lm, &mut tokenizer)?;
    Ok(LoadedModel { id: req.id.clone(), revision: req.revision.clone(), task: req.task, tokenizer, max_tokens, kind })
}

fn generator(req: &LoadRequest<'_>, config: &Value, weights: Weights, tokenizer: &mut Tokenizer) -> Result<(Kind, usize)> {
    start_generator(req, config, CausalLm::load(config, weights, &req.device)?, tokenizer)
}

fn start_generator(req: &LoadRequest<'_>, config: &Value, lm: CausalLm, tokenizer: &mut Tokenizer) -> Result<(Kind, usize)> {
    let lm = Arc::new(lm);
    let generation_config = read_json(&req.dir.join("generation_config.json")).unwrap_or(Value::Null);
    let mut eos = Vec::new();
    for v in [&generation_config["eos_token_id"], &config["eos_token_id"]] {
        match v {
            Value::Number(n) => eos.extend(n.as_u64().map(|n| n as u32)),
            Value::Array(a) => eos.extend(a.iter().filter_map(|n| n.as_u64().map(|n| n as u32))),
            _ => {}
        }
    }
    eos.extend(lm.gguf_eos());
    eos.sort_unstable();
    eos.dedup();
    // Prompts are never cut silently: too long for the context is refused per request.
    tokenizer.with_truncation(None).map_err(|e| WorkerError::Internal(e.to_string()))?;
    let max_tokens = lm.max_positions;
    let streams = generate::Streams::start(lm, tokenizer.clone(), eos, req.streams, req.compute.clone(), req.stream_gauges.clone());
    Ok((Kind::Generator { streams }, max_tokens))
}

fn seq2seq(
    config: &Value,
    tokenizer_config: &Value,
    weights: &Weights,
    tokenizer: &mut Tokenizer,
    device: &Device,
) -> Result<(Kind, usize)> {
    let model_type = crate::models::model_type(config);
    if model_type != "t5" {
        return Err(WorkerError::Unsupported(format!("text2text tasks support T5 models, not {model_type:?}")));
    }
    let model = crate::models::seq2seq::Seq2Seq::load(config, weights, device)?;
    let max_tokens = model_max_length(tokenizer_config).unwrap_or(512);
    truncate_at(tokenizer, max_tokens)?;
    Ok((Kind::Seq2Seq { model: Arc::new(model), task_params: config["task_specific_params"].clone() }, max_tokens))
}

/// `model_max_length` of tokenizer_config.json, unless it is transformers' "no limit" sentinel.
fn model_max_length(tokenizer_config: &Value) -> Option<usize> {
    tokenizer_config["model_max_length"].as_u64().filter(|v| *v < 1_000_000).map(|v| v as usize)
}

/// The BERT-family tasks: one encoder behind a micro-batching queue, and the task's head.
fn encoder_task(
    task: Task,
    req: &LoadRequest<'_>,
    config: &Value,
    tokenizer_config: &Value,
    weights: &Weights,
    tokenizer: &mut Tokenizer,
) -> Result<(Kind, usize)> {
    let dir = req.dir;
    let enc = Encoder::load(config, weights, &req.device)?;
    let st_config = read_json(&dir.join("sentence_bert_config.json"));
    let limits = [
        Some(enc.max_positions),
        st_config.as_ref().and_then(|c| c["max_seq_length"].as_u64()).map(|v| v as usize),
        model_max_length(tokenizer_config),
    ];
    let max_tokens = limits.into_iter().flatten().min().unwrap_or(512);
    truncate_at(tokenizer, max_tokens)?;
    let kind = match task {
        Task::FeatureExtraction => {
            let modules = read_json(&dir.join("modules.json"));
            let (pooling, normalize) = match modules {
                Some(Value::Array(modules)) => {
                    let of_type = |t: &str| modules.iter().find(|m| m["type"].as_str().is_some_and(|s| s.ends_with(t)));
                    let pooling_dir = of_type("Pooling").and_then(|m| m["path"].as_str()).unwrap_or("1_Pooling");
                    let pc = read_json(&dir.join(pooling_dir).join("config.json")).unwrap_or(Value::Null);
                    let pooling = if pc["pooling_mode_cls_token"].as_bool() == Some(true) {
                        Pooling::Cls
                    } else if pc["pooling_mode_max_tokens"].as_bool() == Some(true) {
                        Pooling::Max
                    } else {
                        Pooling::Mean
                    };
                    (Some(pooling), of_type("Normalize").is_some())
                }
                _ => (None, false),
            };
            Kind::Embedder { queue: start(enc, req), pooling, normalize }
        }
        Task::TextClassification => {
            let head = SequenceHead::load(&enc, weights)?;
            let labels = id2label(config, head.num_labels());
            let multi_label = config["problem_type"].as_str() == Some("multi_label_classification") || labels.len() == 1;
            Kind::Classifier { queue: start(enc, req), head, labels, multi_label }
        }
        Task::TokenClassification => {
            let classifier = weights.linear("classifier")?;
            let labels = id2label(config, classifier.weight().dim(0)?);
            Kind::TokenClassifier { queue: start(enc, req), classifier, labels }
        }
        Task::FillMask => {
            let head = MaskedLmHead::load(&enc, config, weights)?;
            let mask_token = tokenizer_config["mask_token"]
                .as_str()
                .or(tokenizer_config["mask_token"]["content"].as_str())
                .map(str::to_string)
                .or_else(|| ["[MASK]", "<mask>"].into_iter().find(|t| tokenizer.token_to_id(t).is_some()).map(str::to_string))
                .ok_or_else(|| WorkerError::Unsupported("the tokenizer has no mask token".into()))?;
            let mask_id = tokenizer
                .token_to_id(&mask_token)
                .ok_or_else(|| WorkerError::Unsupported(format!("mask token {mask_token} is not in the vocabulary")))?;
            Kind::MaskedLm { queue: start(enc, req), head, mask_token, mask_id }
        }
        other => return Err(WorkerError::Internal(format!("{} is not an encoder task", other.name()))),
    };
    Ok((kind, max_tokens))
}

fn start(enc: Encoder, req: &LoadRequest<'_>) -> EncodeQueue {
    EncodeQueue::start(enc, req.max_batch, req.compute.clone())
}

/// Inputs longer than the model takes are cut at the end (the special tokens are kept).
fn truncate_at(tokenizer: &mut Tokenizer, max_tokens: usize) -> Result<()> {
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| WorkerError::Internal(e.to_string()))?;
    Ok(())
}

impl LoadedModel {
    /// The tasks a request to this model may ask for.
    pub fn serves(&self, task: Task) -> bool {
        task.kind() == self.task.kind()
    }

    pub fn encode(&self, text: &str) -> Result<tokenizers::Encoding> {
        if text.is_empty() {
            return Err(WorkerError::BadInput("inputs must not be empty".into()));
        }
        self.tokenizer.encode_char_offsets(text, true).map_err(|e| WorkerError::BadInput(format!("could not tokenize the input: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::Task;

    #[test]
    fn every_task_parses_from_its_name() {
        for t in Task::ALL {
            assert_eq!(Task::parse(t.name()), Some(t));
        }
        // Every pipeline_tag the README promises is accepted from a card.
        for tag in [
            "feature-extraction",
            "sentence-similarity",
            "text-classification",
            "token-classification",
            "fill-mask",
            "text-generation",
            "summarization",
            "translation",
            "text2text-generation",
        ] {
            assert!(super::task_for(Some(tag), &serde_json::Value::Null).is_ok(), "{tag}");
        }
        assert_eq!(Task::parse("ner"), Some(Task::TokenClassification));
    }
}
