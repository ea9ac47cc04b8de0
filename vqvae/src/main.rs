//! `vqvae`: train a DAAM VQ-VAE, reconstruct and decode images, compare models.

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
        Ok(status) => status,
        Err(error) => {
            eprintln!("error: {error:#}");
            let interrupted = error
                .chain()
                .any(|e| matches!(e.downcast_ref(), Some(vqvae::Error::Interrupted { .. })));
            if interrupted {
                std::process::ExitCode::from(cli::INTERRUPTED)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
