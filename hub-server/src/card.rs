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

/// Front matter longer than this is refused (real cards, model-index included, are a few KiB).
pub const MAX_FRONT_MATTER: usize = 1024 * 1024;
/// Flow collections (`[`, `{`) nested deeper than this are refused: the YAML parser's time grows
/// faster than linearly with nesting, and a card is parsed on reads of the repo.
pub const MAX_FLOW_DEPTH: usize = 64;

/// The deepest nesting of `[`/`{` outside quoted strings (a linear scan, before any parsing).
fn flow_depth(yaml: &str) -> usize {
    let (mut depth, mut max, mut quote) = (0usize, 0usize, None::<char>);
    let mut chars = yaml.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => {
                depth += 1;
                max = max.max(depth);
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            (None, '\n') => {}
            _ => {}
        }
    }
    max
}

/// Parses front matter into JSON; an error says what is wrong with the YAML.
pub fn parse_card_data(readme: &str) -> Result<Option<Value>, String> {
    let Some(yaml) = front_matter(readme) else { return Ok(None) };
    if yaml.trim().is_empty() {
        return Ok(None);
    }
    if yaml.len() > MAX_FRONT_MATTER {
        return Err(format!("README.md front matter is longer than {MAX_FRONT_MATTER} bytes"));
    }
    if flow_depth(yaml) > MAX_FLOW_DEPTH {
        return Err(format!("README.md front matter nests lists or mappings deeper than {MAX_FLOW_DEPTH} levels"));
    }
    let value: serde_norway::Value = serde_norway::from_str(yaml).map_err(|e| format!("Invalid YAML in README.md front matter: {e}"))?;
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
    fn deep_or_huge_front_matter_is_refused_before_parsing() {
        let deep = format!("---\nx: {}\n---\n", "[".repeat(70_000));
        // Refused by the scan (the parser's own error would say something else, minutes later).
        assert!(parse_card_data(&deep).unwrap_err().contains("deeper than"));
        let quoted = format!("---\nx: \"{}\"\ny: [[1]]\n---\n", "[".repeat(1000));
        assert!(parse_card_data(&quoted).unwrap().is_some(), "brackets inside strings do not count");
        let huge = format!("---\nx: \"{}\"\n---\n", "a".repeat(MAX_FRONT_MATTER));
        assert!(parse_card_data(&huge).unwrap_err().contains("longer than"));
    }

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
