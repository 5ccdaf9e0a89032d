//! A model's vision projector (`mmproj`), through llama.cpp's multimodal
//! library: an image becomes the model's own wrapping tokens around a span
//! of embeddings, computed here on the request's side (the blocking pool),
//! so the step loop only decodes them, like a prompt chunk.
//!
//! In a sequence's tokens an image's positions hold placeholder ids above
//! any vocabulary, derived from the pixels' hash: prefix reuse compares
//! tokens, so it runs through an identical image and stops at the first
//! position of a different one.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::mtmd::{
    mtmd_default_marker, MtmdBitmap, MtmdContext, MtmdContextParams, MtmdInputChunkType,
    MtmdInputText,
};
use tracing::{debug, info};

use moka::sync::Cache;

use crate::images::Image;

/// Set in every placeholder id; no vocabulary comes near 2^31 tokens.
pub const IMAGE_BIT: u32 = 1 << 31;

/// An image's span in a prompt.
#[derive(Clone)]
pub struct ImageSpan {
    /// Where it starts in the prompt's tokens.
    pub start: usize,
    pub len: usize,
    /// `len × n_embd` floats for the text model.
    pub embd: Arc<[f32]>,
    /// Decoded with causal attention off (the projector says so).
    pub non_causal: bool,
}

/// Part of a prompt: text tokens, or an image's embeddings.
#[derive(Clone)]
pub enum Piece {
    Tokens(Vec<u32>),
    Image {
        embd: Arc<[f32]>,
        len: usize,
        non_causal: bool,
        hash: [u8; 32],
    },
}

impl Piece {
    fn bytes(&self) -> usize {
        match self {
            Piece::Tokens(ids) => ids.len() * 4,
            Piece::Image { embd, .. } => embd.len() * 4,
        }
    }
}

/// Placeholder ids for an image of `len` positions.
pub fn placeholders(hash: &[u8; 32], len: usize) -> impl Iterator<Item = u32> {
    let h = u32::from_le_bytes([hash[0], hash[1], hash[2], hash[3]]);
    (0..len as u32).map(move |k| IMAGE_BIT | (h.wrapping_add(k) & !IMAGE_BIT))
}

/// Bytes of embeddings kept for images seen lately: a chat sends its
/// image again with every turn, and encoding it again would cost the most
/// of that turn's first token (llama-server keeps them too).
const KEPT_BYTES: u64 = 256 << 20;

pub struct Vision {
    /// Encoding needs the context alone: one image at a time.
    ctx: Mutex<MtmdContext>,
    /// Images' pieces by the hash of their pixels.
    seen: Cache<[u8; 32], Arc<Vec<Piece>>>,
    /// The context points into the model: kept alive until it is gone
    /// (fields drop in order).
    _model: Arc<LlamaModel>,
    n_embd: usize,
}

impl Vision {
    /// Loads the projector for `model` (blocking).
    pub fn load(model: &Arc<LlamaModel>, path: &Path, threads: usize) -> anyhow::Result<Self> {
        let params = MtmdContextParams {
            use_gpu: cfg!(any(feature = "cuda", feature = "metal")),
            print_timings: false,
            n_threads: threads as i32,
            ..MtmdContextParams::default()
        };
        let file = path.to_str().context("the projector's path is not UTF-8")?;
        let ctx = MtmdContext::init_from_file(file, model, &params).map_err(|e| {
            anyhow!(
                "llama.cpp cannot load the projector {} for this model ({e}): see its log above",
                path.display()
            )
        })?;
        if !ctx.support_vision() {
            anyhow::bail!("the projector {} takes no images", path.display());
        }
        // M-RoPE models (Qwen2-VL) place image tokens on a 2-D grid, which
        // the step loop's one position per token cannot express.
        if ctx.decode_use_mrope() {
            anyhow::bail!(
                "the projector {} needs M-RoPE positions (Qwen2-VL family), which ferrite's llama.cpp runtime does not schedule yet",
                path.display()
            );
        }
        info!(projector = %path.display(), "vision projector loaded");
        Ok(Self {
            ctx: Mutex::new(ctx),
            seen: Cache::builder()
                .max_capacity(KEPT_BYTES)
                .weigher(|_, pieces: &Arc<Vec<Piece>>| {
                    let bytes: usize = pieces.iter().map(Piece::bytes).sum();
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .build(),
            _model: model.clone(),
            n_embd: model.n_embd() as usize,
        })
    }

    /// The marker the chat's text carries where each image goes.
    pub fn marker() -> &'static str {
        mtmd_default_marker()
    }

    /// One image as the model sees it: its wrapping tokens (if the model
    /// has any) and its embeddings (blocking: the projector runs here,
    /// unless the same pixels were encoded lately).
    pub fn encode(&self, image: &Image) -> Result<Arc<Vec<Piece>>, String> {
        if let Some(pieces) = self.seen.get(&image.hash) {
            return Ok(pieces);
        }
        let started = std::time::Instant::now();
        let pieces = Arc::new(self.run(image)?);
        debug!(
            ms = started.elapsed().as_millis() as u64,
            width = image.width,
            height = image.height,
            "image encoded"
        );
        self.seen.insert(image.hash, pieces.clone());
        Ok(pieces)
    }

    fn run(&self, image: &Image) -> Result<Vec<Piece>, String> {
        let bitmap = MtmdBitmap::from_image_data(image.width, image.height, &image.rgb)
            .map_err(|e| format!("The image cannot be prepared: {e}."))?;
        let mut ctx = self
            .ctx
            .lock()
            .map_err(|_| "The vision projector failed earlier.".to_string())?;
        let text = MtmdInputText {
            text: Self::marker().to_string(),
            add_special: false,
            parse_special: true,
        };
        let chunks = ctx
            .tokenize(text, &[&bitmap])
            .map_err(|e| format!("The projector cannot take this image: {e}."))?;
        let mut pieces = Vec::new();
        for i in 0..chunks.len() {
            let Some(chunk) = chunks.get(i) else { continue };
            match chunk.chunk_type() {
                MtmdInputChunkType::Text => {
                    let ids = chunk.text_tokens().unwrap_or(&[]);
                    pieces.push(Piece::Tokens(ids.iter().map(|t| t.0 as u32).collect()));
                }
                MtmdInputChunkType::Image => {
                    ctx.encode_chunk(&chunk)
                        .map_err(|e| format!("The projector failed on this image: {e}."))?;
                    let embd: Arc<[f32]> = ctx.output_embeddings(&chunk, self.n_embd).into();
                    let len = chunk.n_tokens();
                    if len == 0 || embd.len() != len * self.n_embd {
                        return Err("The projector gave no embeddings for this image.".into());
                    }
                    pieces.push(Piece::Image {
                        embd,
                        len,
                        non_causal: ctx.chunk_non_causal(&chunk),
                        hash: image.hash,
                    });
                }
                MtmdInputChunkType::Audio => {
                    return Err("Audio is not supported.".into());
                }
            }
        }
        Ok(pieces)
    }
}
