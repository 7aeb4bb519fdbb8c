//! Errors as people read them: one line, the outermost message first.

use std::error::Error;

/// An error and its causes as one line, `what failed: why: root cause`, as
/// anyhow's `{:#}` prints them but without repeats: a cause is left out when
/// the line already says it (a wrapper that prints its source, or hyper's
/// connection errors, which name "tcp connect error" twice over).
pub fn chain_text(error: &(dyn Error + 'static)) -> String {
    with_causes(error.to_string(), error.source())
}

/// `text`, then each cause from `source` down that it does not already say,
/// each after `: `.
pub fn with_causes(mut text: String, mut source: Option<&(dyn Error + 'static)>) -> String {
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
