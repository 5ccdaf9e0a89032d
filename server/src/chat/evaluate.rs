//! Evaluating a candidate against an alias's current version on this
//! server: each item's prompt goes to both models (greedy, on the one chat
//! road, memory off), each answer is scored 0 to 1 by its check (exact
//! match, a regex, JSON validity, or a judge model's 0-10 against a
//! rubric), and the means decide.

use ferrite_middleware::alias_store::Decision;
use ferrite_openapi::aggregate::ChatAccumulator;
use ferrite_openapi::aliases::{
    Check, EvalItem, EvalReport, EvaluateRequest, ItemScore, ModelScore,
};
use ferrite_openapi::chat::{CallContext, ChatMessage, ChatRequest, Role};
use ferrite_openapi::{ApiError, ApiResult};
use regex::Regex;

use crate::chat::generate::{generate, Valid};
use crate::state::AppState;

/// Items one evaluation may hold.
const MAX_ITEMS: usize = 1000;
const DEFAULT_MAX_TOKENS: u32 = 128;

/// 400 for a set that cannot be scored: empty, too long, an item with
/// neither reference nor check, a pattern that does not compile.
pub fn check_items(items: &[EvalItem]) -> ApiResult<()> {
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(ApiError::invalid(
            "items",
            format!("`items` must hold 1 to {MAX_ITEMS} evaluation items."),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        let param = format!("items[{i}]");
        if item.prompt.trim().is_empty() {
            return Err(ApiError::invalid(
                &param,
                format!("`{param}.prompt` is empty."),
            ));
        }
        match &item.check {
            None | Some(Check::ExactMatch { value: None }) if item.reference.is_none() => {
                return Err(ApiError::invalid(
                    &param,
                    format!("`{param}` needs a `reference` answer or a `check`."),
                ))
            }
            Some(Check::Regex { pattern }) => {
                Regex::new(pattern).map_err(|e| {
                    ApiError::invalid(&param, format!("`{param}.check.pattern`: {e}"))
                })?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The model's greedy answer to `prompt`.
async fn ask(state: &AppState, model: &str, prompt: String, max_tokens: u32) -> ApiResult<String> {
    let request = ChatRequest {
        model: Some(model.to_string()),
        messages: vec![ChatMessage::text(Role::User, prompt)],
        max_tokens: Some(i64::from(max_tokens)),
        temperature: Some(0.0),
        context: CallContext {
            tenant: "evaluation".into(),
            no_memory: true,
            // Evaluation runs for an `admin`: a candidate may be a merged
            // model at scales of its own.
            manage_models: true,
            ..CallContext::default()
        },
        ..ChatRequest::default()
    };
    let (_, chunks) = generate(state, Valid::new(request, &state.config.limits)?)
        .await?
        .into_parts();
    let done =
        crate::chat::stream::collect(chunks, ChatAccumulator::default(), ChatAccumulator::push)
            .await?
            .finish();
    Ok(done
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.message.content)
        .unwrap_or_default())
}

/// The first number in a judge's reply, out of 10, as 0 to 1.
fn judged(reply: &str) -> f64 {
    let number: String = reply
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number
        .parse::<f64>()
        .map_or(0.0, |n| (n / 10.0).clamp(0.0, 1.0))
}

async fn score(state: &AppState, item: &EvalItem, answer: &str) -> ApiResult<f64> {
    let yes = |b: bool| if b { 1.0 } else { 0.0 };
    Ok(match &item.check {
        None | Some(Check::ExactMatch { value: None }) => {
            yes(Some(answer.trim()) == item.reference.as_deref().map(str::trim))
        }
        Some(Check::ExactMatch { value: Some(v) }) => yes(answer.trim() == v.trim()),
        Some(Check::Regex { pattern }) => {
            yes(Regex::new(pattern).is_ok_and(|re| re.is_match(answer)))
        }
        Some(Check::Json) => yes(serde_json::from_str::<serde_json::Value>(answer.trim()).is_ok()),
        Some(Check::Judge { model, rubric }) => {
            let prompt = format!(
                "Score the answer to the question against the rubric, from 0 (fails it) to 10 \
                 (meets it fully). Reply with the number only.\n\nRubric: {rubric}\n\n\
                 Question: {}\n\nAnswer: {answer}\n\nScore:",
                item.prompt
            );
            judged(&ask(state, model, prompt, 8).await?)
        }
    })
}

/// `model`'s answers to every item, scored.
async fn run(state: &AppState, model: &str, items: &[EvalItem]) -> ApiResult<ModelScore> {
    let mut scored = Vec::with_capacity(items.len());
    for item in items {
        let limit = item.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        let answer = ask(state, model, item.prompt.clone(), limit).await?;
        let score = score(state, item, &answer).await?;
        scored.push(ItemScore { answer, score });
    }
    let mean = scored.iter().map(|i| i.score).sum::<f64>() / scored.len().max(1) as f64;
    Ok(ModelScore {
        model: model.to_string(),
        score: mean,
        items: scored,
    })
}

/// Scores the candidate and the current version; with `promote`, the
/// candidate becomes current if its mean beats the current one's by the
/// alias's threshold. The decision is logged, counted and stored.
pub async fn evaluate(state: &AppState, name: &str, req: EvaluateRequest) -> ApiResult<EvalReport> {
    let versions = &state.versions;
    let threshold = versions.config(name)?.threshold;
    check_items(&req.items)?;
    let (_, candidate) = state.registry.canonical(&req.candidate).await?;
    let before = versions.state(name).await?;
    let current_model = before
        .current()
        .map(|v| v.model.clone())
        .unwrap_or_default();
    let candidate_score = run(state, &candidate, &req.items).await?;
    let current_score = run(state, &current_model, &req.items).await?;
    let wins = candidate_score.score > current_score.score
        && candidate_score.score - current_score.score >= threshold;
    let (decision, version) = match (req.promote, wins) {
        (true, true) => ("promote", versions.promote(name, &candidate).await?.current),
        (true, false) => ("keep", before.current),
        (false, _) => ("evaluate", before.current),
    };
    let report = EvalReport {
        alias: name.to_string(),
        candidate: candidate_score,
        current: current_score,
        threshold,
        decision: decision.into(),
        version,
    };
    versions
        .record(Decision {
            alias: name.to_string(),
            action: decision.into(),
            candidate,
            current: current_model,
            candidate_score: Some(report.candidate.score),
            current_score: Some(report.current.score),
            report: serde_json::to_string(&report).unwrap_or_default(),
            created_at: ferrite_openapi::common::unix_now() as i64,
        })
        .await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_judges_reply_is_read_as_its_first_number() {
        assert_eq!(judged("8"), 0.8);
        assert_eq!(judged("Score: 7.5/10"), 0.75);
        assert_eq!(judged("12"), 1.0);
        assert_eq!(judged("no idea"), 0.0);
    }

    #[test]
    fn a_set_that_cannot_be_scored_is_refused_by_item() {
        let item = |reference: Option<&str>, check: Option<Check>| EvalItem {
            prompt: "Q".into(),
            reference: reference.map(String::from),
            check,
            max_tokens: None,
        };
        assert!(check_items(&[item(Some("A"), None)]).is_ok());
        assert!(check_items(&[item(None, Some(Check::Json))]).is_ok());
        assert!(check_items(&[]).is_err());
        let e = check_items(&[item(Some("A"), None), item(None, None)]).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("items[1]"));
        let bad = Check::Regex {
            pattern: "(".into(),
        };
        assert!(check_items(&[item(None, Some(bad))]).is_err());
    }
}
