//! `ferrite convert DIR OUT.gguf`: a sentence-transformers BERT folder (such
//! as all-MiniLM-L6-v2) as a GGUF embedding model for llama.cpp.

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
pub struct ConvertArgs {
    /// The model folder (config.json, model.safetensors, tokenizer.json).
    pub input: PathBuf,
    /// The GGUF file to write (it appears only once complete).
    pub output: PathBuf,
}

pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    ferrite_engine::bert_to_gguf(&args.input, &args.output)?;
    println!("Wrote {} (F16).", args.output.display());
    Ok(())
}
