//! The `exist-agent` binary: everything it does is in the library.

fn main() -> std::process::ExitCode {
    exist_agent::main()
}
