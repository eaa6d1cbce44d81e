//! Log output: human text or one JSON object per line, verbosity from `-v` flags or `RUST_LOG`;
//! and the progress bar the long study loops share.

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
