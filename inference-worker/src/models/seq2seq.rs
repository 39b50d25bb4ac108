//! Encoder-decoder models for summarization / translation / text2text-generation: T5.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::t5;
use serde_json::{json, Value};

use super::{default_field, parse, Weights};
use crate::error::{Result, WorkerError};

pub struct Seq2Seq {
    model: t5::T5ForConditionalGeneration,
    decoder_start: u32,
    eos: u32,
    device: Device,
}

impl Seq2Seq {
    pub fn load(config: &Value, weights: &Weights, device: &Device) -> Result<Seq2Seq> {
        let mut cfg = config.clone();
        for (k, v) in [
            ("dropout_rate", json!(0.1)),
            ("initializer_factor", json!(1.0)),
            ("is_encoder_decoder", json!(true)),
            ("pad_token_id", json!(0)),
            ("eos_token_id", json!(1)),
            ("layer_norm_epsilon", json!(1e-6)),
            ("relative_attention_num_buckets", json!(32)),
        ] {
            default_field(&mut cfg, k, v);
        }
        let c: t5::Config = parse(cfg, "T5")?;
        let mut needed =
            vec!["shared.weight".to_string(), "encoder.final_layer_norm.weight".into(), "decoder.final_layer_norm.weight".into()];
        if !c.tie_word_embeddings {
            needed.push("lm_head.weight".into());
        }
        for stack in ["encoder", "decoder"] {
            needed.push(format!("{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"));
        }
        if let Some(missing) = needed.iter().find(|n| !weights.has(n)) {
            return Err(WorkerError::Unsupported(format!("the checkpoint has no tensor {missing}")));
        }
        let vb = VarBuilder::from_tensors(weights.tensors.clone(), DType::F32, device);
        let model = t5::T5ForConditionalGeneration::load(vb, &c)?;
        Ok(Seq2Seq {
            model,
            decoder_start: c.decoder_start_token_id.unwrap_or(c.pad_token_id) as u32,
            eos: c.eos_token_id as u32,
            device: device.clone(),
        })
    }

    /// Greedy decoding from the decoder start token until EOS or `max_new_tokens`; the EOS is
    /// not returned. Blocking.
    pub fn generate(&self, input: &[u32], max_new_tokens: usize, deadline: Instant, timeout_s: f64) -> Result<Vec<u32>> {
        // The model keeps its KV cache inside: each request decodes on its own copy (tensors are shared).
        let mut model = self.model.clone();
        model.clear_kv_cache();
        let input = Tensor::new(input, &self.device)?.unsqueeze(0)?;
        let encoded = model.encode(&input)?;
        let mut out: Vec<u32> = Vec::new();
        let mut last = self.decoder_start;
        for _ in 0..max_new_tokens {
            if Instant::now() > deadline {
                return Err(WorkerError::Timeout(timeout_s));
            }
            // With the cache, only the newest token goes in.
            let step = Tensor::new(&[last], &self.device)?.unsqueeze(0)?;
            let logits = model.decode(&step, &encoded)?.squeeze(0)?.to_vec1::<f32>()?;
            let next = logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32).unwrap_or(self.eos);
            if next == self.eos {
                break;
            }
            out.push(next);
            last = next;
        }
        Ok(out)
    }
}
