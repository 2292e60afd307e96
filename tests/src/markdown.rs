//! Reading the pages in `docs/` the way `tests/tests/docs.rs` checks them:
//! the lines of a section, its first table split into cells, code spans,
//! headings as GitHub anchors, and links. Plain string handling: the pages
//! are written for it (one row per key, the key in backticks).

/// The lines below the heading line `heading` (e.g. `## Output`), up to the
/// next heading of any level; `None` when the page has no such heading.
/// Lines inside fenced code blocks are never taken for headings.
pub fn section<'a>(text: &'a str, heading: &str) -> Option<Vec<&'a str>> {
    let lines = prose_lines(text);
    let start = lines.iter().position(|(line, _)| line.trim_end() == heading)?;
    Some(
        lines[start + 1..]
            .iter()
            .take_while(|(line, fenced)| *fenced || !line.starts_with('#'))
            .map(|(line, _)| *line)
            .collect(),
    )
}

/// The lines before the first `## ` heading (a page's title and metadata table).
pub fn preamble(text: &str) -> Vec<&str> {
    prose_lines(text)
        .into_iter()
        .take_while(|(line, fenced)| *fenced || !line.starts_with("## "))
        .map(|(line, _)| line)
        .collect()
}

/// Every line with whether it is inside a fenced code block (the fences included).
fn prose_lines(text: &str) -> Vec<(&str, bool)> {
    let mut fenced = false;
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return (line, true);
            }
            (line, fenced)
        })
        .collect()
}

/// The body rows of the first table in `lines`, as trimmed cells: the
/// header row and the `| --- |` separator are dropped.
pub fn first_table(lines: &[&str]) -> Vec<Vec<String>> {
    let rows: Vec<&str> = lines
        .iter()
        .skip_while(|line| !line.trim_start().starts_with('|'))
        .take_while(|line| line.trim_start().starts_with('|'))
        .copied()
        .collect();
    rows.iter()
        .skip(2)
        .map(|row| cells(row))
        .collect()
}

/// The cells of one table row. `\|` is a literal bar; a bar inside a code
/// span does not split.
pub fn cells(row: &str) -> Vec<String> {
    let row = row.trim();
    let row = row.strip_prefix('|').unwrap_or(row);
    let row = row.strip_suffix('|').unwrap_or(row);
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut in_code = false;
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '`' => {
                in_code = !in_code;
                cell.push(c);
            }
            '|' if !in_code => out.push(std::mem::take(&mut cell).trim().to_owned()),
            _ => cell.push(c),
        }
    }
    out.push(cell.trim().to_owned());
    out
}

/// The texts inside backticks, in order.
pub fn code_spans(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The anchors GitHub gives the page's headings (`## One call, end to end`
/// is `#one-call-end-to-end`); a repeated heading gets `-1`, `-2`, ….
pub fn anchors(text: &str) -> Vec<String> {
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut out = Vec::new();
    for (line, fenced) in prose_lines(text) {
        let title = line.trim_start_matches('#');
        if fenced || !line.starts_with('#') || !title.starts_with(' ') {
            continue;
        }
        let base = slug(title.trim());
        let n = counts.entry(base.clone()).or_default();
        out.push(if *n == 0 { base } else { format!("{base}-{n}") });
        *n += 1;
    }
    out
}

/// GitHub's heading slug: lower case, punctuation dropped, spaces to `-`.
pub fn slug(title: &str) -> String {
    title
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The targets of the markdown links `[text](target)` outside code blocks
/// and code spans, in order.
pub fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (line, fenced) in prose_lines(text) {
        if fenced {
            continue;
        }
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            match after.find(')') {
                Some(end) => {
                    out.push(after[..end].to_owned());
                    rest = &after[end..];
                }
                None => break,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# t\n\n| | |\n| --- | --- |\n| tool | `x` |\n\n## Output\n\n| key | type |\n| --- | --- |\n| `a` | string |\n| `b.c` | `x\\|y` or `p|q` |\n\n### More\n\n| `z` | |\n\n```md\n## Not a heading\n```\n## Output\n";

    #[test]
    fn sections_stop_at_any_heading_and_ignore_fences() {
        let rows = first_table(&section(PAGE, "## Output").unwrap());
        assert_eq!(rows, vec![vec!["`a`", "string"], vec!["`b.c`", "`x|y` or `p|q`"]]);
        assert_eq!(first_table(&preamble(PAGE)), vec![vec!["tool", "`x`"]]);
        assert_eq!(code_spans("`a`, `b`"), ["a", "b"]);
    }

    #[test]
    fn anchors_follow_github() {
        assert_eq!(slug("What the 3.7.9 gateway cannot supply"), "what-the-379-gateway-cannot-supply");
        assert_eq!(slug("One call, end to end"), "one-call-end-to-end");
        assert_eq!(slug("`degraded`"), "degraded");
        assert_eq!(anchors(PAGE), ["t", "output", "more", "output-1"]);
    }

    #[test]
    fn links_skip_code() {
        assert_eq!(links("see [a](a.md#x) and `[b](b.md)`\n```\n[c](c.md)\n```"), ["a.md#x"]);
    }
}
