//! A progress line for work a person waits on (loading a pipeline compiles
//! its plugins: seconds for a JavaScript or Python component the first
//! time). Shown on a terminal only, once the work has taken a second,
//! redrawn in place and erased when it is done; nothing for a pipe or a file.

use std::future::Future;
use std::io::{IsTerminal as _, Write};
use std::time::Duration;

use tokio::time::Instant;

/// How long work runs before the line appears.
const AFTER: Duration = Duration::from_secs(1);
/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(250);

/// Awaits `work`, showing `doing… N s` on stderr while it runs when stderr
/// is a terminal.
pub async fn show<F: Future>(doing: &str, work: F) -> F::Output {
    if std::io::stderr().is_terminal() {
        show_on(&mut std::io::stderr(), doing, work).await
    } else {
        work.await
    }
}

/// [`show`] on any writer (what the tests read).
pub async fn show_on<F: Future>(out: &mut impl Write, doing: &str, work: F) -> F::Output {
    let started = Instant::now();
    let mut work = std::pin::pin!(work);
    let mut ticks = tokio::time::interval_at(started + AFTER, EVERY);
    let mut shown = false;
    let output = loop {
        tokio::select! {
            output = &mut work => break output,
            _ = ticks.tick() => {
                let secs = started.elapsed().as_secs();
                // A progress line that cannot be written is not worth an error.
                let _ = write!(out, "\r\x1b[2K{doing}… {secs} s");
                let _ = out.flush();
                shown = true;
            }
        }
    };
    if shown {
        let _ = write!(out, "\r\x1b[2K");
        let _ = out.flush();
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_line_shows_after_a_second_and_is_erased() {
        let mut out = Vec::new();
        let n = show_on(&mut out, "loading", async {
            tokio::time::sleep(Duration::from_millis(2100)).await;
            7
        })
        .await;
        assert_eq!(n, 7);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("\r\x1b[2Kloading… 1 s"), "{text:?}");
        assert!(text.contains("loading… 2 s"), "{text:?}");
        assert!(text.ends_with("\r\x1b[2K"), "{text:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn quick_work_shows_nothing() {
        let mut out = Vec::new();
        show_on(
            &mut out,
            "loading",
            tokio::time::sleep(Duration::from_millis(900)),
        )
        .await;
        assert!(out.is_empty());
    }
}
