//! The llama.cpp step loop, on a thread of its own: one context per model,
//! one KV pool shared by all its sequences (llama.cpp's unified KV cache),
//! and continuous batching. Every step carries the next token of each
//! decoding sequence plus chunks of waiting prompts, up to `batch_size`
//! tokens, so a long new prompt delays running streams by one chunk.
//!
//! Sequence ids: each running sequence has one, and so does each finished
//! sequence kept for prefix reuse ("parked"). A new prompt that starts like
//! a parked sequence copies that KV (`seq_cp` shares the cells) instead of
//! computing it. KV use is counted here: a sequence is admitted only when
//! its prompt fits, parked sequences are evicted oldest first to make room,
//! and when running sequences outgrow the pool the newest is put back to
//! wait (its KV dropped, to be computed again).
//!
//! Images (`vision.rs`) are spans of embeddings in a prompt: a sequence
//! whose next position starts one decodes it in a step of its own (llama.cpp
//! takes tokens or embeddings in one batch, not both), at most one image
//! per step, so other streams wait one step for it.
//!
//! LoRA adapters apply to the whole context, so one step carries only
//! sequences with the same adapter set (as llama-server batches): the set
//! of the sequence that has waited longest for a step, every step, so that
//! groups take turns. KV is shared only between sequences of one set.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use ferrite_openapi::ApiError;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaLoraAdapter;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::DecodeError;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::sampler::Sampler;
use super::vision::ImageSpan;
use crate::adapters::AdapterSet;
use crate::gauge::SequencePermit;
use crate::stream::{Event, StepOutput};
use crate::vocab::Vocab;

/// Finished sequences kept for prefix reuse by every llama.cpp model, and
/// their KV bytes (for the `ferrite:prefix_cache_*` gauges).
pub static PARKED_ENTRIES: AtomicUsize = AtomicUsize::new(0);
pub static PARKED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// One sequence to run, as the request side hands it over.
pub struct Job {
    pub prompt: Vec<u32>,
    pub max_len: usize,
    pub sampler: Sampler,
    pub events: UnboundedSender<Event>,
    pub cancel: CancellationToken,
    pub generated: Arc<AtomicU32>,
    pub cached: Arc<AtomicU32>,
    /// Held until the sequence ends: its `max_seqs` permit and gauges.
    pub slot: Option<SequencePermit>,
    /// The request's span, for log lines about this sequence.
    pub span: tracing::Span,
    /// The LoRA adapters it runs with (empty: the base model).
    pub adapters: AdapterSet,
    /// Its prompt's images, in order.
    pub images: Vec<ImageSpan>,
}

impl Job {
    /// The image covering or starting after position `pos`, if any.
    fn image_from(&self, pos: usize) -> Option<&ImageSpan> {
        self.images.iter().find(|s| s.start + s.len > pos)
    }

    /// `n` positions of KV, cut back to the start of an image it would
    /// split: an image's KV is whole or absent.
    fn whole(&self, n: usize) -> usize {
        match self.image_from(n) {
            Some(s) if s.start < n => s.start,
            _ => n,
        }
    }
}

/// The loop's fixed settings.
#[derive(Clone)]
pub struct Limits {
    /// Sequences decoding at once.
    pub max_seqs: usize,
    /// Finished sequences kept for prefix reuse, and their bound in bytes.
    pub parked: usize,
    pub parked_bytes: usize,
    /// KV bytes one token takes in every layer.
    pub token_bytes: usize,
    /// KV cells in the pool.
    pub pool: usize,
    /// Most tokens per step.
    pub batch: usize,
    /// The model's embedding width (an image's rows).
    pub n_embd: usize,
}

struct Running {
    seq: i32,
    job: Job,
    /// Prompt then generated tokens; `tokens[..n_past]` are in the KV cache.
    tokens: Vec<u32>,
    n_past: usize,
    produced: usize,
    /// Bytes of an unfinished UTF-8 character, held for the next token.
    utf8: Vec<u8>,
    /// The batch row whose logits this sequence samples from this step.
    row: Option<i32>,
    /// Whether the log has said it waits for KV room.
    told_to_wait: bool,
    /// The last step it took part in.
    stepped: u64,
}

struct Parked {
    seq: i32,
    tokens: Vec<u32>,
    used: Instant,
    adapters: AdapterSet,
}

pub struct Scheduler<'m> {
    ctx: LlamaContext<'m>,
    vocab: Arc<Vocab>,
    eog: Vec<bool>,
    /// The token a completed grammar is tested with.
    eos: u32,
    limits: Limits,
    free_ids: Vec<i32>,
    waiting: VecDeque<Running>,
    running: Vec<Running>,
    parked: Vec<Parked>,
    /// Set when a sequence was put back for room: nothing new is admitted
    /// until one finishes (otherwise the same one would thrash in and out).
    squeezed: bool,
    /// The LoRA adapters loaded with the model, and the set the context has.
    adapters: Vec<LlamaLoraAdapter>,
    applied: AdapterSet,
    steps: u64,
}

/// A shared prefix worth waiting a step for rather than computing twice.
const SHARE_MIN: usize = 16;

/// KV cells kept free per running sequence when admitting another, so that
/// the batch can grow for a while before anything must be put back.
const GROWTH: usize = 16;

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl<'m> Scheduler<'m> {
    pub fn new(
        ctx: LlamaContext<'m>,
        vocab: Arc<Vocab>,
        eog: Vec<bool>,
        eos: u32,
        limits: Limits,
        adapters: Vec<LlamaLoraAdapter>,
    ) -> Self {
        let ids = (limits.max_seqs + limits.parked) as i32;
        Self {
            ctx,
            vocab,
            eog,
            eos,
            free_ids: (0..ids).rev().collect(),
            limits,
            waiting: VecDeque::new(),
            running: Vec::new(),
            parked: Vec::new(),
            squeezed: false,
            adapters,
            applied: AdapterSet::new(),
            steps: 0,
        }
    }

    /// Runs until the request side hangs up and the last sequence ends.
    pub fn run(mut self, jobs: Receiver<Job>) {
        let mut batch = LlamaBatch::new(self.limits.batch.max(self.limits.max_seqs), 1);
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                match jobs.recv() {
                    Ok(job) => self.enqueue(job),
                    Err(_) => return,
                }
            }
            while let Ok(job) = jobs.try_recv() {
                self.enqueue(job);
            }
            self.drop_abandoned();
            self.admit();
            if self.running.is_empty() {
                self.reject_head();
                continue;
            }
            self.make_room_to_grow();
            self.image_step();
            let Some(group) = self.fill(&mut batch) else {
                continue;
            };
            if let Err(e) = self.apply(group) {
                self.clear_rows();
                self.fail_running(&format!("llama.cpp could not apply the LoRA adapters: {e}"));
                continue;
            }
            match self.ctx.decode(&mut batch) {
                Ok(()) => self.sample(),
                Err(DecodeError::NoKvCacheSlot) => self.shed_load(),
                Err(e) => {
                    self.clear_rows();
                    self.fail_running(&format!("llama.cpp failed to decode: {e}"));
                }
            }
        }
    }

    fn enqueue(&mut self, job: Job) {
        let tokens = job.prompt.clone();
        self.waiting.push_back(Running {
            seq: -1,
            job,
            tokens,
            n_past: 0,
            produced: 0,
            utf8: Vec::new(),
            row: None,
            told_to_wait: false,
            stepped: 0,
        });
    }

    fn used(&self) -> usize {
        let running: usize = self.running.iter().map(|r| r.n_past).sum();
        let parked: usize = self.parked.iter().map(|p| p.tokens.len()).sum();
        running + parked
    }

    fn free_cells(&self) -> usize {
        self.limits.pool.saturating_sub(self.used())
    }

    fn forget(&mut self, seq: i32) {
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        self.free_ids.push(seq);
    }

    fn evict_oldest_parked(&mut self) -> bool {
        let Some((i, _)) = self.parked.iter().enumerate().min_by_key(|(_, p)| p.used) else {
            return false;
        };
        self.unpark(i);
        true
    }

    fn unpark(&mut self, i: usize) {
        let p = self.parked.swap_remove(i);
        PARKED_ENTRIES.fetch_sub(1, Ordering::Relaxed);
        PARKED_BYTES.fetch_sub(p.tokens.len() * self.limits.token_bytes, Ordering::Relaxed);
        self.forget(p.seq);
    }

    fn parked_bytes(&self) -> usize {
        let tokens: usize = self.parked.iter().map(|p| p.tokens.len()).sum();
        tokens * self.limits.token_bytes
    }

    /// Ends sequences whose client left or whose choice ferrite ended.
    fn drop_abandoned(&mut self) {
        let gone = |r: &Running| r.job.events.is_closed() || r.job.cancel.is_cancelled();
        let mut i = 0;
        while i < self.running.len() {
            if gone(&self.running[i]) {
                // `remove` keeps arrival order: the newest is put back first.
                let r = self.running.remove(i);
                if r.job.events.is_closed() {
                    r.job
                        .span
                        .in_scope(|| info!("client went away; generation cancelled"));
                }
                self.park_or_forget(r);
                self.squeezed = false;
            } else {
                i += 1;
            }
        }
        self.waiting.retain(|r| !gone(r));
    }

    /// Where a prompt's KV can come from: the sequence (parked or running)
    /// sharing its longest computed prefix, and whether a running sequence
    /// is still computing a longer shared prefix (worth a step's wait).
    fn source(&self, prompt: &[u32], adapters: &AdapterSet) -> (Option<(i32, usize)>, bool) {
        // The last prompt token is always computed again, for its logits.
        let cap = prompt.len().saturating_sub(1);
        // KV computed under other adapters is not this prompt's.
        let same = |r: &&Running| &r.job.adapters == adapters;
        let parked = self
            .parked
            .iter()
            .filter(|p| &p.adapters == adapters)
            .map(|p| (p.seq, common_prefix(&p.tokens, prompt).min(cap)));
        let running = self.running.iter().filter(same).map(|r| {
            (
                r.seq,
                common_prefix(&r.tokens, prompt).min(cap).min(r.n_past),
            )
        });
        let best = parked
            .chain(running)
            .filter(|&(_, n)| n > 0)
            .max_by_key(|&(_, n)| n);
        let have = best.map_or(0, |b| b.1);
        // n > 1 choices, or the same prompt sent twice at once: compute it once.
        let coming = self.running.iter().filter(same).any(|r| {
            let shared = common_prefix(&r.tokens, prompt).min(cap);
            shared > r.n_past && shared >= have + SHARE_MIN
        });
        (best, coming)
    }

    /// Moves waiting sequences in while a slot and room for the prompt exist.
    fn admit(&mut self) {
        if self.running.is_empty() {
            self.squeezed = false;
        }
        while self.running.len() < self.limits.max_seqs && !self.squeezed {
            let Some(mut next) = self.waiting.pop_front() else {
                return;
            };
            let (best, coming) = self.source(&next.tokens, &next.job.adapters);
            if coming {
                self.waiting.push_front(next);
                return;
            }
            let keep = best.map(|b| b.0);
            let mut reuse = next.job.whole(best.map_or(0, |b| b.1));
            // Its uncomputed prompt plus room to grow for every sequence;
            // alone, anything that fits.
            let need = |reuse: usize, running: usize| match running {
                0 => next.tokens.len() - reuse + 1,
                n => next.tokens.len() - reuse + (n + 1) * GROWTH,
            };
            while self.free_cells() < need(reuse, self.running.len()) {
                // Evict the oldest parked sequence other than the one reused.
                let victim = self
                    .parked
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| Some(p.seq) != keep)
                    .min_by_key(|(_, p)| p.used)
                    .map(|(i, _)| i);
                let Some(i) = victim else { break };
                self.unpark(i);
            }
            if self.free_cells() < need(reuse, self.running.len()) && reuse > 0 {
                while self.evict_oldest_parked() {}
                reuse = 0;
            }
            let seq = match self.free_ids.pop() {
                Some(seq) if self.free_cells() >= need(reuse, self.running.len()) => seq,
                other => {
                    self.free_ids.extend(other);
                    if !next.told_to_wait {
                        next.told_to_wait = true;
                        next.job.span.in_scope(|| {
                            info!(
                                tokens = next.tokens.len(),
                                "KV cache full; the sequence waits for room"
                            )
                        });
                    }
                    self.waiting.push_front(next);
                    return;
                }
            };
            if let Some(src) = keep.filter(|_| reuse > 0) {
                if let Some(p) = self.parked.iter_mut().find(|p| p.seq == src) {
                    p.used = Instant::now();
                }
                let _ = self
                    .ctx
                    .copy_kv_cache_seq(src, seq, None, Some(reuse as u32));
            }
            next.seq = seq;
            next.n_past = reuse;
            if next.produced == 0 {
                next.job.cached.store(reuse as u32, Ordering::Relaxed);
            }
            self.running.push(next);
        }
    }

    /// Before a step: room for one more token per decoding sequence.
    fn make_room_to_grow(&mut self) {
        loop {
            let growth = self.running.len();
            if self.free_cells() >= growth {
                return;
            }
            if !self.evict_oldest_parked() && !self.preempt_newest() {
                return;
            }
        }
    }

    /// Puts the newest running sequence back at the head of the queue,
    /// dropping its KV; false when only one runs.
    fn preempt_newest(&mut self) -> bool {
        if self.running.len() <= 1 {
            return false;
        }
        let Some(mut r) = self.running.pop() else {
            return false;
        };
        self.forget(r.seq);
        r.job
            .span
            .in_scope(|| info!("KV cache full; the sequence goes back to wait"));
        r.seq = -1;
        r.n_past = 0;
        r.row = None;
        r.told_to_wait = true;
        self.waiting.push_front(r);
        self.squeezed = true;
        true
    }

    /// Adds this step's tokens: decoding sequences first, then prompt
    /// chunks, of one adapter set; returns that set, or none when nothing
    /// was added.
    fn fill(&mut self, batch: &mut LlamaBatch) -> Option<AdapterSet> {
        batch.clear();
        self.steps += 1;
        let group = self
            .running
            .iter()
            .filter(|r| r.tokens.len() > r.n_past)
            .min_by_key(|r| r.stepped)?
            .job
            .adapters
            .clone();
        let mut budget = self.limits.batch.max(self.running.len());
        let mut added = false;
        for prefill in [false, true] {
            for r in &mut self.running {
                let pending = r.tokens.len() - r.n_past;
                if pending == 0
                    || (pending > 1) != prefill
                    || budget == 0
                    || r.job.adapters != group
                {
                    continue;
                }
                // Tokens up to the next image; one that starts here waits
                // for its own step.
                let take = match r.job.image_from(r.n_past) {
                    Some(s) if s.start <= r.n_past => continue,
                    Some(s) => pending.min(budget).min(s.start - r.n_past),
                    None => pending.min(budget),
                };
                r.stepped = self.steps;
                for k in 0..take {
                    let pos = r.n_past + k;
                    let last = pos + 1 == r.tokens.len();
                    if batch
                        .add(LlamaToken(r.tokens[pos] as i32), pos as i32, &[r.seq], last)
                        .is_err()
                    {
                        break;
                    }
                    if last {
                        r.row = Some(batch.n_tokens() - 1);
                    }
                }
                r.n_past += take;
                budget -= take;
                added = true;
            }
        }
        added.then_some(group)
    }

    /// Decodes one image: of the sequence that has waited longest among
    /// those whose next position starts one.
    fn image_step(&mut self) {
        let Some(i) = (0..self.running.len())
            .filter(|&i| {
                let r = &self.running[i];
                r.job
                    .image_from(r.n_past)
                    .is_some_and(|s| s.start == r.n_past)
            })
            .min_by_key(|&i| self.running[i].stepped)
        else {
            return;
        };
        if let Err(e) = self.apply(self.running[i].job.adapters.clone()) {
            self.fail_one(
                i,
                &format!("llama.cpp could not apply the LoRA adapters: {e}"),
            );
            return;
        }
        self.steps += 1;
        let r = &mut self.running[i];
        r.stepped = self.steps;
        let Some(span) = r.job.image_from(r.n_past) else {
            return;
        };
        let (len, non_causal, embd) = (span.len, span.non_causal, span.embd.clone());
        let last = r.n_past + len == r.tokens.len();
        let (seq, pos) = (r.seq, r.n_past as i32);
        let decoded = match LlamaBatch::embeddings(&embd, self.limits.n_embd, pos, seq, last) {
            Ok(mut batch) => {
                if non_causal {
                    self.ctx.set_causal_attn(false);
                }
                let result = self.ctx.decode(&mut batch);
                if non_causal {
                    self.ctx.set_causal_attn(true);
                }
                result
            }
            Err(_) => {
                self.fail_one(i, "The image's embeddings do not fit the model.");
                return;
            }
        };
        match decoded {
            Ok(()) => {
                let r = &mut self.running[i];
                r.n_past += len;
                if last {
                    r.row = Some(len as i32 - 1);
                    self.sample();
                }
            }
            Err(DecodeError::NoKvCacheSlot) => self.shed_load(),
            Err(e) => {
                self.clear_rows();
                self.fail_one(i, &format!("llama.cpp failed to decode an image: {e}"));
            }
        }
    }

    /// The pool is more fragmented than counted: a sequence goes back to
    /// wait, or all fail when only one runs.
    fn shed_load(&mut self) {
        warn!("llama.cpp found no KV slot; a sequence goes back to wait");
        self.clear_rows();
        if !self.preempt_newest() {
            self.fail_running("The KV cache is full.");
        }
    }

    /// Ends one running sequence with an error.
    fn fail_one(&mut self, i: usize, msg: &str) {
        let r = self.running.remove(i);
        let _ = r
            .job
            .events
            .send(Event::Error(ApiError::internal(msg.to_string())));
        self.forget(r.seq);
        self.squeezed = false;
    }

    /// Gives the context `set`'s adapters (llama.cpp keeps an unchanged set).
    fn apply(&mut self, set: AdapterSet) -> Result<(), String> {
        if set == self.applied {
            return Ok(());
        }
        let pairs: Vec<(&LlamaLoraAdapter, f32)> = set
            .iter()
            .filter_map(|&(i, scale)| Some((self.adapters.get(i)?, scale)))
            .collect();
        self.ctx
            .set_lora_adapters(&pairs)
            .map_err(|e| e.to_string())?;
        self.applied = set;
        Ok(())
    }

    fn clear_rows(&mut self) {
        // The step did not happen: its tokens are not in the KV cache.
        for r in &mut self.running {
            if r.row.take().is_some() || r.n_past > 0 {
                let pos_max = self.ctx.kv_cache_seq_pos_max(r.seq);
                r.n_past = r.job.whole(usize::try_from(pos_max + 1).unwrap_or(0));
                let _ =
                    self.ctx
                        .clear_kv_cache_seq(Some(r.seq as u32), Some(r.n_past as u32), None);
            }
        }
    }

    fn sample(&mut self) {
        let mut finished = Vec::new();
        for (i, r) in self.running.iter_mut().enumerate() {
            let Some(row) = r.row.take() else { continue };
            let logits = self.ctx.get_logits_ith(row);
            let choice = r.job.sampler.choose(logits, &r.tokens);
            let token = choice.token;
            r.produced += 1;
            r.job.generated.fetch_add(1, Ordering::Relaxed);
            let eog = self.eog.get(token as usize).copied().unwrap_or(false);
            let mut piece = StepOutput {
                logprob: choice.logprob,
                ..StepOutput::default()
            };
            if !eog {
                r.utf8.extend_from_slice(self.vocab.bytes(token));
                piece.text = take_utf8(&mut r.utf8, false);
                r.tokens.push(token);
            }
            // The end of generation, or of the grammar (a finished JSON value).
            let done = eog || (r.job.sampler.has_grammar() && r.job.sampler.grammar_done(self.eos));
            let finish = if done {
                Some("stop")
            } else if r.produced >= r.job.max_len {
                Some("length")
            } else {
                None
            };
            if let Some(f) = finish {
                piece.text.push_str(&take_utf8(&mut r.utf8, true));
                piece.finish = Some(f.to_string());
                // Free the slot before the client can see the end.
                r.job.slot = None;
                finished.push(i);
            }
            let _ = r.job.events.send(Event::StepOutput(piece));
        }
        for i in finished.into_iter().rev() {
            let r = self.running.remove(i);
            self.park_or_forget(r);
            self.squeezed = false;
        }
    }

    /// Keeps a finished sequence's KV for prefix reuse, or frees it.
    fn park_or_forget(&mut self, r: Running) {
        if self.limits.parked == 0 || r.n_past == 0 {
            self.forget(r.seq);
            return;
        }
        // The last sampled token is not in the KV cache.
        let mut tokens = r.tokens;
        tokens.truncate(r.n_past);
        let _ = self
            .ctx
            .clear_kv_cache_seq(Some(r.seq as u32), Some(r.n_past as u32), None);
        PARKED_ENTRIES.fetch_add(1, Ordering::Relaxed);
        PARKED_BYTES.fetch_add(tokens.len() * self.limits.token_bytes, Ordering::Relaxed);
        self.parked.push(Parked {
            seq: r.seq,
            tokens,
            used: Instant::now(),
            adapters: r.job.adapters,
        });
        while self.parked.len() > self.limits.parked
            || self.parked_bytes() > self.limits.parked_bytes
        {
            self.evict_oldest_parked();
        }
    }

    fn fail_running(&mut self, msg: &str) {
        for r in std::mem::take(&mut self.running) {
            let _ = r
                .job
                .events
                .send(Event::Error(ApiError::internal(msg.to_string())));
            self.forget(r.seq);
        }
    }

    /// Called when nothing runs and the head of the queue was still not
    /// admitted: with the pool empty it never will be.
    fn reject_head(&mut self) {
        let Some(r) = self.waiting.pop_front() else {
            return;
        };
        let pool = self.limits.pool;
        r.job.span.in_scope(|| {
            info!(
                tokens = r.tokens.len(),
                pool, "prompt larger than the KV cache"
            )
        });
        let _ = r
            .job
            .events
            .send(Event::Error(ApiError::context_length_exceeded(format!(
                "The prompt needs {} tokens of KV cache, more than the {pool} this model has.",
                r.tokens.len()
            ))));
    }
}

/// The longest valid UTF-8 text in `buf`, leaving an unfinished character
/// (at most 3 bytes) unless `all`.
fn take_utf8(buf: &mut Vec<u8>, all: bool) -> String {
    let valid = match std::str::from_utf8(buf) {
        Ok(_) => buf.len(),
        Err(e) if e.error_len().is_none() && !all => e.valid_up_to(),
        Err(_) => {
            let s = String::from_utf8_lossy(buf).into_owned();
            buf.clear();
            return s;
        }
    };
    let rest = buf.split_off(valid);
    String::from_utf8(std::mem::replace(buf, rest)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_held_until_whole() {
        let mut b = "é".as_bytes()[..1].to_vec();
        assert_eq!(take_utf8(&mut b, false), "");
        b.extend_from_slice(&"é".as_bytes()[1..]);
        b.extend_from_slice(b"x");
        assert_eq!(take_utf8(&mut b, false), "éx");
        assert!(b.is_empty());
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4]), 2);
    }
}
