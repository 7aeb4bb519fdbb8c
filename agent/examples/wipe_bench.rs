//! One timed phase of a wipe for `agent/benches/wipe.sh`, which runs it
//! beside `dd`, `shred` and `nwipe` on the same target:
//! `wipe_bench write-zero|write-random|verify-zero|verify-random DEVICE`.
//! Prints `PHASE BYTES SECONDS MiB/s`. The random phases use a fixed seed so
//! a verification can follow a write in another process.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use custodian_agent::wipe::engine::{self, Cancel, Device};
use custodian_agent::wipe::pattern::Pattern;
use custodian_agent::wipe::progress::Progress;
use custodian_agent::wipe::{target, verify};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let phase = args.next().context("usage: wipe_bench PHASE DEVICE")?;
    let device = PathBuf::from(args.next().context("usage: wipe_bench PHASE DEVICE")?);
    let target = target::open(&device, std::path::Path::new("/"))?;
    let dev = Device::open(&target.canonical, target.size)?;
    let random = Pattern::ChaCha20 { seed: [0x5a; 32], stream: 0 };
    let progress = Progress::hidden(phase.clone(), target.size);
    let cancel = Cancel::new();
    let started = Instant::now();
    match phase.as_str() {
        "write-zero" => engine::write_pass(&dev, &Pattern::Zero, &cancel, &progress)?,
        "write-random" => engine::write_pass(&dev, &random, &cancel, &progress)?,
        "verify-zero" | "verify-random" => {
            let pattern = if phase == "verify-zero" { Pattern::Zero } else { random };
            let verified = verify::verify(&dev, &pattern, verify::VerifyMode::Full, &cancel, &progress)?;
            if let Some(offset) = verified.first_mismatch {
                bail!("verification failed at byte offset {offset}");
            }
        }
        other => bail!("unknown phase {other}"),
    }
    let secs = started.elapsed().as_secs_f64();
    #[allow(clippy::print_stdout)]
    {
        println!("{phase} {} {secs:.3} {:.1}", target.size, target.size as f64 / secs / 1048576.0);
    }
    Ok(())
}
