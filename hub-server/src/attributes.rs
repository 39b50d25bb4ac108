//! `.gitattributes` (which paths are LFS) and `.gitignore` (which paths an upload skips).

use globset::{GlobBuilder, GlobMatcher};

/// The default `.gitattributes` of a new repo: the LFS rules huggingface.co starts repos with.
pub const DEFAULT_LFS_PATTERNS: &[&str] = &[
    "*.7z",
    "*.arrow",
    "*.bin",
    "*.bz2",
    "*.ckpt",
    "*.ftz",
    "*.gz",
    "*.h5",
    "*.joblib",
    "*.lfs.*",
    "*.mlmodel",
    "*.model",
    "*.msgpack",
    "*.npy",
    "*.npz",
    "*.onnx",
    "*.ot",
    "*.parquet",
    "*.pb",
    "*.pickle",
    "*.pkl",
    "*.pt",
    "*.pth",
    "*.rar",
    "*.safetensors",
    "saved_model/**/*",
    "*.tar.*",
    "*.tar",
    "*.tflite",
    "*.tgz",
    "*.wasm",
    "*.xz",
    "*.zip",
    "*.zst",
    "*tfevents*",
];

/// Extra rules for dataset repos: audio, images and data files.
pub const DATASET_LFS_PATTERNS: &[&str] = &[
    "*.mds",
    "*.mp3",
    "*.ogg",
    "*.wav",
    "*.flac",
    "*.jpg",
    "*.jpeg",
    "*.png",
    "*.webp",
    "*.avro",
    "*.feather",
    "*.jsonl.gz",
    "*.tfrecord",
    "*.db",
];

pub fn default_gitattributes(dataset: bool) -> String {
    let mut out = String::new();
    let extra: &[&str] = if dataset { DATASET_LFS_PATTERNS } else { &[] };
    for p in DEFAULT_LFS_PATTERNS.iter().chain(extra) {
        out.push_str(p);
        out.push_str(" filter=lfs diff=lfs merge=lfs -text\n");
    }
    out
}

/// Files this large always go to LFS, whatever the attributes say (as on huggingface.co).
pub const LFS_SIZE_THRESHOLD: u64 = 10 * 1024 * 1024;

/// A git wildmatch pattern: without a `/` it matches the basename, otherwise the whole path.
struct Pattern {
    matcher: GlobMatcher,
    basename_only: bool,
}

impl Pattern {
    fn new(pattern: &str) -> Option<Pattern> {
        let basename_only = !pattern.trim_end_matches('/').contains('/');
        let pattern = pattern.trim_start_matches('/');
        let matcher = GlobBuilder::new(pattern).literal_separator(true).backslash_escape(true).build().ok()?.compile_matcher();
        Some(Pattern { matcher, basename_only })
    }

    fn matches(&self, path: &str) -> bool {
        if self.basename_only {
            self.matcher.is_match(path.rsplit('/').next().unwrap_or(path))
        } else {
            self.matcher.is_match(path)
        }
    }
}

/// The LFS rules of a `.gitattributes` file, in order (later lines win).
pub struct LfsRules {
    rules: Vec<(Pattern, bool)>,
}

impl LfsRules {
    pub fn parse(text: &str) -> LfsRules {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let Some(pattern) = parts.next() else { continue };
            let mut verdict = None;
            for attr in parts {
                match attr {
                    "filter=lfs" => verdict = Some(true),
                    "-filter" | "!filter" => verdict = Some(false),
                    a if a.starts_with("filter=") => verdict = Some(false),
                    _ => {}
                }
            }
            if let (Some(v), Some(p)) = (verdict, Pattern::new(pattern)) {
                rules.push((p, v));
            }
        }
        LfsRules { rules }
    }

    pub fn is_lfs(&self, path: &str) -> bool {
        self.rules.iter().rev().find(|(p, _)| p.matches(path)).map(|(_, v)| *v).unwrap_or(false)
    }
}

/// The line that makes git-lfs track exactly this path.
pub fn exact_lfs_rule(path: &str) -> String {
    let mut escaped = String::new();
    for c in path.chars() {
        match c {
            ' ' => escaped.push_str("[[:space:]]"),
            '*' | '?' | '[' | ']' | '\\' | '!' | '#' => {
                escaped.push('\\');
                escaped.push(c);
            }
            c => escaped.push(c),
        }
    }
    format!("{escaped} filter=lfs diff=lfs merge=lfs -text\n")
}

/// A `.gitignore` matcher over repo-relative paths.
pub struct IgnoreRules(ignore::gitignore::Gitignore);

impl IgnoreRules {
    pub fn parse(texts: &[&str]) -> IgnoreRules {
        let mut builder = ignore::gitignore::GitignoreBuilder::new("/");
        for text in texts {
            for line in text.lines() {
                let _ = builder.add_line(None, line);
            }
        }
        IgnoreRules(builder.build().unwrap_or_else(|_| ignore::gitignore::Gitignore::empty()))
    }

    pub fn is_ignored(&self, path: &str) -> bool {
        self.0.matched_path_or_any_parents(format!("/{path}"), false).is_ignore()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_attributes_track_weights() {
        let rules = LfsRules::parse(&default_gitattributes(false));
        for lfs in ["model.safetensors", "sub/dir/pytorch_model.bin", "saved_model/a/b.pb", "x.tar.gz", "events.out.tfevents.1"] {
            assert!(rules.is_lfs(lfs), "{lfs}");
        }
        for regular in ["config.json", "README.md", "safetensors.txt", ".gitattributes"] {
            assert!(!rules.is_lfs(regular), "{regular}");
        }
    }

    #[test]
    fn later_rules_win_and_paths_anchor() {
        let rules = LfsRules::parse("*.bin filter=lfs\nkeep.bin -filter\ndata/*.csv filter=lfs\n");
        assert!(rules.is_lfs("a.bin"));
        assert!(!rules.is_lfs("keep.bin"));
        assert!(rules.is_lfs("data/x.csv"));
        assert!(!rules.is_lfs("other/data/x.csv"));
        let exact = LfsRules::parse(&exact_lfs_rule("weird name[1].dat"));
        assert!(exact.is_lfs("weird name[1].dat"));
    }

    #[test]
    fn gitignore_rules() {
        let ig = IgnoreRules::parse(&["*.log\nbuild/\n!keep.log\n"]);
        assert!(ig.is_ignored("a.log"));
        assert!(ig.is_ignored("sub/b.log"));
        assert!(ig.is_ignored("build/out.bin"));
        assert!(!ig.is_ignored("keep.log"));
        assert!(!ig.is_ignored("src/main.rs"));
    }
}
