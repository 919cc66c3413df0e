//! `[source] decompress`: gzip or zstd (or `auto`, by magic bytes), never
//! past `max_decompressed_bytes` or what is left of the batch's budget (a
//! compression bomb fails its record alone).

use std::io::Read as _;

use super::Budget;
use crate::config::{Decompress, Source, SourceFormat};

/// The two bytes a gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The four bytes a zstd frame starts with.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The payload decompressed, `None` when `source` leaves it as it is. It
/// may grow to `max_decompressed_bytes` or what is left of `budget`,
/// whichever is less; the zstd window is capped to the same.
pub(super) fn decompress(
    data: &[u8],
    source: &Source,
    budget: &mut Budget,
) -> Result<Option<Vec<u8>>, String> {
    let mode = match (source.format, source.decompress) {
        // CloudWatch Logs subscription data is gzip.
        (SourceFormat::CloudwatchLogs, Decompress::None) => Decompress::Gzip,
        (_, mode) => mode,
    };
    let gzip = match mode {
        Decompress::None => return Ok(None),
        Decompress::Gzip => true,
        Decompress::Zstd => false,
        Decompress::Auto if data.starts_with(&GZIP_MAGIC) => true,
        Decompress::Auto if data.starts_with(&ZSTD_MAGIC) => false,
        Decompress::Auto => return Ok(None),
    };
    let per_payload = source.max_decompressed_bytes;
    let limit = per_payload.min(budget.left());
    let mut out = Vec::new();
    // One byte past the limit tells "exactly the limit" from "more".
    let read = if gzip {
        flate2::read::MultiGzDecoder::new(data)
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("the payload is not gzip: {e}"))
    } else {
        zstd::stream::read::Decoder::new(data)
            .and_then(|mut d| {
                // A frame may ask for a window of up to 2 GiB; none may
                // ask for more than the payload may grow to.
                d.window_log_max(window_log(per_payload))?;
                d.take(limit as u64 + 1).read_to_end(&mut out)
            })
            .map_err(|e| {
                if e.to_string().contains("too much memory") {
                    format!(
                        "the payload's zstd frame needs a window larger than \
                         `source.max_decompressed_bytes` ({per_payload} bytes) allows: {e}"
                    )
                } else {
                    format!("the payload is not zstd: {e}")
                }
            })
    };
    read?;
    if out.len() > per_payload {
        return Err(format!(
            "the payload decompresses to more than {per_payload} bytes (`source.max_decompressed_bytes`)"
        ));
    }
    if out.len() > limit {
        return Err(format!(
            "decompressing the payload would take more than the {limit} bytes left of the \
             batch's decoding budget of {} bytes (`source.max_batch_bytes`)",
            budget.limit
        ));
    }
    out.shrink_to_fit();
    budget.take(out.len(), "decompressing the payload")?;
    Ok(Some(out))
}

/// The zstd window (log2 of its bytes) that a payload of at most `bytes`
/// needs at most: zstd's own minimum (2^10) up to its default maximum (2^27).
fn window_log(bytes: usize) -> u32 {
    bytes
        .max(1)
        .next_power_of_two()
        .trailing_zeros()
        .clamp(10, 27)
}
