fn main() -> std::process::ExitCode {
    idflow::cli::main()
}
