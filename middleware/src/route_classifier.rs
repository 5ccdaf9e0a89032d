//! The expert router's classifier: which route a conversation belongs to,
//! with a confidence and a reason a person can check. Signals per route:
//! keywords (whole words), regular expressions, prompt length, and
//! similarity to example utterances (cosine over word and word-pair counts).

use std::collections::HashMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// A virtual model that sends each request to one of its routes' models.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// The model name clients use, e.g. `auto`.
    pub name: String,
    /// Answers when no route reaches `threshold`, and is the last fallback.
    pub default_model: String,
    /// Confidence a route needs, 0 to 1.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// A second opinion on the specialist's answer; absent = off.
    #[serde(default)]
    pub review: Option<ReviewConfig>,
    /// An embedding model (a registry id): examples then compare by
    /// meaning instead of by shared words.
    #[serde(default)]
    pub embedding_model: Option<String>,
}

fn default_threshold() -> f64 {
    0.35
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `code`, `legal`, `long-context`...
    pub name: String,
    pub model: String,
    /// Tried in order when `model` fails to load or errors.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Whole words, case-insensitive.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Regular expressions over the last user message.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Utterances typical of this route.
    #[serde(default)]
    pub examples: Vec<String>,
    /// Conversations at least this long (characters) belong here.
    #[serde(default)]
    pub min_prompt_chars: Option<usize>,
}

/// The specialist's answer goes to `reviewer`; `orchestrator` writes the
/// final answer from the conversation, the draft and the review.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    pub reviewer: String,
    pub orchestrator: String,
}

/// Signal strengths: a pattern is deliberate, one keyword is a hint.
const PATTERN: f64 = 0.9;
const LENGTH: f64 = 0.95;
const KEYWORD: f64 = 0.6;
const EXTRA_KEYWORD: f64 = 0.15;

struct Route {
    config: RouteConfig,
    keywords: Vec<(String, Regex)>,
    patterns: Vec<Regex>,
    examples: Vec<(String, Bag)>,
    /// Where this route's examples start in [`Classifier::example_texts`].
    first_example: usize,
}

/// Embeddings of the last user message and of every example, in the
/// order of [`Classifier::example_texts`].
pub struct Meaning {
    pub query: Vec<f32>,
    pub examples: Vec<Vec<f32>>,
}

pub struct Classifier {
    routes: Vec<Route>,
    threshold: f64,
    default_model: String,
}

/// What the classifier decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The route's name, or `default`.
    pub route: String,
    /// Models to try, in order; the default model is always last.
    pub candidates: Vec<String>,
    pub confidence: f64,
    pub reason: String,
}

impl Classifier {
    /// Compiles the router's rules; a bad regex names its route.
    pub fn new(config: &RouterConfig) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&config.threshold) {
            return Err(format!(
                "router `{}`: threshold must be between 0 and 1",
                config.name
            ));
        }
        let mut routes: Vec<Route> = Vec::new();
        for r in &config.routes {
            let first_example = routes.iter().map(|r| r.examples.len()).sum();
            let keywords = r
                .keywords
                .iter()
                .map(|k| {
                    Regex::new(&format!(r"(?i)\b{}\b", regex::escape(k.trim())))
                        .map(|re| (k.trim().to_string(), re))
                })
                .collect::<Result<_, _>>()
                .map_err(|e| format!("route `{}`: {e}", r.name))?;
            let patterns = r
                .patterns
                .iter()
                .map(|p| Regex::new(p))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("route `{}`: bad pattern: {e}", r.name))?;
            let examples = r.examples.iter().map(|e| (e.clone(), Bag::of(e))).collect();
            routes.push(Route {
                config: r.clone(),
                keywords,
                patterns,
                examples,
                first_example,
            });
        }
        Ok(Self {
            routes,
            threshold: config.threshold,
            default_model: config.default_model.clone(),
        })
    }

    /// Every route's examples, in route order (what [`Meaning`] embeds).
    pub fn example_texts(&self) -> Vec<String> {
        self.routes
            .iter()
            .flat_map(|r| r.examples.iter().map(|(e, _)| e.clone()))
            .collect()
    }

    /// Classifies `text` (the last user message); `prompt_chars` is the
    /// whole conversation's length. With `meaning`, examples compare by
    /// meaning; without, by shared words.
    pub fn classify(&self, text: &str, prompt_chars: usize, meaning: Option<&Meaning>) -> Decision {
        let bag = Bag::of(text);
        let best = self
            .routes
            .iter()
            .map(|r| (r, score(r, text, &bag, prompt_chars, meaning)))
            // The first configured route wins ties.
            .fold(None::<(&Route, (f64, String))>, |best, (r, s)| match best {
                Some((_, (b, _))) if b >= s.0 => best,
                _ => Some((r, s)),
            });
        match best {
            Some((route, (confidence, reason))) if confidence >= self.threshold => {
                let mut candidates = vec![route.config.model.clone()];
                candidates.extend(route.config.fallbacks.iter().cloned());
                candidates.push(self.default_model.clone());
                Decision {
                    route: route.config.name.clone(),
                    candidates: dedup(candidates),
                    confidence,
                    reason,
                }
            }
            Some((route, (confidence, _))) => Decision {
                route: "default".into(),
                candidates: vec![self.default_model.clone()],
                confidence,
                reason: format!(
                    "no route reached the threshold {:.2} (best: `{}` at {confidence:.2})",
                    self.threshold, route.config.name
                ),
            },
            None => Decision {
                route: "default".into(),
                candidates: vec![self.default_model.clone()],
                confidence: 0.0,
                reason: "the router has no routes".into(),
            },
        }
    }
}

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in list {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// The route's strongest signal and what it was.
fn score(
    route: &Route,
    text: &str,
    bag: &Bag,
    prompt_chars: usize,
    meaning: Option<&Meaning>,
) -> (f64, String) {
    let mut best = (0.0, String::from("nothing matched"));
    let mut consider = |s: f64, why: String| {
        if s > best.0 {
            best = (s, why);
        }
    };
    if let Some(min) = route.config.min_prompt_chars {
        if prompt_chars >= min {
            consider(
                LENGTH,
                format!("the conversation is {prompt_chars} characters (>= {min})"),
            );
        }
    }
    if let Some(p) = route.patterns.iter().find(|p| p.is_match(text)) {
        consider(PATTERN, format!("pattern `{}` matched", p.as_str()));
    }
    let hits: Vec<&str> = route
        .keywords
        .iter()
        .filter(|(_, re)| re.is_match(text))
        .map(|(k, _)| k.as_str())
        .collect();
    if !hits.is_empty() {
        let s = (KEYWORD + EXTRA_KEYWORD * (hits.len() - 1) as f64).min(1.0);
        consider(s, format!("keywords {}", quoted(&hits)));
    }
    let similar = route.examples.iter().enumerate().map(|(i, (e, b))| {
        let sim =
            match meaning.and_then(|m| m.examples.get(route.first_example + i).map(|v| (m, v))) {
                Some((m, v)) => f64::from(crate::embedder::cosine(&m.query, v)),
                None => bag.cosine(b),
            };
        (e, sim)
    });
    if let Some((example, sim)) = similar.max_by(|a, b| a.1.total_cmp(&b.1)) {
        let how = if meaning.is_some() {
            "close in meaning"
        } else {
            "similar"
        };
        consider(sim, format!("{how} ({sim:.2}) to example \"{example}\""));
    }
    best
}

fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Counts of lower-cased words and adjacent word pairs.
struct Bag(HashMap<String, f64>);

impl Bag {
    fn of(text: &str) -> Self {
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let mut counts = HashMap::new();
        for w in &words {
            *counts.entry(w.clone()).or_insert(0.0) += 1.0;
        }
        for pair in words.windows(2) {
            *counts
                .entry(format!("{} {}", pair[0], pair[1]))
                .or_insert(0.0) += 1.0;
        }
        Self(counts)
    }

    fn norm(&self) -> f64 {
        self.0.values().map(|v| v * v).sum::<f64>().sqrt()
    }

    fn cosine(&self, other: &Bag) -> f64 {
        let dot: f64 = self
            .0
            .iter()
            .filter_map(|(k, v)| other.0.get(k).map(|o| v * o))
            .sum();
        let norms = self.norm() * other.norm();
        if norms == 0.0 {
            0.0
        } else {
            dot / norms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> RouterConfig {
        RouterConfig {
            name: "auto".into(),
            default_model: "general".into(),
            threshold: 0.35,
            routes: vec![
                RouteConfig {
                    name: "code".into(),
                    model: "coder".into(),
                    fallbacks: vec!["coder-small".into()],
                    keywords: vec!["rust".into(), "python".into(), "compile".into()],
                    patterns: vec![r"fn\s+\w+\(".into()],
                    examples: vec!["how do I reverse a linked list".into()],
                    min_prompt_chars: None,
                },
                RouteConfig {
                    name: "long".into(),
                    model: "long".into(),
                    fallbacks: vec![],
                    keywords: vec![],
                    patterns: vec![],
                    examples: vec![],
                    min_prompt_chars: Some(1000),
                },
            ],
            review: None,
            embedding_model: None,
        }
    }

    #[test]
    fn examples_compare_by_meaning_when_given_vectors() {
        let c = Classifier::new(&router()).unwrap();
        assert_eq!(c.example_texts(), ["how do I reverse a linked list"]);
        let text = "Invert the order of a chain of nodes";
        assert_eq!(c.classify(text, 30, None).route, "default");
        let meaning = Meaning {
            query: vec![0.8, 0.6],
            examples: vec![vec![1.0, 0.0]],
        };
        let d = c.classify(text, 30, Some(&meaning));
        assert_eq!(d.route, "code");
        assert!(d.reason.contains("close in meaning (0.80)"), "{}", d.reason);
    }

    #[test]
    fn each_signal_routes_and_explains_itself() {
        let c = Classifier::new(&router()).unwrap();
        let d = c.classify("Why does my Rust code not compile?", 40, None);
        assert_eq!(d.route, "code");
        assert_eq!(d.candidates, ["coder", "coder-small", "general"]);
        assert!((d.confidence - 0.75).abs() < 1e-9, "two keywords");
        assert_eq!(d.reason, "keywords `rust`, `compile`");

        let d = c.classify("fix fn main() please", 20, None);
        assert_eq!((d.route.as_str(), d.confidence), ("code", PATTERN));

        let d = c.classify("How do I reverse a linked list?", 30, None);
        assert_eq!(d.route, "code");
        assert!(d.reason.starts_with("similar (1.00)"), "{}", d.reason);

        let d = c.classify("Summarise this", 5000, None);
        assert_eq!((d.route.as_str(), d.confidence), ("long", LENGTH));
        assert_eq!(d.candidates, ["long", "general"]);
    }

    #[test]
    fn below_the_threshold_the_default_answers() {
        let c = Classifier::new(&router()).unwrap();
        let d = c.classify("What is the capital of France?", 30, None);
        assert_eq!(d.route, "default");
        assert_eq!(d.candidates, ["general"]);
        assert!(d.confidence < 0.35);
        assert!(d.reason.contains("threshold"), "{}", d.reason);
        // Substrings are not words: "trust" is not "rust".
        assert_eq!(c.classify("I trust you", 11, None).route, "default");
    }

    #[test]
    fn bad_rules_are_refused_by_name() {
        let mut r = router();
        r.routes[0].patterns = vec!["(".into()];
        let err = Classifier::new(&r).err().expect("a bad pattern is refused");
        assert!(err.contains("route `code`"), "{err}");
        r.threshold = 2.0;
        assert!(Classifier::new(&r).is_err());
    }
}
