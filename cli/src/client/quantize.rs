//! `ferrite quantize IN OUT --type q8_0`: re-quantizes a GGUF model.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrite_engine::{requantize, QuantType};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct QuantizeArgs {
    /// The GGUF file to read.
    pub input: PathBuf,
    /// The GGUF file to write (it appears only once complete).
    pub output: PathBuf,
    /// q4_0, q4_1, q8_0, q4_k, q6_k or f16.
    #[arg(long = "type", short = 't', default_value = "q8_0")]
    pub to: QuantType,
}

pub fn run(args: QuantizeArgs) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("quantizing [{bar:30}] {pos}/{len} tensors {elapsed}")
            .context("progress style")?
            .progress_chars("=> "),
    );
    requantize(&args.input, &args.output, args.to, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish();
    println!("Wrote {} ({:?}).", args.output.display(), args.to);
    Ok(())
}
