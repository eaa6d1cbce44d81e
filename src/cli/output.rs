//! Results on stdout. A write to a closed stdout returns its error, which the handlers pass up
//! with `?`, so `main` ends quietly with success (`ismf classify --json | head`).

/// Writes a line of results to stdout; `?` on it hands a closed stdout to `cli::exit_code`.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!($($arg)*))
    };
}
pub(crate) use say;

pub(crate) fn write_stdout(args: std::fmt::Arguments) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args).and_then(|()| out.write_all(b"\n"))
}

/// Writes text to stdout as it is (it carries its own line ends).
pub(crate) fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::io::stdout().lock().write_all(text.as_bytes())
}
