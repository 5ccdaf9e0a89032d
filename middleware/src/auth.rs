//! Identity: `Authorization: Bearer` API keys and JWTs, as a tower layer over
//! the HTTP service. The caller's identity becomes the tenant that memory and
//! budgets are kept for; `/health`, `/ready` and CORS preflights stay open.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::response::{IntoResponse, Response};
use ferrite_openapi::anthropic::AnthropicError;
use ferrite_openapi::{ApiError, ErrorCode};
use futures::future::{Either, Ready};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

/// Who is calling. Present in request extensions on authenticated routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub tenant: String,
    pub scopes: Vec<String>,
}

impl Identity {
    /// The caller when authentication is off: one shared tenant, all scopes.
    pub fn anonymous() -> Self {
        Self {
            tenant: "default".into(),
            scopes: vec!["*".into()],
        }
    }

    /// Whether the caller holds `scope` (or `*`).
    pub fn holds(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == "*")
    }

    /// 403 unless the caller holds `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        match self.holds(scope) {
            true => Ok(()),
            false => Err(ApiError::missing_scope(scope, None)),
        }
    }
}

/// `[auth]` in the config. Authentication is on when any key or a JWT
/// verifier is configured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// One unnamed key (tenant `default`), handy as `FERRITE_AUTH__API_KEY`.
    pub api_key: Option<String>,
    pub api_keys: Vec<ApiKey>,
    pub jwt: Option<JwtConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// The tenant this key speaks for.
    pub name: String,
    /// The key itself, or
    pub key: Option<String>,
    /// its SHA-256 as hex, so the config need not hold the secret.
    pub sha256: Option<String>,
    /// Scopes granted; all when omitted.
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The one algorithm accepted: HS256/384/512, RS256/384/512, ES256/384, EdDSA.
    pub algorithm: String,
    /// Shared secret for HS*.
    pub secret: Option<String>,
    /// PEM public key for RS*/ES*/EdDSA, inline or from a file.
    pub public_key: Option<String>,
    pub public_key_file: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`/`nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_leeway() -> u64 {
    30
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("auth.api_keys entry `{0}` needs exactly one of `key` or `sha256` (64 hex digits)")]
    Key(String),
    #[error("auth.jwt: {0}")]
    Jwt(String),
}

struct KeyEntry {
    digest: [u8; 32],
    identity: Identity,
}

struct Jwt {
    key: DecodingKey,
    validation: Validation,
}

/// Checks bearer tokens against the configured keys and JWT verifier.
pub struct Authenticator {
    keys: Vec<KeyEntry>,
    jwt: Option<Jwt>,
}

#[derive(Deserialize)]
struct Claims {
    /// Required (the library checks it is there); optional here so that a
    /// token without it is told so rather than called malformed.
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex.trim()).ok()?;
    bytes.try_into().ok()
}

/// Longer credentials are refused unread: no key or JWT of ours is near it.
const MAX_TOKEN_BYTES: usize = 8192;

/// The credential of an `Authorization: Bearer <token>` header; the scheme
/// name is case-insensitive (RFC 9110).
fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The `Authorization` header, or else Anthropic's `x-api-key` read as a
/// Bearer token.
fn credential(headers: &header::HeaderMap) -> Result<Option<String>, ApiError> {
    let text = |v: &header::HeaderValue| {
        v.to_str().map(str::to_string).map_err(|_| {
            unauthorized("The credential header holds bytes no API key or JWT contains.")
        })
    };
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        return text(v).map(Some);
    }
    match headers.get("x-api-key") {
        Some(v) => text(v).map(|key| Some(format!("Bearer {key}"))),
        None => Ok(None),
    }
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(401, "invalid_request_error", message).with_code(ErrorCode::InvalidApiKey)
}

impl Authenticator {
    /// `None` when nothing is configured: authentication is off.
    pub fn from_config(cfg: &AuthConfig) -> Result<Option<Self>, AuthConfigError> {
        let mut keys = Vec::new();
        if let Some(key) = &cfg.api_key {
            keys.push(KeyEntry {
                digest: sha256(key.as_bytes()),
                identity: Identity::anonymous(),
            });
        }
        for k in &cfg.api_keys {
            let digest = match (&k.key, &k.sha256) {
                (Some(key), None) => sha256(key.as_bytes()),
                (None, Some(hex)) => parse_hex(hex).ok_or(AuthConfigError::Key(k.name.clone()))?,
                _ => return Err(AuthConfigError::Key(k.name.clone())),
            };
            let scopes = k.scopes.clone().unwrap_or_else(|| vec!["*".into()]);
            keys.push(KeyEntry {
                digest,
                identity: Identity {
                    tenant: k.name.clone(),
                    scopes,
                },
            });
        }
        let jwt = cfg.jwt.as_ref().map(Jwt::from_config).transpose()?;
        Ok((!keys.is_empty() || jwt.is_some()).then_some(Self { keys, jwt }))
    }

    pub fn check(&self, authorization: Option<&str>) -> Result<Identity, ApiError> {
        let token = bearer(authorization).ok_or_else(|| {
            unauthorized("You didn't provide an API key. Send it as `Authorization: Bearer <key>` (or `x-api-key`).")
        })?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(unauthorized(
                "The credential is too long to be an API key or a JWT.",
            ));
        }
        // Every key is compared, in constant time, whatever matches first.
        let digest = sha256(token.as_bytes());
        let mut found = None;
        for entry in &self.keys {
            if bool::from(entry.digest.ct_eq(&digest)) {
                found = Some(&entry.identity);
            }
        }
        if let Some(identity) = found {
            return Ok(identity.clone());
        }
        match &self.jwt {
            Some(jwt) if token.matches('.').count() == 2 => jwt.verify(token),
            _ => Err(unauthorized("Incorrect API key provided.")),
        }
    }
}

impl Jwt {
    fn from_config(cfg: &JwtConfig) -> Result<Self, AuthConfigError> {
        let err = |m: String| AuthConfigError::Jwt(m);
        let algorithm: Algorithm = cfg
            .algorithm
            .parse()
            .map_err(|_| err(format!("unknown algorithm `{}`", cfg.algorithm)))?;
        let pem = match (&cfg.public_key, &cfg.public_key_file) {
            (Some(pem), _) => Some(pem.clone().into_bytes()),
            (None, Some(path)) => {
                Some(std::fs::read(path).map_err(|e| err(format!("public_key_file {path}: {e}")))?)
            }
            (None, None) => None,
        };
        let bad_key = |e: jsonwebtoken::errors::Error| err(format!("public key: {e}"));
        let key = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret = cfg.secret.as_deref().filter(|s| !s.is_empty());
                let secret = secret.ok_or_else(|| err(format!("{algorithm:?} needs `secret`")))?;
                DecodingKey::from_secret(secret.as_bytes())
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                let pem = pem.ok_or_else(|| err(format!("{algorithm:?} needs `public_key`")))?;
                DecodingKey::from_rsa_pem(&pem).map_err(bad_key)?
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let pem = pem.ok_or_else(|| err(format!("{algorithm:?} needs `public_key`")))?;
                DecodingKey::from_ec_pem(&pem).map_err(bad_key)?
            }
            Algorithm::EdDSA => {
                let pem = pem.ok_or_else(|| err("EdDSA needs `public_key`".into()))?;
                DecodingKey::from_ed_pem(&pem).map_err(bad_key)?
            }
        };
        // One pinned algorithm: a token naming any other (or `none`, which
        // jsonwebtoken cannot even parse) is refused before its signature.
        let mut validation = Validation::new(algorithm);
        validation.leeway = cfg.leeway_secs;
        validation.validate_nbf = true;
        // A configured issuer or audience is required, not only checked
        // when present: a token that leaves it out is refused.
        let mut required = vec!["exp", "sub"];
        if let Some(iss) = &cfg.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match &cfg.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self { key, validation })
    }

    fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| unauthorized(rejection(e.kind())))?;
        let c = data.claims;
        let tenant = match c.sub {
            Some(sub) if !sub.trim().is_empty() => sub,
            Some(_) => return Err(unauthorized("The token's `sub` claim is empty.")),
            None => return Err(unauthorized("The token lacks the `sub` claim.")),
        };
        let scopes = match (c.scopes, c.scope) {
            (Some(list), _) => list,
            (None, Some(s)) => s.split_whitespace().map(String::from).collect(),
            (None, None) => Vec::new(),
        };
        Ok(Identity { tenant, scopes })
    }
}

/// Why a JWT was refused, in our words: the library's messages name its
/// internals (`Base64(InvalidByte(..))`, `Json(Error(..))`).
fn rejection(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "The token has expired.".into(),
        K::ImmatureSignature => "The token is not valid yet (`nbf`).".into(),
        K::InvalidSignature => "The token's signature does not verify.".into(),
        K::InvalidIssuer => "The token's issuer (`iss`) is not accepted.".into(),
        K::InvalidAudience => "The token's audience (`aud`) is not accepted.".into(),
        K::InvalidAlgorithm | K::InvalidAlgorithmName => {
            "The token is not signed with the configured algorithm.".into()
        }
        K::MissingRequiredClaim(claim) => format!("The token lacks the `{claim}` claim."),
        _ => "The token is malformed.".into(),
    }
}

/// Requires a credential on `/v1/*`, `/api/*` and the token routes; adds [`Identity`] to the
/// request. Without an authenticator every caller is [`Identity::anonymous`].
#[derive(Clone)]
pub struct AuthLayer {
    auth: Option<Arc<Authenticator>>,
    also: Arc<[String]>,
}

impl AuthLayer {
    pub fn new(auth: Option<Authenticator>) -> Self {
        Self::shared(auth.map(Arc::new))
    }

    /// The same, with an authenticator others hold too.
    pub fn shared(auth: Option<Arc<Authenticator>>) -> Self {
        Self {
            auth,
            also: Arc::new([]),
        }
    }

    /// Protects these paths too, and every path below them (APIs served
    /// outside `/v1/` and `/api/`, such as the orchestrator's).
    pub fn protecting(mut self, paths: Vec<String>) -> Self {
        self.also = paths.into();
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            auth: self.auth.clone(),
            also: self.also.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    auth: Option<Arc<Authenticator>>,
    also: Arc<[String]>,
}

/// The routes that reach a model: the APIs, llama-server's token routes at
/// the root (they load models too), and the paths under `also`.
fn protected(req: &Request<Body>, also: &[String]) -> bool {
    let path = req.uri().path();
    let under = |p: &String| {
        path.strip_prefix(p.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    req.method() != Method::OPTIONS
        && (path.starts_with("/v1/")
            || path.starts_with("/api/")
            || matches!(path, "/tokenize" | "/detokenize" | "/apply-template")
            || also.iter().any(under))
}

impl<S> Service<Request<Body>> for Auth<S>
where
    S: Service<Request<Body>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let identity = match (&self.auth, protected(&req, &self.also)) {
            (None, _) => Ok(Identity::anonymous()),
            (Some(_), false) => return Either::Left(self.inner.call(req)),
            (Some(auth), true) => match credential(req.headers()) {
                Ok(presented) => auth.check(presented.as_deref()),
                Err(e) => Err(e),
            },
        };
        match identity {
            Ok(identity) => {
                req.extensions_mut().insert(identity);
                Either::Left(self.inner.call(req))
            }
            Err(e) => {
                // Anthropic's and Ollama's clients read their own error shape.
                let path = req.uri().path();
                let mut resp = if path.starts_with("/v1/messages") {
                    AnthropicError(e).into_response()
                } else if ferrite_openapi::ollama::is_ollama_path(path) {
                    ferrite_openapi::ollama::OllamaError(e).into_response()
                } else {
                    e.into_response()
                };
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                Either::Right(futures::future::ready(Ok(resp)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn paths_under_an_extra_prefix_are_protected_and_no_others() {
        let req = |p: &str| Request::builder().uri(p).body(Body::empty()).unwrap();
        let also = ["/orchestrator".to_string()];
        assert!(protected(&req("/orchestrator/chat"), &also));
        assert!(protected(&req("/orchestrator"), &also));
        assert!(!protected(&req("/orchestratorx"), &also));
        assert!(!protected(&req("/health"), &also));
        assert!(protected(&req("/v1/models"), &[]));
    }

    fn authenticator() -> Authenticator {
        let cfg: AuthConfig = serde_json::from_value(json!({
            "api_keys": [
                {"name": "alice", "key": "sk-alice"},
                {"name": "bob", "sha256": hex::encode(sha256(b"sk-bob")), "scopes": ["chat"]}
            ],
            "jwt": {"algorithm": "HS256", "secret": "s3cret", "issuer": "idp", "audience": "ferrite"}
        }))
        .unwrap();
        Authenticator::from_config(&cfg).unwrap().unwrap()
    }

    fn token(claims: serde_json::Value, secret: &str) -> String {
        let key = EncodingKey::from_secret(secret.as_bytes());
        format!(
            "Bearer {}",
            encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
        )
    }

    #[test]
    fn keys_plain_and_hashed() {
        let a = authenticator();
        assert_eq!(a.check(Some("Bearer sk-alice")).unwrap().tenant, "alice");
        let bob = a.check(Some("Bearer sk-bob")).unwrap();
        assert_eq!(bob.tenant, "bob");
        assert_eq!(bob.require("memory:write").unwrap_err().status, 403);
        for bad in [
            None,
            Some("Bearer"),
            Some("Bearer sk-eve"),
            Some("sk-alice"),
        ] {
            let e = a.check(bad).unwrap_err();
            assert_eq!((e.status, e.code), (401, Some(ErrorCode::InvalidApiKey)));
        }
    }

    #[test]
    fn jwt_claims_are_checked() {
        let a = authenticator();
        let good = json!({"sub": "carol", "iss": "idp", "aud": "ferrite", "exp": now() + 60, "scope": "chat memory:write"});
        let id = a.check(Some(&token(good.clone(), "s3cret"))).unwrap();
        assert_eq!(id.tenant, "carol");
        assert!(id.require("memory:write").is_ok());
        let mut expired = good.clone();
        expired["exp"] = json!(now() - 3600);
        let mut wrong_aud = good.clone();
        wrong_aud["aud"] = json!("other");
        let mut not_yet = good.clone();
        not_yet["nbf"] = json!(now() + 3600);
        let without = |claim: &str| {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove(claim);
            c
        };
        let mut empty_sub = good.clone();
        empty_sub["sub"] = json!("  ");
        for (t, why) in [
            (token(expired, "s3cret"), "expired"),
            (token(wrong_aud, "s3cret"), "audience"),
            (token(not_yet, "s3cret"), "not valid yet"),
            (token(good.clone(), "other-secret"), "signature"),
            (token(without("aud"), "s3cret"), "`aud`"),
            (token(without("iss"), "s3cret"), "`iss`"),
            (token(without("sub"), "s3cret"), "`sub`"),
            (token(empty_sub, "s3cret"), "`sub`"),
            ("Bearer a.b.c".into(), "malformed"),
            ("Bearer e30.e30.!!".into(), "malformed"),
        ] {
            let e = a.check(Some(&t)).unwrap_err();
            assert_eq!(e.status, 401, "{t}");
            assert!(e.message.contains(why), "{t}: {}", e.message);
        }
        // The scheme name is case-insensitive; the token itself is not.
        let good = token(good, "s3cret");
        let raw = good.strip_prefix("Bearer ").unwrap();
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            let t = format!("{scheme}  {raw}");
            assert_eq!(a.check(Some(&t)).unwrap().tenant, "carol", "{t}");
        }
        let huge = format!("Bearer {}", "x".repeat(MAX_TOKEN_BYTES + 1));
        assert!(a
            .check(Some(&huge))
            .unwrap_err()
            .message
            .contains("too long"));
    }
}
