//! Log output: human text or one JSON object per line, verbosity from `-v` flags or `RUST_LOG`;
//! an error with its causes on one line ([`Chain`]); and the progress bar the long study loops
//! share.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

crate::named::named_words!(LogFormat, "log format", { Text => "text", Json => "json" });

/// An error and each of its causes, `: `-separated — for log fields and messages, where the
/// error types keep the cause as their `source` rather than in their own text.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// Installs the global subscriber writing to stderr. `verbosity` 0 = info, 1 = debug, 2+ = trace;
/// `RUST_LOG`, when set, wins.
pub fn init(verbosity: u8, format: LogFormat) {
    init_with(verbosity, format, "info")
}

/// As [`init`], with the level used when no `-v` is given (`ismf demo` prints its own story on
/// stdout and keeps the log to warnings).
pub fn init_with(verbosity: u8, format: LogFormat, quiet_level: &str) {
    // tract's CPU-feature probe logs at info on every start, and the embedded broker (rumqttd)
    // logs every connection: debugging detail here.
    let quiet = format!("tract_linalg=warn,rumqttd=warn,{quiet_level}");
    let level = match verbosity {
        0 => quiet.as_str(),
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colour codes only for a person at a terminal: a log file, a pipe or journald gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second initialisation (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A progress bar over `studies` studies labelled `what` (hidden when `visible` is false, e.g.
/// when stderr is not a terminal): the one style `simulate`, `dataset` and `eval` share.
pub fn study_progress(what: &str, studies: usize, visible: bool) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = if visible {
        ProgressBar::new(studies as u64)
    } else {
        ProgressBar::hidden()
    };
    let template = format!(
        "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} studies, {{per_sec}}, eta {{eta}}"
    );
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer.toml: cannot read")]
    struct Outer {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn chain_prints_each_cause_once() {
        let e = Outer {
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        };
        assert_eq!(
            Chain(&e).to_string(),
            "outer.toml: cannot read: no such file"
        );
    }
}
