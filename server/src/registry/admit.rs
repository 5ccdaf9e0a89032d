//! Whether a load may go ahead: the context it asks for is one the model
//! can hold, and a caller without `models:manage` changes nothing another
//! tenant relies on (reloading a resident model at another context, or
//! building a merged model at adapter scales of its own).

use ferrite_openapi::models::ModelMeta;
use ferrite_openapi::{ApiError, ApiResult};

use super::catalog::Spec;

/// The scope that loading, unloading and reloading models need.
pub const MANAGE_MODELS: &str = "models:manage";

/// Whether the caller holds [`MANAGE_MODELS`] (everyone does with auth off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manage {
    Granted,
    Denied,
}

impl Manage {
    pub fn from_grant(granted: bool) -> Self {
        if granted {
            Self::Granted
        } else {
            Self::Denied
        }
    }

    /// 403 naming the scope unless granted; `what` says what needed it.
    pub fn require(self, what: &str) -> ApiResult<()> {
        match self {
            Self::Granted => Ok(()),
            Self::Denied => Err(ApiError::missing_scope(MANAGE_MODELS, Some(what))),
        }
    }
}

/// The fewest context tokens a load may ask for: a chat template and a short
/// answer need about this much.
const MIN_CONTEXT: u32 = 64;

/// 400 for a `context_length` too small to hold a chat, or larger than the
/// model was trained for (unless its entry allows RoPE scaling).
pub fn check_context(
    tokens: Option<u32>,
    meta: Option<&ModelMeta>,
    spec: &Spec,
    param: &str,
) -> ApiResult<()> {
    let Some(n) = tokens else {
        return Ok(());
    };
    if n < MIN_CONTEXT {
        return Err(ApiError::invalid(
            param,
            format!("`{param}` must be at least {MIN_CONTEXT} tokens; {n} was given."),
        ));
    }
    let trained = meta.map_or(0, |m| m.max_context_length);
    if trained > 0 && n > trained && spec.options.rope_scaling.is_none() {
        return Err(ApiError::invalid(
            param,
            format!(
                "`{param}` is {n}, but `{}` was trained for at most {trained} tokens. Ask for {trained} or fewer, or allow RoPE scaling in its registry entry (`rope_scaling`).",
                spec.id
            ),
        ));
    }
    Ok(())
}

/// The context a model gets when a load names none.
pub fn default_context(spec: &Spec, meta: Option<&ModelMeta>) -> Option<u32> {
    let trained = meta.map(|m| m.max_context_length).filter(|&t| t > 0);
    match (spec.options.context_length, trained) {
        (Some(own), Some(trained)) if spec.options.rope_scaling.is_none() => Some(own.min(trained)),
        (Some(own), _) => Some(own),
        (None, trained) => trained,
    }
}
