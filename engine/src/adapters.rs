//! A request's LoRA adapters, as indices into the ones loaded with the
//! model: what the step loop batches by.

use ferrite_openapi::adapters::AdapterChoice;
use ferrite_openapi::{ApiError, ApiResult};

use crate::options::AdapterOptions;

/// Loaded adapters by index with their scales, sorted by index; adapters
/// at scale 0 are left out, so such a request is the base model's (and is
/// batched with it).
pub type AdapterSet = Vec<(usize, f32)>;

pub fn select(loaded: &[AdapterOptions], asked: Option<&[AdapterChoice]>) -> ApiResult<AdapterSet> {
    let mut set = AdapterSet::new();
    for choice in asked.unwrap_or_default() {
        let Some(i) = loaded.iter().position(|a| a.id == choice.id) else {
            let known: Vec<&str> = loaded.iter().map(|a| a.id.as_str()).collect();
            return Err(ApiError::invalid(
                "adapters",
                match known.is_empty() {
                    true => format!(
                        "This model has no LoRA adapters; `{}` is not one of them.",
                        choice.id
                    ),
                    false => format!(
                        "This model has no adapter `{}` (it has: {}).",
                        choice.id,
                        known.join(", ")
                    ),
                },
            ));
        };
        let scale = choice.scale.unwrap_or(loaded[i].scale);
        if scale != 0.0 {
            set.push((i, scale));
        }
    }
    set.sort_by_key(|&(i, _)| i);
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_indices_and_zero_is_the_base() {
        let loaded: Vec<AdapterOptions> = ["a", "b"]
            .iter()
            .map(|id| AdapterOptions {
                id: id.to_string(),
                path: "x".into(),
                scale: 0.5,
            })
            .collect();
        let pick = |id: &str, scale| AdapterChoice {
            id: id.into(),
            scale,
        };
        let set = select(&loaded, Some(&[pick("b", Some(2.0)), pick("a", None)])).unwrap();
        assert_eq!(set, vec![(0, 0.5), (1, 2.0)]);
        assert!(select(&loaded, Some(&[pick("a", Some(0.0))]))
            .unwrap()
            .is_empty());
        assert!(select(&loaded, None).unwrap().is_empty());
        let e = select(&loaded, Some(&[pick("c", None)])).unwrap_err();
        assert!(e.message.contains("it has: a, b"), "{}", e.message);
    }
}
