//! Model/dataset cards: the YAML front matter of README.md, and the metadata derived from it.

use crate::db::CardMeta;
use serde_json::Value;

/// The YAML between a leading `---` line and the next `---` line, if present.
pub fn front_matter(readme: &str) -> Option<&str> {
    let text = readme.strip_prefix('\u{feff}').unwrap_or(readme);
    let rest = text.strip_prefix("---\n").or_else(|| text.strip_prefix("---\r\n"))?;
    if rest.starts_with("---") {
        return Some("");
    }
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Some(&rest[..offset]);
        }
        offset += line.len();
    }
    None
}

/// Parses front matter into JSON; an error says what is wrong with the YAML.
pub fn parse_card_data(readme: &str) -> Result<Option<Value>, String> {
    let Some(yaml) = front_matter(readme) else { return Ok(None) };
    if yaml.trim().is_empty() {
        return Ok(None);
    }
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).map_err(|e| format!("Invalid YAML in README.md front matter: {e}"))?;
    let json = serde_json::to_value(value).map_err(|e| format!("Unsupported YAML in README.md front matter: {e}"))?;
    match json {
        Value::Object(_) => Ok(Some(json)),
        Value::Null => Ok(None),
        _ => Err("README.md front matter must be a YAML mapping (key: value pairs)".to_string()),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// Card metadata as the listing and info APIs report it. Invalid YAML yields empty metadata.
pub fn card_meta(readme: Option<&str>) -> CardMeta {
    let card = readme.and_then(|r| parse_card_data(r).ok().flatten());
    let Some(card) = card else { return CardMeta::default() };
    let field = |k: &str| card.get(k).and_then(Value::as_str).map(str::to_string);
    let pipeline_tag = field("pipeline_tag");
    let library_name = field("library_name");
    let mut tags: Vec<String> = Vec::new();
    let mut add = |t: String| {
        if !t.is_empty() && !tags.contains(&t) {
            tags.push(t);
        }
    };
    if let Some(lib) = &library_name {
        add(lib.clone());
    }
    for t in strings(card.get("tags")) {
        add(t);
    }
    if let Some(p) = &pipeline_tag {
        add(p.clone());
    }
    for d in strings(card.get("datasets")) {
        add(format!("dataset:{d}"));
    }
    for l in strings(card.get("language")) {
        add(l);
    }
    for l in strings(card.get("license")) {
        add(format!("license:{l}"));
    }
    for b in strings(card.get("base_model")) {
        add(format!("base_model:{b}"));
    }
    CardMeta { card_data: Some(card), tags, pipeline_tag, library_name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_front_matter_metadata() {
        let readme = "---\nlicense: mit\nlibrary_name: transformers\npipeline_tag: feature-extraction\ntags:\n- a\n- b\n---\n\n# Title\n";
        let meta = card_meta(Some(readme));
        assert_eq!(meta.card_data.unwrap()["license"], "mit");
        assert_eq!(meta.pipeline_tag.as_deref(), Some("feature-extraction"));
        assert_eq!(meta.library_name.as_deref(), Some("transformers"));
        assert_eq!(meta.tags, ["transformers", "a", "b", "feature-extraction", "license:mit"]);
    }

    #[test]
    fn no_or_bad_front_matter() {
        assert!(card_meta(Some("# Just a title\n")).card_data.is_none());
        assert!(parse_card_data("---\nkey: [unclosed\n---\n").is_err());
        assert!(parse_card_data("---\n- a list\n---\n").is_err());
        assert_eq!(parse_card_data("---\n---\nbody").unwrap(), None);
    }
}
