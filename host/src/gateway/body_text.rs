//! How a gateway body appears inside an error message (docs/contract.md#error-texts): compact
//! JSON when it is JSON, else `<non-JSON body, n bytes>` (the gateway's 404
//! pages are 250 KB of HTML), cut at 1,000 characters with `…`.

/// The body as an error message shows it.
pub fn body_text(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => v.to_string(),
        Err(_) => format!("<non-JSON body, {} bytes>", body.len()),
    };
    if text.chars().count() > 1000 {
        let cut: String = text.chars().take(1000).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_html_and_long() {
        assert_eq!(body_text("{ \"error\" : \"x\" }"), "{\"error\":\"x\"}");
        assert_eq!(body_text("<html>"), "<non-JSON body, 6 bytes>");
        let long = format!("\"{}\"", "a".repeat(2000));
        let t = body_text(&long);
        assert_eq!(t.chars().count(), 1001);
        assert!(t.ends_with('…'));
    }
}
