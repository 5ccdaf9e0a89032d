//! llama.cpp's tokenizer in time linear in the text's length.
//!
//! llama.cpp splits a text at special tokens (`tokenizer_st_partition`) by
//! walking its list of fragments from the start for every match it finds,
//! which is quadratic in the number of special tokens: a chat of 200,000
//! one-letter messages (400,000 `<|im_start|>`/`<|im_end|>`) kept a core
//! busy for over ten minutes. Long texts are cut here, right before a
//! special token, into pieces of a bounded number of special tokens each;
//! llama.cpp splits at that token anyway, so the tokens are the same.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token_type::LlamaTokenAttr;
use tokio::sync::Semaphore;

/// Special tokens a piece may hold: llama.cpp's cost per piece grows with
/// their square.
const PIECE_SPECIALS: usize = 128;
/// Texts shorter than this go to llama.cpp whole (they hold too few
/// special tokens to matter).
const SHORT_BYTES: usize = 16 * 1024;

/// Long texts are tokenized a few at a time, one per core: more at once
/// only wait for a core, holding tens of MiB each meanwhile.
static LONG_TEXTS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(num_cpus::get().max(1)));

/// Runs `work` (tokenizing `bytes` of text) on the blocking pool; `None`
/// if it panicked.
pub async fn off_workers<T: Send + 'static>(
    bytes: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let _turn = match bytes > SHORT_BYTES {
        true => Some(LONG_TEXTS.acquire().await.ok()?),
        false => None,
    };
    tokio::task::spawn_blocking(work).await.ok()
}

/// The special tokens llama.cpp splits a text at, found in one pass.
pub struct Splitter {
    /// With `parse_special`: control, user-defined and unknown tokens.
    special: Option<AhoCorasick>,
    /// Without: user-defined tokens only.
    plain: Option<AhoCorasick>,
    /// Per pattern of each finder: whether the token strips the whitespace
    /// before it (a cut there would keep that whitespace).
    special_lstrip: Vec<bool>,
    plain_lstrip: Vec<bool>,
}

impl Splitter {
    pub fn of(model: &LlamaModel) -> Self {
        let vocab = model.vocab();
        let mut special = Vec::new();
        let mut plain = Vec::new();
        for t in 0..model.n_vocab() {
            let token = LlamaToken(t);
            let attr = vocab.attr(token);
            let control =
                attr.contains(LlamaTokenAttr::Control) || attr.contains(LlamaTokenAttr::Unknown);
            let user = attr.contains(LlamaTokenAttr::UserDefined);
            if !control && !user {
                continue;
            }
            let Some(text) = vocab.text(token).map(|c| c.to_bytes().to_vec()) else {
                continue;
            };
            if text.is_empty() {
                continue;
            }
            let lstrip = attr.contains(LlamaTokenAttr::LStrip);
            special.push((text.clone(), lstrip));
            if user {
                plain.push((text, lstrip));
            }
        }
        let build = |set: &[(Vec<u8>, bool)]| {
            (!set.is_empty())
                .then(|| {
                    AhoCorasick::builder()
                        .match_kind(MatchKind::LeftmostLongest)
                        .build(set.iter().map(|(t, _)| t))
                        .ok()
                })
                .flatten()
        };
        Self {
            special: build(&special),
            plain: build(&plain),
            special_lstrip: special.iter().map(|(_, l)| *l).collect(),
            plain_lstrip: plain.iter().map(|(_, l)| *l).collect(),
        }
    }

    /// Where to cut `text`: before every [`PIECE_SPECIALS`]th special token
    /// (one that does not strip what precedes it).
    fn cuts(&self, text: &[u8], parse_special: bool) -> Vec<usize> {
        let (finder, lstrip) = match parse_special {
            true => (&self.special, &self.special_lstrip),
            false => (&self.plain, &self.plain_lstrip),
        };
        let Some(finder) = finder.as_ref().filter(|_| text.len() >= SHORT_BYTES) else {
            return Vec::new();
        };
        let mut cuts = Vec::new();
        let mut since = 0;
        for m in finder.find_iter(text) {
            since += 1;
            if since > PIECE_SPECIALS && !lstrip[m.pattern().as_usize()] && m.start() > 0 {
                cuts.push(m.start());
                since = 1;
            }
        }
        cuts
    }

    /// `text`'s tokens, with the model's framing (BOS, ...) when
    /// `add_special`, exactly as llama.cpp tokenizes it whole.
    pub fn tokenize(
        &self,
        model: &LlamaModel,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Vec<u32> {
        let vocab = model.vocab();
        let bytes = text.as_bytes();
        let cuts = self.cuts(bytes, parse_special);
        let ids = |t: Vec<LlamaToken>| t.into_iter().map(|t| t.0 as u32);
        if cuts.is_empty() {
            return ids(vocab.tokenize(bytes, add_special, parse_special)).collect();
        }
        // The framing is whatever `add_special` puts around a word.
        let (before, after) = if add_special {
            let bare = vocab.tokenize(b"a", false, false);
            let framed = vocab.tokenize(b"a", true, false);
            let at = framed
                .windows(bare.len().max(1))
                .position(|w| w == bare.as_slice())
                .unwrap_or(framed.len());
            (
                framed[..at].to_vec(),
                framed[(at + bare.len()).min(framed.len())..].to_vec(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let mut out = Vec::with_capacity(bytes.len() / 3);
        out.extend_from_slice(&before);
        let mut start = 0;
        for end in cuts.into_iter().chain([bytes.len()]) {
            // Room for the piece's every token (a byte each at most, plus a
            // space prefix per fragment), so llama.cpp never runs twice and
            // the buffer grows by doubling.
            out.reserve(2 * (end - start) + 16);
            vocab.tokenize_into(&bytes[start..end], &mut out, false, parse_special);
            start = end;
        }
        out.extend_from_slice(&after);
        ids(out).collect()
    }
}
