//! LoRA adapters a request selects: the `adapters` field (as llama-server's
//! `lora` and vLLM's LoRA requests) and the `"model": "base@adapter"` form.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ApiError, ApiResult};

/// Most adapters one request may stack.
pub const MAX_ADAPTERS: usize = 8;
/// Largest scale magnitude: past it the base model's output is noise.
pub const MAX_SCALE: f32 = 10.0;

/// One adapter to apply: its id in the model's registry entry, and a scale
/// (the entry's when omitted; 0 is the base model). A bare string is an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(from = "Repr")]
pub struct AdapterChoice {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -10.0, maximum = 10.0)]
    pub scale: Option<f32>,
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "an adapter id, or an object with `id` and `scale`"
)]
enum Repr {
    Id(String),
    Full {
        id: String,
        #[serde(default)]
        scale: Option<f32>,
    },
}

impl From<Repr> for AdapterChoice {
    fn from(r: Repr) -> Self {
        match r {
            Repr::Id(id) => Self { id, scale: None },
            Repr::Full { id, scale } => Self { id, scale },
        }
    }
}

/// `base@a,b*0.5`: the base model's name and the adapters after the last
/// `@` (none when there is no `@` or nothing after it), each with the scale
/// after its `*` if any, so that clients that can only set `model` (and
/// the names merged models answer with) set scales too.
pub fn split_name(name: &str) -> (&str, Vec<AdapterChoice>) {
    match name.rsplit_once('@') {
        Some((base, list)) if !base.is_empty() && !list.is_empty() => {
            (base, list.split(',').map(|a| choice(a.trim())).collect())
        }
        _ => (name, Vec::new()),
    }
}

/// `id` or `id*scale`; a scale out of range leaves the whole as the id
/// (which then names no adapter).
fn choice(named: &str) -> AdapterChoice {
    let scaled = named.rsplit_once('*').and_then(|(id, scale)| {
        let scale: f32 = scale.parse().ok()?;
        (scale.is_finite() && scale.abs() <= MAX_SCALE).then(|| (id.trim(), scale))
    });
    match scaled {
        Some((id, scale)) => AdapterChoice {
            id: id.to_string(),
            scale: Some(scale),
        },
        None => AdapterChoice {
            id: named.to_string(),
            scale: None,
        },
    }
}

/// What a response calls the model: `base@a,b` when adapters were named.
pub fn display_name(base: &str, adapters: Option<&[AdapterChoice]>) -> String {
    match adapters.unwrap_or_default() {
        [] => base.to_string(),
        list => {
            let ids: Vec<&str> = list.iter().map(|a| a.id.as_str()).collect();
            format!("{base}@{}", ids.join(","))
        }
    }
}

/// The adapters named in `model` followed by the `adapters` field; an id
/// given in both takes the field's scale.
pub fn merge(named: Vec<AdapterChoice>, field: Option<Vec<AdapterChoice>>) -> Vec<AdapterChoice> {
    let mut all = named;
    for choice in field.unwrap_or_default() {
        match all.iter_mut().find(|c| c.id == choice.id) {
            Some(c) => c.scale = choice.scale.or(c.scale),
            None => all.push(choice),
        }
    }
    all
}

/// The field's own rules: a few distinct, named adapters at sane scales.
pub fn validate(adapters: Option<&[AdapterChoice]>) -> ApiResult<()> {
    let adapters = adapters.unwrap_or_default();
    let bad = |msg: String| Err(ApiError::invalid("adapters", msg));
    if adapters.len() > MAX_ADAPTERS {
        return bad(format!(
            "At most {MAX_ADAPTERS} adapters can be applied at once."
        ));
    }
    for (i, a) in adapters.iter().enumerate() {
        if a.id.trim().is_empty() {
            return bad(format!("`adapters[{i}].id` must not be empty."));
        }
        if adapters[..i].iter().any(|b| b.id == a.id) {
            return bad(format!("The adapter `{}` is named twice.", a.id));
        }
        if a.scale
            .is_some_and(|s| !s.is_finite() || s.abs() > MAX_SCALE)
        {
            return bad(format!(
                "`adapters[{i}].scale` must be between -{MAX_SCALE} and {MAX_SCALE}."
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_fields_combine() {
        let (base, named) = split_name("smol@style, terse");
        assert_eq!(base, "smol");
        assert_eq!(named.len(), 2);
        assert_eq!(named[1].id, "terse");
        assert_eq!(split_name("smol").1, vec![]);
        assert_eq!(split_name("@x").0, "@x");
        let (_, scaled) = split_name("smol@style*0.5,terse*99");
        assert_eq!(
            (scaled[0].id.as_str(), scaled[0].scale),
            ("style", Some(0.5))
        );
        assert_eq!((scaled[1].id.as_str(), scaled[1].scale), ("terse*99", None));
        let field: Vec<AdapterChoice> = serde_json::from_str(
            r#"["style", {"id": "other", "scale": 0.5}, {"id": "terse", "scale": 0}]"#,
        )
        .unwrap();
        let all = merge(named, Some(field));
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].scale, None);
        assert_eq!(all[1].scale, Some(0.0));
        assert_eq!(all[2].scale, Some(0.5));
        assert!(validate(Some(&all)).is_ok());
    }

    #[test]
    fn bad_lists_are_refused() {
        let one = |id: &str, scale| AdapterChoice {
            id: id.into(),
            scale,
        };
        for list in [
            vec![one("", None)],
            vec![one("a", None), one("a", Some(1.0))],
            vec![one("a", Some(1e9))],
            vec![one("a", Some(f32::NAN))],
            (0..9).map(|i| one(&i.to_string(), None)).collect(),
        ] {
            let e = validate(Some(&list)).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.param.as_deref(), Some("adapters"));
        }
        assert!(serde_json::from_str::<AdapterChoice>("3").is_err());
    }
}
