//! BERT-family encoders (BERT, DistilBERT, RoBERTa/XLM-R) and the task heads transformers puts
//! on top of them, loaded from the names `*For*` checkpoints use.

use candle_core::{DType, Device, IndexOp, Module, Tensor, D};
use candle_nn::{Activation, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::{distilbert, xlm_roberta};
use serde_json::{json, Value};

use super::{default_field, model_type, parse, Weights};
use crate::error::{Result, WorkerError};

enum Backbone {
    Bert(super::bert::Bert),
    DistilBert(distilbert::DistilBertModel),
    Roberta(xlm_roberta::XLMRobertaModel),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Bert,
    DistilBert,
    Roberta,
}

pub struct Encoder {
    backbone: Backbone,
    pub family: Family,
    /// Where the backbone's tensors live: "" for a bare model, `bert.` under a head.
    pub prefix: String,
    pub pad_id: u32,
    pub max_positions: usize,
    pub device: Device,
}

pub fn family(config: &Value) -> Option<Family> {
    match model_type(config).as_str() {
        "bert" => Some(Family::Bert),
        "distilbert" => Some(Family::DistilBert),
        "roberta" | "xlm-roberta" | "camembert" => Some(Family::Roberta),
        _ => None,
    }
}

/// candle's BERT only knows `gelu` (erf), `geluapproximate` (tanh) and `relu`.
fn bert_act(config: &mut Value, key: &str) -> Result<()> {
    let act = config[key].as_str().unwrap_or("gelu").to_string();
    let mapped = match act.as_str() {
        "gelu" => "gelu",
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => "geluapproximate",
        "relu" => "relu",
        other => return Err(WorkerError::Unsupported(format!("activation {other:?} is not supported for this architecture"))),
    };
    config[key] = json!(mapped);
    Ok(())
}

/// A VarBuilder over the checkpoint, rooted at `prefix` ("" or e.g. `bert.`).
fn vb(weights: &Weights, device: &Device, prefix: &str) -> VarBuilder<'static> {
    let vb = VarBuilder::from_tensors(weights.tensors.clone(), DType::F32, device);
    match prefix.trim_end_matches('.') {
        "" => vb,
        p => vb.pp(p),
    }
}

impl Encoder {
    pub fn load(config: &Value, weights: &Weights, device: &Device) -> Result<Encoder> {
        let family = family(config)
            .ok_or_else(|| WorkerError::Unsupported(format!("model_type {:?} is not a supported encoder", model_type(config))))?;
        let mut cfg = config.clone();
        let (backbone, prefix, max_positions) = match family {
            Family::Bert => {
                let prefix = weights.prefix_of("embeddings.word_embeddings.weight", &["", "bert."]).unwrap_or("");
                let model = super::bert::Bert::load(&cfg, weights, prefix, device)?;
                let max = cfg["max_position_embeddings"].as_u64().unwrap_or(512) as usize;
                (Backbone::Bert(model), prefix, max)
            }
            Family::DistilBert => {
                for (k, v) in [("initializer_range", json!(0.02)), ("pad_token_id", json!(0)), ("max_position_embeddings", json!(512))] {
                    default_field(&mut cfg, k, v);
                }
                bert_act(&mut cfg, "activation")?;
                cfg["model_type"] = Value::Null;
                let c: distilbert::Config = parse(cfg.clone(), "DistilBERT")?;
                let prefix = weights.prefix_of("embeddings.word_embeddings.weight", &["", "distilbert."]).unwrap_or("");
                let model = distilbert::DistilBertModel::load(vb(weights, device, prefix), &c)?;
                let max = cfg["max_position_embeddings"].as_u64().unwrap_or(512) as usize;
                (Backbone::DistilBert(model), prefix, max)
            }
            Family::Roberta => {
                // transformers 5 stopped saving these; candle requires them.
                for (k, v) in [
                    ("position_embedding_type", json!("absolute")),
                    ("attention_probs_dropout_prob", json!(0.1)),
                    ("hidden_dropout_prob", json!(0.1)),
                    ("type_vocab_size", json!(1)),
                    ("pad_token_id", json!(1)),
                    ("layer_norm_eps", json!(1e-5)),
                    ("hidden_act", json!("gelu")),
                ] {
                    default_field(&mut cfg, k, v);
                }
                let c: xlm_roberta::Config = parse(cfg.clone(), "RoBERTa")?;
                let prefix = weights.prefix_of("embeddings.word_embeddings.weight", &["", "roberta.", "xlm-roberta."]).unwrap_or("");
                let model = xlm_roberta::XLMRobertaModel::new(&c, vb(weights, device, prefix))?;
                // RoBERTa positions start after the padding index.
                let max = c.max_position_embeddings.saturating_sub(c.pad_token_id as usize + 1);
                (Backbone::Roberta(model), prefix, max)
            }
        };
        let pad_id = cfg["pad_token_id"].as_u64().unwrap_or(0) as u32;
        Ok(Encoder { backbone, family, prefix: prefix.to_string(), pad_id, max_positions, device: device.clone() })
    }

    /// `ids` and `mask` are `(batch, tokens)` u32 tensors, mask 1 = a real token. Returns the last
    /// hidden state `(batch, tokens, hidden)`.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let out = match &self.backbone {
            Backbone::Bert(m) => m.forward(ids, mask)?,
            Backbone::DistilBert(m) => {
                // candle's DistilBERT masks where the mask is 1, the inverse of transformers.
                let (b, t) = mask.dims2()?;
                let inverted = mask.eq(0u32)?.reshape((b, 1, 1, t))?;
                m.forward(ids, &inverted)?
            }
            Backbone::Roberta(m) => m.forward(ids, mask, &ids.zeros_like()?, None, None, None)?,
        };
        Ok(out)
    }
}

/// Sequence classification on the first token, as each family's `*ForSequenceClassification`.
pub enum SequenceHead {
    Bert { pooler: Linear, classifier: Linear },
    DistilBert { pre_classifier: Linear, classifier: Linear },
    Roberta { dense: Linear, out_proj: Linear },
}

impl SequenceHead {
    pub fn load(encoder: &Encoder, weights: &Weights) -> Result<SequenceHead> {
        Ok(match encoder.family {
            Family::Bert => SequenceHead::Bert {
                pooler: weights.linear(&format!("{}pooler.dense", encoder.prefix))?,
                classifier: weights.linear("classifier")?,
            },
            Family::DistilBert => {
                SequenceHead::DistilBert { pre_classifier: weights.linear("pre_classifier")?, classifier: weights.linear("classifier")? }
            }
            Family::Roberta => {
                SequenceHead::Roberta { dense: weights.linear("classifier.dense")?, out_proj: weights.linear("classifier.out_proj")? }
            }
        })
    }

    pub fn num_labels(&self) -> usize {
        let l = match self {
            SequenceHead::Bert { classifier, .. } | SequenceHead::DistilBert { classifier, .. } => classifier,
            SequenceHead::Roberta { out_proj, .. } => out_proj,
        };
        l.weight().dim(0).unwrap_or(0)
    }

    /// `(batch, tokens, hidden)` → logits `(batch, labels)`.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let cls = hidden.i((.., 0, ..))?.contiguous()?;
        Ok(match self {
            SequenceHead::Bert { pooler, classifier } => classifier.forward(&pooler.forward(&cls)?.tanh()?)?,
            SequenceHead::DistilBert { pre_classifier, classifier } => classifier.forward(&pre_classifier.forward(&cls)?.relu()?)?,
            SequenceHead::Roberta { dense, out_proj } => out_proj.forward(&dense.forward(&cls)?.tanh()?)?,
        })
    }
}

/// Masked-LM head; the decoder is tied to the word embeddings unless the checkpoint saved it.
pub struct MaskedLmHead {
    dense: Linear,
    act: Activation,
    norm: LayerNorm,
    decoder: Linear,
}

impl MaskedLmHead {
    pub fn load(encoder: &Encoder, config: &Value, weights: &Weights) -> Result<MaskedLmHead> {
        let embeddings = format!("{}embeddings.word_embeddings.weight", encoder.prefix);
        let tied = |name: &str| -> Result<Tensor> { Ok(weights.tensors.get(name).cloned().unwrap_or(weights.get(&embeddings)?.clone())) };
        let act_of = |key: &str| -> Activation {
            match config[key].as_str().unwrap_or("gelu") {
                "relu" => Activation::Relu,
                "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::NewGelu,
                _ => Activation::Gelu,
            }
        };
        Ok(match encoder.family {
            Family::Bert => {
                let eps = config["layer_norm_eps"].as_f64().unwrap_or(1e-12);
                let bias = weights
                    .tensors
                    .get("cls.predictions.decoder.bias")
                    .cloned()
                    .or_else(|| weights.tensors.get("cls.predictions.bias").cloned());
                MaskedLmHead {
                    dense: weights.linear("cls.predictions.transform.dense")?,
                    act: act_of("hidden_act"),
                    norm: weights.layer_norm("cls.predictions.transform.LayerNorm", eps)?,
                    decoder: Linear::new(tied("cls.predictions.decoder.weight")?, bias),
                }
            }
            Family::DistilBert => MaskedLmHead {
                dense: weights.linear("vocab_transform")?,
                act: act_of("activation"),
                norm: weights.layer_norm("vocab_layer_norm", 1e-12)?,
                decoder: Linear::new(tied("vocab_projector.weight")?, weights.tensors.get("vocab_projector.bias").cloned()),
            },
            Family::Roberta => {
                let eps = config["layer_norm_eps"].as_f64().unwrap_or(1e-5);
                let bias = weights.tensors.get("lm_head.decoder.bias").cloned().or_else(|| weights.tensors.get("lm_head.bias").cloned());
                MaskedLmHead {
                    dense: weights.linear("lm_head.dense")?,
                    act: Activation::Gelu,
                    norm: weights.layer_norm("lm_head.layer_norm", eps)?,
                    decoder: Linear::new(tied("lm_head.decoder.weight")?, bias),
                }
            }
        })
    }

    /// `(n, hidden)` → vocabulary logits `(n, vocab)`.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let x = self.act.forward(&self.dense.forward(hidden)?)?;
        Ok(self.decoder.forward(&self.norm.forward(&x)?)?)
    }
}

pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
    Ok(x.broadcast_div(&norm)?)
}
