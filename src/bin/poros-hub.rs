//! `poros-hub`: see `poros_hub::cli`.
fn main() -> std::process::ExitCode {
    poros_hub::cli::main()
}
