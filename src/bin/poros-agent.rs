//! `poros-agent`: see `poros_agent::cli`.
fn main() -> std::process::ExitCode {
    poros_agent::cli::main()
}
