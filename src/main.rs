use clap::Parser;
use clap::error::ErrorKind;

fn main() -> std::process::ExitCode {
    restore_default_sigpipe();
    match holdfast::cli::Cli::try_parse() {
        Ok(cli) => holdfast::cli::main(cli),
        // Help and version print in full, and so does the help a command
        // given without its subcommand shows (`holdfast workflow`).
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            eprintln!("{} (see holdfast --help)", mistake(&e.to_string()));
            std::process::ExitCode::from(2)
        }
    }
}

/// clap's message for a mistake, without its usage lines and tips: the
/// first line, and what it lists under it (the missing arguments, say).
fn mistake(text: &str) -> String {
    let body = text.split("\n\nUsage:").next().unwrap_or(text);
    let body = body.split("\n\n  tip:").next().unwrap_or(body);
    let body = body
        .split("\n\nFor more information")
        .next()
        .unwrap_or(body);
    let lines: Vec<&str> = body
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    match lines.as_slice() {
        [] => "invalid command line".into(),
        [one] => one.to_string(),
        [first, rest @ ..] => {
            let listed: Vec<&str> = rest.iter().map(|l| l.trim()).collect();
            format!("{first} {}", listed.join(", "))
        }
    }
}

/// A closed pipe (`holdfast workflow list | head -1`) ends the command
/// quietly, as it ends `ls`, instead of panicking in `println!`.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread starts;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
