//! Errors as people read them: one line, the outermost message first.

use std::error::Error;

/// An error and its causes as one line, `what failed: why: root cause`, as
/// anyhow's `{:#}` prints them but without repeats. A cause is left out when
/// the message before it already ends with it (a wrapper that prints its
/// source), or says the same thing again (hyper's connection errors name
/// "tcp connect error" twice over).
pub fn chain_text(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut previous = out.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !previous.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        previous = text;
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests;
