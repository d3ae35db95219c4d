//! The `hubsync` binary: a thin shell over [`hubsync::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    hubsync::cli::main()
}
