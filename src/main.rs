use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = holdfast::cli::Cli::parse();
    holdfast::cli::main(cli)
}
