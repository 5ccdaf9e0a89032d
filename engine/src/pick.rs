//! Sampling a token from raw logits: temperature, top-k, top-p, min-p and
//! a seeded generator, the same on both runtimes.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct Pick {
    rng: StdRng,
    temperature: f64,
    top_k: Option<usize>,
    top_p: Option<f64>,
    min_p: Option<f64>,
    /// Scratch space for the unfiltered case, reused every step.
    exps: Vec<f32>,
}

impl Pick {
    pub fn new(
        seed: u64,
        temperature: f64,
        top_k: Option<usize>,
        top_p: Option<f64>,
        min_p: Option<f64>,
    ) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            temperature,
            top_k,
            top_p,
            min_p,
            exps: Vec::new(),
        }
    }

    /// Picks a token index from raw logits.
    pub fn pick(&mut self, logits: &[f32]) -> usize {
        if self.temperature < 1e-7 {
            return logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i);
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let t = self.temperature as f32;
        let filtered = self.top_k.is_some() || self.top_p.is_some() || self.min_p.is_some();
        if !filtered {
            // The whole vocabulary in index order: no sort, no allocation.
            self.exps.clear();
            self.exps
                .extend(logits.iter().map(|&l| ((l - max) / t).exp()));
            let total: f32 = self.exps.iter().sum();
            let mut target = self.rng.random::<f32>() * total;
            let mut last = 0;
            for (i, &p) in self.exps.iter().enumerate() {
                if p > 0.0 {
                    if target < p {
                        return i;
                    }
                    target -= p;
                    last = i;
                }
            }
            return last;
        }
        let mut probs: Vec<(usize, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i, ((l - max) / t).exp()))
            .filter(|(_, p)| *p > 0.0)
            .collect();
        {
            probs.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
            if let Some(k) = self.top_k {
                probs.truncate(k.max(1));
            }
            let total: f32 = probs.iter().map(|p| p.1).sum();
            if let Some(min_p) = self.min_p {
                let floor = probs.first().map_or(0.0, |p| p.1) * min_p as f32;
                probs.retain(|p| p.1 >= floor);
            }
            if let Some(top_p) = self.top_p {
                let mut cum = 0.0;
                let keep = probs
                    .iter()
                    .position(|p| {
                        cum += p.1 / total;
                        cum >= top_p as f32
                    })
                    .map_or(probs.len(), |i| i + 1);
                probs.truncate(keep.max(1));
            }
        }
        let total: f32 = probs.iter().map(|p| p.1).sum();
        let mut target = self.rng.random::<f32>() * total;
        for &(i, p) in &probs {
            if target < p {
                return i;
            }
            target -= p;
        }
        probs.last().map_or(0, |p| p.0)
    }
}

/// Softmax of the logits as the model scores them (temperature 1), and the
/// log of its normaliser.
pub fn softmax(logits: &[f32]) -> (Vec<f32>, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    (exps.into_iter().map(|e| e / sum).collect(), max + sum.ln())
}
