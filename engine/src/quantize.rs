//! Re-quantizing a GGUF file (`ferrite quantize`): every quantized weight
//! is dequantized and quantized again to the requested type; norms and
//! other F32 tensors, and the metadata, are copied unchanged.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use anyhow::{bail, Context};
use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;

/// Types a file can be re-quantized to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantType {
    Q4_0,
    Q4_1,
    Q8_0,
    Q4K,
    Q6K,
    F16,
}

impl QuantType {
    fn ggml(self) -> GgmlDType {
        match self {
            Self::Q4_0 => GgmlDType::Q4_0,
            Self::Q4_1 => GgmlDType::Q4_1,
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q4K => GgmlDType::Q4K,
            Self::Q6K => GgmlDType::Q6K,
            Self::F16 => GgmlDType::F16,
        }
    }

    /// llama.cpp's `general.file_type` for a file mostly of this type.
    fn file_type(self) -> u32 {
        match self {
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q8_0 => 7,
            Self::Q4K => 15,
            Self::Q6K => 18,
        }
    }
}

impl std::str::FromStr for QuantType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "q4_0" => Ok(Self::Q4_0),
            "q4_1" => Ok(Self::Q4_1),
            "q8_0" => Ok(Self::Q8_0),
            "q4k" | "q4_k" | "q4_k_m" => Ok(Self::Q4K),
            "q6k" | "q6_k" => Ok(Self::Q6K),
            "f16" => Ok(Self::F16),
            other => Err(format!(
                "unknown quantization `{other}` (q4_0, q4_1, q8_0, q4_k, q6_k, f16)"
            )),
        }
    }
}

/// Writes `input` re-quantized to `to` as `output`; `progress(done, total)`
/// is called after each tensor. The output appears only once complete.
pub fn requantize(
    input: &Path,
    output: &Path,
    to: QuantType,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<()> {
    if input == output {
        bail!("the output must be a different file from the input");
    }
    let mut reader =
        BufReader::new(File::open(input).with_context(|| format!("opening {}", input.display()))?);
    let content = Content::read(&mut reader)
        .with_context(|| format!("{} is not a readable GGUF file", input.display()))?;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|n| content.tensor_infos[*n].offset);

    let target = to.ggml();
    let cpu = Device::Cpu;
    let mut tensors = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let tensor = content.tensor(&mut reader, name, &cpu)?;
        let dims = tensor.shape().dims();
        let fits = dims.last().is_some_and(|d| d % target.block_size() == 0);
        let quantized = !matches!(tensor.dtype(), GgmlDType::F32);
        let out = if quantized && dims.len() >= 2 && fits && tensor.dtype() != target {
            QTensor::quantize(&tensor.dequantize(&cpu)?, target)
                .with_context(|| format!("quantizing {name}"))?
        } else {
            tensor
        };
        tensors.push(((*name).clone(), out));
        progress(i + 1, names.len());
    }

    let file_type = Value::U32(to.file_type());
    let mut metadata: Vec<(&str, &Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.file_type")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    metadata.sort_by_key(|(k, _)| *k);
    metadata.push(("general.file_type", &file_type));
    write_gguf(output, &metadata, &tensors)
}

/// Writes a GGUF file that appears at `output` only once complete.
pub(crate) fn write_gguf(
    output: &Path,
    metadata: &[(&str, &Value)],
    tensors: &[(String, QTensor)],
) -> anyhow::Result<()> {
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let partial = output.with_extension("gguf.partial");
    let mut writer = BufWriter::new(
        File::create(&partial).with_context(|| format!("creating {}", partial.display()))?,
    );
    gguf_file::write(&mut writer, metadata, &refs).context("writing the GGUF file")?;
    writer
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .context("writing the GGUF file")?;
    std::fs::rename(&partial, output).context("moving the finished file in place")?;
    Ok(())
}
