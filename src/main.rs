use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = hoptrace::cli::Cli::parse();
    match hoptrace::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`hoptrace report | head`) is not an error.
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("hoptrace: error: {err:#}");
            ExitCode::from(hoptrace::cli::EXIT_UNUSABLE)
        }
    }
}
