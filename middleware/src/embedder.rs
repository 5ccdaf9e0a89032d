//! Comparing texts by meaning: an [`Embedder`] (the server's embedding
//! model) and what is done with its vectors. Memory retrieval and the
//! expert routers' examples use it where configured.

use async_trait::async_trait;
use ferrite_openapi::ApiResult;

#[async_trait]
pub trait Embedder: Send + Sync + 'static {
    /// One unit-length vector per text, in order.
    async fn embed(&self, texts: Vec<String>) -> ApiResult<Vec<Vec<f32>>>;
}

/// Cosine similarity; 0 for vectors of different sizes (another model's).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(f32::EPSILON)
}

/// A vector as stored: little-endian f32s.
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_cosine() {
        let v = vec![0.6, -0.8, 0.0];
        assert_eq!(from_bytes(&to_bytes(&v)), v);
        assert!((cosine(&v, &v) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&v, &[1.0]), 0.0);
    }
}
