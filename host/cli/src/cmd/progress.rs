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

/// [`show`] on any writer, with the line redrawn each second after the
/// first, four times a second.
pub async fn show_on<F: Future>(out: &mut impl Write, doing: &str, work: F) -> F::Output {
    let started = Instant::now();
    let mut ticks = tokio::time::interval_at(started + AFTER, EVERY);
    let tick = async || {
        ticks.tick().await;
        started.elapsed().as_secs()
    };
    show_with(out, doing, work, tick).await
}

/// Awaits `work`, writing the line each time `tick` gives the seconds the
/// work has taken so far (what the tests drive), and erasing it when done.
async fn show_with<F: Future>(
    out: &mut impl Write,
    doing: &str,
    work: F,
    mut tick: impl AsyncFnMut() -> u64,
) -> F::Output {
    let mut work = std::pin::pin!(work);
    let mut shown = false;
    let output = loop {
        tokio::select! {
            output = &mut work => break output,
            secs = tick() => {
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

    /// The line shows at each tick with the seconds so far, and is erased
    /// once the work is done (here: the third tick lets it finish).
    #[tokio::test]
    async fn the_line_shows_at_each_tick_and_is_erased() {
        let (done, finished) = tokio::sync::oneshot::channel();
        let mut done = Some(done);
        let mut secs = 0;
        let tick = async || {
            secs += 1;
            if secs == 3 {
                let _ = done.take().map(|d| d.send(()));
                std::future::pending::<()>().await;
            }
            secs
        };
        let mut out = Vec::new();
        let n = show_with(
            &mut out,
            "loading",
            async { finished.await.map(|()| 7) },
            tick,
        )
        .await;
        assert_eq!(n, Ok(7));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text, "\r\x1b[2Kloading… 1 s\r\x1b[2Kloading… 2 s\r\x1b[2K",
            "{text:?}"
        );
    }

    #[tokio::test]
    async fn work_done_before_the_first_tick_shows_nothing() {
        let mut out = Vec::new();
        let tick = async || std::future::pending::<u64>().await;
        show_with(&mut out, "loading", async {}, tick).await;
        assert!(out.is_empty());
        // The real clock's first tick is a second away.
        show_on(&mut out, "loading", tokio::task::yield_now()).await;
        assert!(out.is_empty());
    }
}
