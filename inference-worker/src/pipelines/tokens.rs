//! token-classification, grouped the way transformers' TokenClassificationPipeline groups.

use std::time::Duration;

use candle_core::Module;
use serde_json::{json, Value};
use tokenizers::{Decoder, ModelWrapper};

use super::{classify::softmax, Kind, LoadedModel};
use crate::error::{Result, WorkerError};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregation {
    None,
    Simple,
    First,
    Average,
    Max,
}

/// One token's prediction before grouping.
struct PreEntity {
    word: String,
    scores: Vec<f32>,
    start: usize,
    end: usize,
    index: usize,
    is_subword: bool,
}

/// A word (or token) with its label, before B-/I- grouping.
struct Entity {
    entity: String,
    score: f32,
    word: String,
    start: usize,
    end: usize,
    index: Option<usize>,
}

struct Grouper<'a> {
    model: &'a LoadedModel,
    labels: &'a [String],
}

impl Grouper<'_> {
    fn tokens_to_string(&self, tokens: Vec<String>) -> String {
        match self.model.tokenizer.get_decoder() {
            Some(d) => d.decode(tokens.clone()).unwrap_or_else(|_| tokens.join(" ")),
            None => tokens.join(" "),
        }
    }

    fn argmax(scores: &[f32]) -> usize {
        scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0)
    }

    fn aggregate_word(&self, group: &[PreEntity], how: Aggregation) -> Entity {
        let word = self.tokens_to_string(group.iter().map(|e| e.word.clone()).collect());
        let scores: Vec<f32> = match how {
            Aggregation::Max => {
                group.iter().max_by(|a, b| max_of(&a.scores).total_cmp(&max_of(&b.scores))).map(|e| e.scores.clone()).unwrap_or_default()
            }
            Aggregation::Average => {
                let n = group.len() as f32;
                (0..self.labels.len()).map(|l| group.iter().map(|e| e.scores[l]).sum::<f32>() / n).collect()
            }
            _ => group[0].scores.clone(),
        };
        let idx = Self::argmax(&scores);
        Entity {
            entity: self.labels[idx].clone(),
            score: scores[idx],
            word,
            start: group[0].start,
            end: group[group.len() - 1].end,
            index: None,
        }
    }

    /// `first`/`average`/`max`: subword tokens join the word they continue.
    fn aggregate_words(&self, pre: Vec<PreEntity>, how: Aggregation) -> Vec<Entity> {
        let mut words = Vec::new();
        let mut group: Vec<PreEntity> = Vec::new();
        for e in pre {
            if !group.is_empty() && !e.is_subword {
                words.push(self.aggregate_word(&group, how));
                group.clear();
            }
            group.push(e);
        }
        if !group.is_empty() {
            words.push(self.aggregate_word(&group, how));
        }
        words
    }

    fn group_sub_entities(&self, group: &[Entity]) -> Value {
        let entity = group[0].entity.split_once('-').map(|(_, t)| t).unwrap_or(&group[0].entity);
        let score = group.iter().map(|e| e.score).sum::<f32>() / group.len() as f32;
        let word = self.tokens_to_string(group.iter().map(|e| e.word.clone()).collect());
        json!({ "entity_group": entity, "score": score, "word": word, "start": group[0].start, "end": group[group.len() - 1].end })
    }

    /// Adjacent entities with the same tag merge unless the next one begins with `B-`.
    fn group_entities(&self, entities: Vec<Entity>) -> Vec<Value> {
        let mut groups = Vec::new();
        let mut current: Vec<Entity> = Vec::new();
        for e in entities {
            if let Some(last) = current.last() {
                let (bi, tag) = tag_of(&e.entity);
                let (_, last_tag) = tag_of(&last.entity);
                if !(tag == last_tag && bi != "B") {
                    groups.push(self.group_sub_entities(&current));
                    current.clear();
                }
            }
            current.push(e);
        }
        if !current.is_empty() {
            groups.push(self.group_sub_entities(&current));
        }
        groups
    }
}

fn max_of(scores: &[f32]) -> f32 {
    scores.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

fn tag_of(name: &str) -> (&str, &str) {
    if let Some(t) = name.strip_prefix("B-") {
        ("B", t)
    } else if let Some(t) = name.strip_prefix("I-") {
        ("I", t)
    } else {
        ("I", name)
    }
}

fn aggregation(params: &Value) -> Result<Aggregation> {
    Ok(match params["aggregation_strategy"].as_str() {
        None | Some("simple") => Aggregation::Simple,
        Some("none") => Aggregation::None,
        Some("first") => Aggregation::First,
        Some("average") => Aggregation::Average,
        Some("max") => Aggregation::Max,
        Some(other) => {
            return Err(WorkerError::BadInput(format!("aggregation_strategy must be none, simple, first, average or max, not {other:?}")))
        }
    })
}

pub async fn token_classification(model: &LoadedModel, body: &Value, timeout: Duration) -> Result<Value> {
    let Kind::TokenClassifier { queue, classifier, labels } = &model.kind else {
        return Err(WorkerError::Internal("not a token-classification model".into()));
    };
    let text = body["inputs"].as_str().ok_or_else(|| WorkerError::BadInput("inputs must be a string".into()))?;
    let params = &body["parameters"];
    let how = aggregation(params)?;
    let ignore: Vec<String> = match &params["ignore_labels"] {
        Value::Null => vec!["O".into()],
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => return Err(WorkerError::BadInput("ignore_labels must be a list of labels".into())),
    };
    let enc = model.encode(text)?;
    let hidden = queue.run(vec![enc.get_ids().to_vec()], timeout).await?;
    let hidden = hidden.into_iter().next().ok_or_else(|| WorkerError::Internal("no output".into()))?;
    let logits = classifier.forward(&hidden)?.to_vec2::<f32>()?;

    let chars: Vec<char> = text.chars().collect();
    // WordPiece (`##`) and some BPEs mark continuations; otherwise a token continues a word when
    // no space precedes it.
    let has_prefix = match model.tokenizer.get_model() {
        ModelWrapper::WordPiece(wp) => !wp.continuing_subword_prefix.is_empty(),
        ModelWrapper::BPE(bpe) => bpe.continuing_subword_prefix.as_ref().is_some_and(|p| !p.is_empty()),
        _ => false,
    };
    let unk = ["[UNK]", "<unk>"].into_iter().find_map(|t| model.tokenizer.token_to_id(t));
    let mut pre = Vec::new();
    for (index, row) in logits.iter().enumerate() {
        if enc.get_special_tokens_mask()[index] == 1 {
            continue;
        }
        let (start, end) = enc.get_offsets()[index];
        let word_ref: String = chars.get(start..end.min(chars.len())).map(|c| c.iter().collect()).unwrap_or_default();
        let mut word = enc.get_tokens()[index].clone();
        let mut is_subword = if has_prefix {
            word.chars().count() != word_ref.chars().count()
        } else {
            start > 0 && !chars[start - 1..(start + 1).min(chars.len())].contains(&' ')
        };
        if Some(enc.get_ids()[index]) == unk {
            word = word_ref;
            is_subword = false;
        }
        pre.push(PreEntity { word, scores: softmax(row), start, end, index, is_subword });
    }

    let grouper = Grouper { model, labels };
    let entities: Vec<Value> = match how {
        Aggregation::None | Aggregation::Simple => {
            let tokens: Vec<Entity> = pre
                .into_iter()
                .map(|p| {
                    let idx = Grouper::argmax(&p.scores);
                    Entity {
                        entity: labels[idx].clone(),
                        score: p.scores[idx],
                        word: p.word,
                        start: p.start,
                        end: p.end,
                        index: Some(p.index),
                    }
                })
                .collect();
            if how == Aggregation::None {
                tokens
                    .into_iter()
                    .map(|e| json!({ "entity": e.entity, "score": e.score, "index": e.index, "word": e.word, "start": e.start, "end": e.end }))
                    .collect()
            } else {
                grouper.group_entities(tokens)
            }
        }
        _ => grouper.group_entities(grouper.aggregate_words(pre, how)),
    };
    let kept: Vec<Value> = entities
        .into_iter()
        .filter(|e| {
            let label = e.get("entity").or_else(|| e.get("entity_group")).and_then(Value::as_str).unwrap_or_default();
            !ignore.iter().any(|i| i == label)
        })
        .collect();
    Ok(json!(kept))
}

#[cfg(test)]
mod tests {
    use super::tag_of;

    #[test]
    fn tags_split_like_transformers() {
        assert_eq!(tag_of("B-PER"), ("B", "PER"));
        assert_eq!(tag_of("I-LOC"), ("I", "LOC"));
        // Labels without a prefix continue a group of the same label.
        assert_eq!(tag_of("O"), ("I", "O"));
        assert_eq!(tag_of("MISC"), ("I", "MISC"));
    }
}
