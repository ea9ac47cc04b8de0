//! Ending quietly when the reader of standard output goes away.
//!
//! Rust ignores SIGPIPE, so a `println!` into a closed pipe (`classify heads … | head -3`)
//! panics ("failed printing to stdout: Broken pipe"). Command-line tools end instead, as `ls`
//! and `cat` do: the signal's default action, restored here.

/// Restores SIGPIPE's default action (end the process); call first thing in `main`.
#[cfg(unix)]
#[allow(unsafe_code)]
pub fn end_quietly_on_closed_stdout() {
    // SAFETY: setting a signal's disposition to SIG_DFL before any thread is started has no
    // memory-safety requirements.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Nothing to do off Unix.
#[cfg(not(unix))]
pub fn end_quietly_on_closed_stdout() {}
