//! The `hubsync` binary: a thin shell over [`hubsync::cli`].

use std::process::ExitCode;

/// mimalloc instead of the system allocator: a list page or a drain step allocates thousands of
/// small strings and JSON values, and glibc's malloc spent about a fifth of their CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    hubsync::cli::main()
}
