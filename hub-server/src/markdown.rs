//! Model cards as HTML: GitHub-flavoured Markdown (tables, strikethrough, task lists), relative
//! links and images resolved to the repo's files, then sanitised so nothing in a card can run
//! script (no <script>, no on* attributes, no javascript: URLs, no iframes).

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

fn is_relative(url: &str) -> bool {
    !(url.is_empty()
        || url.starts_with('#')
        || url.starts_with('/')
        || url.contains("://")
        || url.starts_with("mailto:")
        || url.contains(':'))
}

/// Renders a card body; `repo_url` is `/{prefix}{ns}/{name}`, `rev` the revision shown.
pub fn render_card(markdown: &str, repo_url: &str, rev: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS | Options::ENABLE_FOOTNOTES;
    let rev = percent_encoding::utf8_percent_encode(rev, percent_encoding::NON_ALPHANUMERIC).to_string();
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        Event::Start(Tag::Link { link_type, dest_url, title, id }) if is_relative(&dest_url) => {
            let dest = format!("{repo_url}/blob/{rev}/{}", dest_url.trim_start_matches("./"));
            Event::Start(Tag::Link { link_type, dest_url: CowStr::from(dest), title, id })
        }
        Event::Start(Tag::Image { link_type, dest_url, title, id }) if is_relative(&dest_url) => {
            let dest = format!("{repo_url}/resolve/{rev}/{}", dest_url.trim_start_matches("./"));
            Event::Start(Tag::Image { link_type, dest_url: CowStr::from(dest), title, id })
        }
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    ammonia::Builder::default().link_rel(Some("noopener noreferrer nofollow")).clean(&html).to_string()
}

/// Syntax-highlighted HTML for a text file (inline styles, content escaped by syntect), or None
/// when no syntax matches or the file is too large to colour cheaply.
pub fn highlight(path: &str, text: &str) -> Option<String> {
    use std::sync::OnceLock;
    use syntect::highlighting::ThemeSet;
    use syntect::parsing::SyntaxSet;
    static SYNTAXES: OnceLock<SyntaxSet> = OnceLock::new();
    static THEMES: OnceLock<ThemeSet> = OnceLock::new();
    if text.len() > 256 * 1024 {
        return None;
    }
    let syntaxes = SYNTAXES.get_or_init(SyntaxSet::load_defaults_newlines);
    let ext = path.rsplit('.').next().unwrap_or("");
    let syntax =
        syntaxes.find_syntax_by_extension(ext).or_else(|| syntaxes.find_syntax_by_first_line(text.lines().next().unwrap_or("")))?;
    let theme = &THEMES.get_or_init(ThemeSet::load_defaults).themes["InspiredGitHub"];
    syntect::html::highlighted_html_for_string(text, syntaxes, syntax, theme).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_render_and_resolve_relative_paths() {
        let html = render_card(
            "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![plot](img/p.png) [cfg](config.json) [web](https://example.org)\n",
            "/alice/m",
            "main",
        );
        assert!(html.contains("<h1>Title</h1>"));
        assert!(html.contains("<table>"));
        assert!(html.contains("src=\"/alice/m/resolve/main/img/p.png\""));
        assert!(html.contains("href=\"/alice/m/blob/main/config.json\""));
        assert!(html.contains("href=\"https://example.org\""));
    }

    #[test]
    fn code_is_highlighted_and_escaped() {
        let html = highlight("train.py", "import torch  # <script>\nx = 1\n").unwrap();
        assert!(html.contains("<span") && html.contains("&lt;script&gt;") && !html.contains("<script"));
        assert!(highlight("data.unknownext", "plain").is_none());
    }

    #[test]
    fn hostile_cards_render_inert() {
        let hostile = "<script>alert(1)</script>\n\n<img src=x onerror=\"alert(2)\">\n\n[click](javascript:alert(3))\n\n<iframe src=\"https://evil.example\"></iframe>\n\n<a href=\"javascript:alert(4)\">x</a>\n";
        let html = render_card(hostile, "/alice/m", "main");
        for bad in ["<script", "onerror", "javascript:", "<iframe", "alert(1)"] {
            assert!(!html.contains(bad), "{bad} survived: {html}");
        }
    }
}
