//! Field checks shared by metric and composite alarm validation.

use super::config::{MAX_ACTIONS, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, Problems};
use crate::model::Dimensions;
use crate::notify::Action;

/// Alarm names: 1–255 characters, no control characters, no `"` (so that
/// a composite rule can quote any name), no leading or trailing whitespace.
pub(crate) fn check_name(p: &mut Problems, field: &str, name: &str) {
    let chars = name.chars().count();
    if chars == 0 {
        p.add(field, "must not be empty");
    } else if chars > MAX_NAME_CHARS {
        p.add(
            field,
            format!("at most {MAX_NAME_CHARS} characters, got {chars}"),
        );
    }
    if name.chars().any(|c| c.is_control() || c == '"') {
        p.add(field, "must not hold control characters or `\"`");
    }
    if name.trim() != name {
        p.add(field, "must not start or end with whitespace");
    }
}

pub(crate) fn check_description(p: &mut Problems, description: Option<&str>) {
    if let Some(d) = description {
        let chars = d.chars().count();
        if chars > MAX_DESCRIPTION_CHARS {
            p.add(
                "description",
                format!("at most {MAX_DESCRIPTION_CHARS} characters, got {chars}"),
            );
        }
    }
}

pub(crate) fn required_text(p: &mut Problems, field: &str, value: Option<&str>) -> Option<String> {
    match value {
        None => {
            p.add(field, "is required");
            None
        }
        Some(v) if v.is_empty() || v.chars().count() > 255 => {
            p.add(field, "must be 1 to 255 characters");
            None
        }
        Some(v) => Some(v.to_string()),
    }
}

pub(crate) fn check_dimensions(p: &mut Problems, field: &str, dims: &Dimensions) {
    if dims.len() > 30 {
        p.add(field, format!("at most 30 dimensions, got {}", dims.len()));
    }
    for (k, v) in dims {
        if k.is_empty() || v.is_empty() {
            p.add(field, "dimension names and values must not be empty");
            break;
        }
    }
}

pub(crate) fn check_actions(p: &mut Problems, field: &str, actions: &[Action]) {
    if actions.len() > MAX_ACTIONS {
        p.add(
            field,
            format!("at most {MAX_ACTIONS} actions, got {}", actions.len()),
        );
    }
    for (i, a) in actions.iter().enumerate() {
        match a {
            Action::Webhook { url, .. } | Action::Alertmanager { url } => {
                if !valid_http_url(url) {
                    p.add(
                        format!("{field}[{i}].url"),
                        format!("must be an http:// or https:// URL, got `{url}`"),
                    );
                }
            }
            Action::Email { to } => {
                if to.is_empty() {
                    p.add(format!("{field}[{i}].to"), "needs at least one address");
                }
                for (j, addr) in to.iter().enumerate() {
                    if !valid_email(addr) {
                        p.add(
                            format!("{field}[{i}].to[{j}]"),
                            format!("`{addr}` is not an email address"),
                        );
                    }
                }
            }
        }
    }
}

pub(crate) fn valid_query_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `http://` or `https://`, a non-empty host, no whitespace.
pub fn valid_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty()
                && !host.starts_with(':')
                && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// `local@domain.tld`: one `@`, a non-empty local part, a domain of
/// non-empty dot-separated labels with at least one dot, no whitespace.
pub fn valid_email(addr: &str) -> bool {
    let Some((local, domain)) = addr.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        && !local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}
