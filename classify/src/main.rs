//! `classify`: DAT heads over frozen-encoder embeddings, the paper's replication protocols and
//! Importance Factor reports.

mod cli;

fn main() -> std::process::ExitCode {
    daam::sigpipe::end_quietly_on_closed_stdout();
    daam::allocator::retain_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            if let Some(stop) = error.downcast_ref::<cli::Interrupted>() {
                eprintln!("{stop}");
                return std::process::ExitCode::from(130);
            }
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
