//! `ismf`: the command-line face of ISMF Edge. Parses the arguments, runs the command
//! (`cli/`), and maps its error to an exit code once: 0 success (or a closed stdout), 1 runtime
//! failure, 2 usage or configuration error.

mod cli;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc with a ceiling on single allocations; why both, in `ismf::alloc`.
#[global_allocator]
static ALLOCATOR: ismf::alloc::BoundedAllocator = ismf::alloc::BoundedAllocator;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    ismf::logging::init_with(cli.verbosity(), cli.log_format(), cli.quiet_level());
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = cli::exit_code(&e);
            if code != 0 {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(code)
        }
    }
}
