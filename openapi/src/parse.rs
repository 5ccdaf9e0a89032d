//! Body parsing that names the offending field, like OpenAI's 400s do.

use serde::de::DeserializeOwned;
use serde_json::error::Category;
use serde_json::Value;

use crate::error::{ApiError, ApiResult, ErrorCode};

/// Parses a JSON request body; errors say which field (`param`) is wrong.
/// An `extra_body` object (what the OpenAI SDKs' `extra_body=` argument is
/// when a client sends it literally) is merged into the top level.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if memchr_str(body, b"\"extra_body\"") {
        return parse_with_extra_body(body);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => invalid_json(&inner),
            Category::Data => data_error(path, &inner),
        }
    })?;
    de.end().map_err(|e| invalid_json(&e))?;
    Ok(value)
}

fn memchr_str(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn parse_with_extra_body<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| invalid_json(&e))?;
    if let Value::Object(top) = &mut value {
        match top.remove("extra_body") {
            Some(Value::Object(extra)) => top.extend(extra),
            None | Some(Value::Null) => {}
            Some(_) => {
                return Err(ApiError::invalid(
                    "extra_body",
                    "`extra_body` must be an object.",
                ))
            }
        }
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        data_error(path, &err.into_inner())
    })
}

fn invalid_json(err: &serde_json::Error) -> ApiError {
    ApiError::new(
        400,
        "invalid_request_error",
        format!("We could not parse the JSON body of your request: {err}"),
    )
    .with_code(ErrorCode::InvalidJson)
}

fn data_error(path: String, err: &serde_json::Error) -> ApiError {
    let msg = err.to_string();
    // serde reports a missing field at its parent's path; name the field itself.
    let missing = msg
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let param = match (missing, path.as_str()) {
        (Some(field), "." | "") => Some(field.to_string()),
        (Some(field), parent) => Some(format!("{parent}.{field}")),
        (None, "." | "") => None,
        (None, p) => Some(p.to_string()),
    };
    let message = match &param {
        Some(p) => format!("Invalid value for '{p}': {}", strip_position(&msg)),
        None => format!("Invalid request body: {}", strip_position(&msg)),
    };
    let mut e =
        ApiError::new(400, "invalid_request_error", message).with_code(ErrorCode::InvalidValue);
    e.param = param;
    e
}

/// serde_json appends "at line 1 column 42", which means nothing to a client.
fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ChatRequest;

    #[test]
    fn names_the_wrong_field() {
        let err = parse_json::<ChatRequest>(
            br#"{"messages":[{"role":"user","content":"hi"}],"temperature":"hot"}"#,
        )
        .unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(err.param.as_deref(), Some("temperature"));
    }

    #[test]
    fn names_a_missing_field() {
        let err = parse_json::<ChatRequest>(br#"{"model":"x"}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages"));
        let err = parse_json::<ChatRequest>(br#"{"messages":[{"content":"x"}]}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].role"));
    }

    #[test]
    fn merges_a_literal_extra_body() {
        let req = parse_json::<ChatRequest>(
            br#"{"messages":[{"role":"user","content":"hi"}],"extra_body":{"thinking":{"max_tokens":4}}}"#,
        )
        .unwrap();
        assert_eq!(req.thinking.and_then(|t| t.max_tokens), Some(4));
        let err = parse_json::<ChatRequest>(
            br#"{"messages":[{"role":"user","content":"hi"}],"extra_body":{"thinking":{"max_tokens":"x"}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("thinking.max_tokens"));
    }

    #[test]
    fn rejects_malformed_json() {
        let err = parse_json::<ChatRequest>(br#"{"messages": ["#).unwrap_err();
        assert_eq!(err.code, Some(ErrorCode::InvalidJson));
        let err = parse_json::<ChatRequest>(br#"{"messages": []} trailing"#).unwrap_err();
        assert_eq!(err.code, Some(ErrorCode::InvalidJson));
    }
}
