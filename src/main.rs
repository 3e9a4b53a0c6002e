use clap::Parser;

fn main() -> std::process::ExitCode {
    match holdfast::cli::Cli::try_parse() {
        Ok(cli) => holdfast::cli::main(cli),
        // Help and version print in full; a mistake gets clap's one-line message.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.to_string();
            let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            eprintln!("{line} (see holdfast --help)");
            std::process::ExitCode::from(2)
        }
    }
}
