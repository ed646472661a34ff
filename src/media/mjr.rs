//! Janus's stream files (`.mjr`, version 2): `MJR00002`, a 16-bit big-endian length and a JSON
//! header (`t` kind `a`/`v`/`d`, `c` codec, `s` when the recorder was created and `u` when its
//! first packet was written, both in Unix microseconds), then one frame per RTP packet: `MEET`,
//! 32-bit milliseconds since the first packet, 16-bit length, the packet.
//!
//! roomd reads the header (a conversion's timeline starts at the first packet) and writes Opus
//! stream files from an Ogg Opus file (the tests and the benchmark convert such files without a
//! browser).

use std::io::{Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"MJR00002";

/// A stream file's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `a`, `v` or `d`.
    pub kind: String,
    pub codec: String,
    /// Unix microseconds.
    pub created: i64,
    pub first_packet: i64,
}

/// Reads a stream file's header (`None`: not a version 2 stream file, or no packet yet).
pub fn read_header(path: &Path) -> Option<Header> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic).ok()?;
    if &magic != MAGIC {
        return None;
    }
    let mut len = [0u8; 2];
    file.read_exact(&mut len).ok()?;
    let mut json = vec![0u8; u16::from_be_bytes(len) as usize];
    file.read_exact(&mut json).ok()?;
    let info: serde_json::Value = serde_json::from_slice(&json).ok()?;
    Some(Header {
        kind: info["t"].as_str()?.to_string(),
        codec: info["c"].as_str()?.to_string(),
        created: info["s"].as_i64()?,
        first_packet: info["u"].as_i64()?,
    })
}

/// The Opus packets of an Ogg Opus file (its two header packets left out).
pub fn ogg_opus_packets(ogg: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut packets = Vec::new();
    let mut current = Vec::new();
    let mut at = 0;
    while at < ogg.len() {
        if ogg.get(at..at + 4)? != b"OggS" {
            return None;
        }
        let segments = *ogg.get(at + 26)? as usize;
        let table = ogg.get(at + 27..at + 27 + segments)?;
        let mut data = at + 27 + segments;
        for &lace in table {
            current.extend_from_slice(ogg.get(data..data + lace as usize)?);
            data += lace as usize;
            if lace < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        at = data;
    }
    (packets.len() >= 2).then(|| packets.split_off(2))
}

/// Writes an Opus stream file, as Janus would have recorded `packets` (20 ms each) from a
/// recorder created at `created` (Unix microseconds).
pub fn write_opus(out: &mut impl Write, packets: &[Vec<u8>], created: i64) -> std::io::Result<()> {
    out.write_all(MAGIC)?;
    let info = serde_json::json!({"t": "a", "c": "opus", "s": created, "u": created}).to_string();
    out.write_all(&(info.len() as u16).to_be_bytes())?;
    out.write_all(info.as_bytes())?;
    let ssrc: u32 = 0x5eed_0001;
    for (i, payload) in packets.iter().enumerate() {
        let mut rtp = Vec::with_capacity(12 + payload.len());
        rtp.extend_from_slice(&[0x80, 111]);
        rtp.extend_from_slice(&(i as u16).to_be_bytes());
        rtp.extend_from_slice(&((i as u32).wrapping_mul(960)).to_be_bytes());
        rtp.extend_from_slice(&ssrc.to_be_bytes());
        rtp.extend_from_slice(payload);
        out.write_all(b"MEET")?;
        out.write_all(&((i as u32) * 20).to_be_bytes())?;
        out.write_all(&(rtp.len() as u16).to_be_bytes())?;
        out.write_all(&rtp)?;
    }
    Ok(())
}

/// Makes an Opus stream file of `seconds` of a tone with `ffmpeg`, at `path`, as if recorded
/// from `created` (Unix microseconds). For the tests and the benchmark.
pub fn generate_opus(ffmpeg: &Path, seconds: u32, created: i64, path: &Path) -> anyhow::Result<()> {
    let ogg = path.with_extension("ogg");
    let status = std::process::Command::new(ffmpeg)
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args([
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-frame_duration",
            "20",
            "-ar",
            "48000",
        ])
        .arg(&ogg)
        .status()?;
    anyhow::ensure!(status.success(), "ffmpeg could not make the Opus file");
    let packets = ogg_opus_packets(&std::fs::read(&ogg)?)
        .ok_or_else(|| anyhow::anyhow!("ffmpeg's Ogg file did not parse"))?;
    std::fs::remove_file(&ogg)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    write_opus(&mut file, &packets, created)?;
    file.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_stream_file_reads_back() {
        let dir = std::env::temp_dir().join(format!("mjr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.mjr");
        let mut file = std::fs::File::create(&path).unwrap();
        write_opus(
            &mut file,
            &[vec![1, 2, 3], vec![4, 5]],
            1_700_000_000_000_000,
        )
        .unwrap();
        drop(file);
        let header = read_header(&path).unwrap();
        assert_eq!(header.kind, "a");
        assert_eq!(header.codec, "opus");
        assert_eq!(header.first_packet, 1_700_000_000_000_000);
        std::fs::write(&path, b"not a stream file").unwrap();
        assert_eq!(read_header(&path), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ogg_pages_give_their_packets_without_the_two_headers() {
        // Two pages: OpusHead + OpusTags, then one of 300 bytes (laced 255 + 45) and one of 2.
        let page = |segments: &[u8], data: &[u8]| {
            let mut p = b"OggS".to_vec();
            p.extend_from_slice(&[0; 22]);
            p.push(segments.len() as u8);
            p.extend_from_slice(segments);
            p.extend_from_slice(data);
            p
        };
        let mut ogg = page(&[3, 2], b"abcde");
        ogg.extend(page(&[255, 45, 2], &[7; 302]));
        let packets = ogg_opus_packets(&ogg).unwrap();
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].len(), 300);
        assert_eq!(packets[1].len(), 2);
        assert_eq!(ogg_opus_packets(b"nope"), None);
    }
}
