//! bpm-edge's own endpoints under the reserved prefix: the JSON API and the
//! static dashboard files (served from the assets binding, never shadowing
//! the site's own paths).
//!
//! Every API route but `health` needs the API token (bearer header or login
//! session) or, when configured, a Cloudflare Access assertion. Errors are JSON
//! `{"error": "..."}` with a 4xx/5xx status; nothing here reaches the origin.
//! Every answer under the prefix carries the dashboard's security headers
//! ([`SECURITY_HEADERS`]), and no request body is read past its limit.

use crate::{access_keys, site_alerts};
use bpm_edge::alert::annotation::plausible_annotation_id;
use bpm_edge::alert::endpoint::{could_be_receiver, enable_route};
use bpm_edge::alert::silence::plausible_silence_id;
use bpm_edge::auth::access::{
    assertion_from, AccessError, AccessIdentity, AccessPolicy, ASSERTION_HEADER,
};
use bpm_edge::auth::bearer;
use bpm_edge::auth::scope::{action, AccessRoles, Decision, Grant, TokenTable};
use bpm_edge::auth::{
    authorise, check_csrf, check_token, cookie_value, issue_session, screen_token, session_cookie,
    AuthError, Authorised, Credentials, CSRF_HEADER, SESSION_COOKIE, SESSION_SECS,
};
use bpm_edge::config::{Config, MetricKind};
use bpm_edge::decimal::round_to;
use bpm_edge::report::query::QueryError;
use bpm_edge::report::referral_report::{self, ReportQuery};
use bpm_edge::report::series::{build_response, SeriesQuery};
use bpm_edge::report::sites::{site_list, split_site};
use bpm_edge::report::uniques::UniquesQuery;
use bpm_edge::{CONFIG_HASH, VERSION};
use bpm_edge_shell::{shards, Served};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use std::rc::Rc;
use worker::{Env, Headers, Method, Request, Response, Result};

/// Sent with every answer under the prefix: the dashboard loads only its
/// own files, is never framed, never sniffed, never sends a referrer.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

/// Most bytes of a login body, and of a silence.
const MAX_LOGIN_BYTES: usize = 4 * 1024;
const MAX_SILENCE_BYTES: usize = 16 * 1024;
/// The largest annotation body: every field is bounded well below this.
const MAX_ANNOTATION_BYTES: usize = 4 * 1024;
/// The largest simulation request body: a rule name and a few fields.
const MAX_SIMULATE_BYTES: usize = 4 * 1024;

pub async fn handle(
    req: Request,
    env: &Env,
    served: Option<Rc<Served>>,
    prefix: &str,
) -> Result<Response> {
    let resp = route(req, env, served, prefix).await?;
    let headers = Headers::new();
    for (name, value) in resp.headers().entries() {
        headers.append(&name, &value)?;
    }
    for (name, value) in SECURITY_HEADERS {
        headers.set(name, value)?;
    }
    Ok(resp.with_headers(headers))
}

/// Reads the body, at most `limit` bytes: `None` when it is longer (by its
/// `Content-Length`, or once the stream passes the limit; the rest is never
/// read or held).
async fn read_bounded(req: &mut Request, limit: usize) -> Result<Option<Vec<u8>>> {
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let Ok(mut stream) = req.stream() else {
        return Ok(Some(Vec::new()));
    };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// [`read_bounded`] as UTF-8 text (invalid sequences replaced).
async fn read_text(req: &mut Request, limit: usize) -> Result<Option<String>> {
    Ok(read_bounded(req, limit)
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

async fn route(
    mut req: Request,
    env: &Env,
    served: Option<Rc<Served>>,
    prefix: &str,
) -> Result<Response> {
    let path = req.path();
    let rest = path.get(prefix.len()..).unwrap_or("");
    let Some(route) = rest.strip_prefix("/api/") else {
        return static_file(&req, env, prefix, rest).await;
    };
    let Some(served) = served else {
        return json_error(503, "bpm-edge's compiled configuration could not be read");
    };
    let deployment = served.deployment();
    let url = req.url()?;
    let host = url.host_str().unwrap_or("").to_string();
    if route == "health" && req.method() == Method::Get {
        // Unauthenticated: the host's own site, never another's.
        let metrics = deployment.site_for(&host).map_or(0, |c| c.metrics.len());
        return json_response(
            200,
            &json!({
                "name": "bpm-edge",
                "version": VERSION,
                "config_hash": CONFIG_HASH,
                "metrics": metrics,
            }),
        );
    }
    let configured = bpm_edge_shell::env_string(env, "BPM_API_TOKEN");
    let token = match screen_token(configured.as_deref(), &host) {
        Ok(t) => TokenSetting::Usable(t),
        Err(e) => TokenSetting::Unusable(e),
    };
    let names = deployment.names();
    if route == "session" {
        return session(req, env, &names, token, prefix).await;
    }
    let grant = match caller(&req, env, &names, token).await {
        Ok(c) => match grant_of(c, env, &names) {
            Ok(g) => g,
            Err(refusal) => return refused(refusal),
        },
        Err(refusal) => return refused(refusal),
    };
    if route == "sites" {
        if req.method() != Method::Get {
            return json_error(405, "method not allowed here");
        }
        return json_response(200, &site_list(deployment, &grant, &host));
    }
    // The site asked for (`?site=`), else the host's; the rest of the
    // query is the endpoint's own.
    let (asked, rest_query) = split_site(url.query().unwrap_or(""));
    let Ok(config) = deployment.choose(asked, &host, |s| grant.sites.covers(s)) else {
        return json_error(404, "no such site");
    };
    match grant.decide(&config.site.name, action(req.method().as_ref(), route)) {
        Decision::Allowed => {}
        Decision::NotFound => return json_error(404, "not found"),
        Decision::Forbidden => {
            return json_error(
                403,
                &format!("{:?} may read, not change: a read-only token", grant.name),
            )
        }
    }
    let query = if rest_query.is_empty() {
        String::new()
    } else {
        format!("?{rest_query}")
    };
    // Asks the site's alert object and hands its answer back.
    let alerts_object = async |method: Method, path: &str, body: Option<String>| {
        relayed(site_alerts::call(env, config, method, path, body).await).await
    };
    match (req.method(), route) {
        (Method::Get, "metrics") => metrics(config),
        (Method::Get, "series") => series(&rest_query, env, config).await,
        (Method::Get, "uniques") => uniques(&rest_query, env, config).await,
        (Method::Get, "stats") => stats(env, config).await,
        (Method::Get, "referrals") => referrals(&rest_query, env, config).await,
        (Method::Get, "alerts") => alerts_object(Method::Get, "/alerts", None).await,
        (Method::Get, "overview") => {
            alerts_object(Method::Get, &format!("/overview{query}"), None).await
        }
        (Method::Get, "alerts/history") => {
            alerts_object(Method::Get, &format!("/history{query}"), None).await
        }
        (Method::Get, "silences") => alerts_object(Method::Get, "/silences", None).await,
        (Method::Post, "silences") => {
            let Some(body) = read_text(&mut req, MAX_SILENCE_BYTES).await? else {
                return json_error(413, "a silence is at most 16 KiB of JSON");
            };
            alerts_object(Method::Post, "/silences", Some(body)).await
        }
        (Method::Delete, r) if r.starts_with("silences/") => {
            let id = r.trim_start_matches("silences/");
            if !plausible_silence_id(id) {
                return json_error(404, "no such silence");
            }
            alerts_object(Method::Delete, &format!("/silences/{id}"), None).await
        }
        (Method::Post, r) if enable_route(r).is_some() => {
            // Re-enables a receiver a 410 disabled (see site_alerts).
            let name = enable_route(r).unwrap_or_default();
            if !could_be_receiver(name) {
                return json_error(404, "no such receiver");
            }
            let path = format!("/receivers/{name}/enable");
            alerts_object(Method::Post, &path, None).await
        }
        (Method::Post, "backfill") => backfill(req, env, config).await,
        (Method::Get, "annotations") => {
            alerts_object(Method::Get, &format!("/annotations{query}"), None).await
        }
        (Method::Post, "annotations") => {
            let Some(body) = read_text(&mut req, MAX_ANNOTATION_BYTES).await? else {
                return json_error(413, "an annotation is at most 4 KiB of JSON");
            };
            alerts_object(Method::Post, "/annotations", Some(body)).await
        }
        (Method::Delete, r) if r.starts_with("annotations/") => {
            let id = r.trim_start_matches("annotations/");
            if !plausible_annotation_id(id) {
                return json_error(404, "no such annotation");
            }
            alerts_object(Method::Delete, &format!("/annotations/{id}"), None).await
        }
        (Method::Get, "digest") => {
            alerts_object(Method::Get, &format!("/digest{query}"), None).await
        }
        (Method::Post, "simulate") => {
            let Some(body) = read_text(&mut req, MAX_SIMULATE_BYTES).await? else {
                return json_error(413, "a simulation request is at most 4 KiB of JSON");
            };
            alerts_object(Method::Post, "/simulate", Some(body)).await
        }
        (
            _,
            "metrics" | "series" | "uniques" | "stats" | "alerts" | "alerts/history" | "silences"
            | "backfill" | "overview" | "referrals" | "simulate" | "annotations" | "digest",
        ) => json_error(405, "method not allowed here"),
        _ => json_error(404, "no such API endpoint"),
    }
}

/// The configured API token, as this request may use it.
#[derive(Clone, Copy)]
enum TokenSetting<'a> {
    Usable(&'a str),
    /// Missing, too short, or the demo token away from loopback: nothing is
    /// authorised by a token, and a refusal says why.
    Unusable(AuthError),
}

impl<'a> TokenSetting<'a> {
    fn token(self) -> Option<&'a str> {
        match self {
            TokenSetting::Usable(t) => Some(t),
            TokenSetting::Unusable(_) => None,
        }
    }

    /// The refusal to give instead of "not configured".
    fn explain(self, e: AuthError) -> AuthError {
        match (self, e) {
            (TokenSetting::Unusable(why), AuthError::NotConfigured) => why,
            _ => e,
        }
    }
}

/// Who an authorised request speaks for.
enum Caller {
    /// The API token, as a bearer header or through a login session.
    Token(Authorised),
    /// A token of `BPM_API_TOKENS`, with its scope: as a bearer header, or
    /// through a login session (which expires then).
    Scoped(Grant, Option<i64>),
    /// A user or service token that passed the Cloudflare Access application.
    Access(AccessIdentity),
}

/// Why a request was refused.
enum Refusal {
    Token(AuthError),
    Access(AccessError),
    /// `BPM_API_TOKENS` or `BPM_ACCESS_ROLES` is set but invalid.
    Scopes(String),
    /// An Access identity `BPM_ACCESS_ROLES` names in no rule.
    NoRole(String),
}

/// What `caller` may do: the admin token everything; a scoped token its
/// grant; an Access identity what `BPM_ACCESS_ROLES` gives it, or
/// everything when that var is unset (as before roles existed).
fn grant_of(caller: Caller, env: &Env, names: &[String]) -> std::result::Result<Grant, Refusal> {
    match caller {
        Caller::Token(_) => Ok(Grant::admin()),
        Caller::Scoped(g, _) => Ok(g),
        Caller::Access(identity) => {
            let Some(json) = bpm_edge_shell::env_string(env, "BPM_ACCESS_ROLES") else {
                return Ok(Grant::admin());
            };
            let roles = AccessRoles::parse(&json, names)
                .map_err(|e| Refusal::Scopes(format!("BPM_ACCESS_ROLES is invalid: {e}")))?;
            roles
                .grant(&identity.name)
                .ok_or(Refusal::NoRole(identity.name))
        }
    }
}

/// The scoped tokens of `BPM_API_TOKENS`; `None` when it is unset.
fn token_table(env: &Env, names: &[String]) -> std::result::Result<Option<TokenTable>, Refusal> {
    let Some(json) = bpm_edge_shell::env_string(env, "BPM_API_TOKENS") else {
        return Ok(None);
    };
    TokenTable::parse(&json, names)
        .map(Some)
        .map_err(|e| Refusal::Scopes(format!("BPM_API_TOKENS is invalid: {e}")))
}

/// The scoped caller a bearer header or a scoped session cookie speaks
/// for, if `BPM_API_TOKENS` has its token. A session, being ambient, also
/// needs the anti-forgery header for a change.
fn scoped_caller(
    env: &Env,
    names: &[String],
    creds: Credentials<'_>,
    now: i64,
) -> std::result::Result<Option<Caller>, Refusal> {
    let session = creds
        .cookie
        .and_then(|c| cookie_value(c, SESSION_COOKIE))
        .filter(|v| v.starts_with("s1."));
    let offered = bearer(creds.authorization);
    if offered.is_none() && session.is_none() {
        return Ok(None);
    }
    let Some(table) = token_table(env, names)? else {
        return Ok(None);
    };
    if let Some(offered) = offered {
        return Ok(table.find(offered).map(|g| Caller::Scoped(g.clone(), None)));
    }
    let Some(session) = session.filter(|_| creds.authorization.is_none()) else {
        return Ok(None);
    };
    let (grant, expires) = table.check_session(session, now).map_err(Refusal::Token)?;
    check_csrf(creds).map_err(Refusal::Token)?;
    Ok(Some(Caller::Scoped(grant.clone(), Some(expires))))
}

/// Authorises a request by bearer token, session cookie or, when the Access
/// vars are set and no bearer header was sent, a Cloudflare Access
/// assertion. Cookie and Access credentials are ambient, so a change they
/// authorise also needs the anti-forgery header.
async fn caller(
    req: &Request,
    env: &Env,
    names: &[String],
    setting: TokenSetting<'_>,
) -> std::result::Result<Caller, Refusal> {
    let token = setting.token();
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (authorization, cookie, csrf, assertion) = (
        header("authorization"),
        header("cookie"),
        header(CSRF_HEADER),
        header(ASSERTION_HEADER),
    );
    let creds = Credentials {
        authorization: authorization.as_deref(),
        cookie: cookie.as_deref(),
        csrf: csrf.as_deref(),
        changes_state: !matches!(req.method(), Method::Get | Method::Head),
    };
    let now = bpm_edge_shell::now_secs();
    let by_token = match authorise(creds, token, now) {
        Ok(a) => return Ok(Caller::Token(a)),
        Err(e) => setting.explain(e),
    };
    if let Some(scoped) = scoped_caller(env, names, creds, now)? {
        return Ok(scoped);
    }
    let jwt = assertion_from(assertion.as_deref(), cookie.as_deref());
    let (None, Some(jwt)) = (creds.authorization, jwt) else {
        return Err(Refusal::Token(by_token));
    };
    let policy = match AccessPolicy::from_vars(
        bpm_edge_shell::env_string(env, "BPM_ACCESS_TEAM_DOMAIN").as_deref(),
        bpm_edge_shell::env_string(env, "BPM_ACCESS_AUD").as_deref(),
    ) {
        Ok(Some(p)) => p,
        Ok(None) => return Err(Refusal::Token(by_token)),
        Err(e) => return Err(Refusal::Access(AccessError::Misconfigured(e))),
    };
    let identity = access_keys::verify(&policy, jwt, now)
        .await
        .map_err(Refusal::Access)?;
    check_csrf(creds).map_err(Refusal::Token)?;
    Ok(Caller::Access(identity))
}

fn refused(refusal: Refusal) -> Result<Response> {
    match refusal {
        Refusal::Scopes(e) => json_error(503, &e),
        Refusal::NoRole(who) => json_error(
            403,
            &format!("{who} has no role here: BPM_ACCESS_ROLES names them in no rule"),
        ),
        Refusal::Token(e) => unauthorised(e),
        Refusal::Access(e @ (AccessError::KeysUnavailable(_) | AccessError::Misconfigured(_))) => {
            json_error(503, &e.to_string())
        }
        Refusal::Access(e) => json_error(401, &e.to_string()),
    }
}

fn unauthorised(e: AuthError) -> Result<Response> {
    let mut resp = json_error(401, e.message())?;
    resp.headers_mut()
        .set("www-authenticate", "Bearer realm=\"bpm-edge\"")?;
    Ok(resp)
}

/// `/api/session`: the dashboard's login (`POST {"token"}` sets an HttpOnly
/// cookie), its check (`GET`, which also answers for Cloudflare Access) and
/// logout (`DELETE`).
async fn session(
    mut req: Request,
    env: &Env,
    names: &[String],
    setting: TokenSetting<'_>,
    prefix: &str,
) -> Result<Response> {
    let now = bpm_edge_shell::now_secs();
    let token = setting.token();
    let secure = req.url().map(|u| u.scheme() == "https").unwrap_or(true);
    // The cookie is scoped to bpm-edge's own prefix; the proxy also strips
    // it from anything forwarded to the origin.
    let cookie = |value: &str, max_age: i64| session_cookie(value, max_age, prefix, secure);
    match req.method() {
        Method::Post => {
            let Some(body) = read_text(&mut req, MAX_LOGIN_BYTES).await? else {
                return json_error(413, "a login is at most 4 KiB of JSON");
            };
            let offered = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["token"].as_str().map(str::to_owned));
            let Some(offered) = offered else {
                return json_error(400, "expected JSON {\"token\": \"...\"}");
            };
            // The admin token, else a scoped token of `BPM_API_TOKENS`.
            let value = match check_token(&offered, token).and_then(|()| issue_session(token, now))
            {
                Ok((value, _)) => value,
                Err(e) => {
                    let scoped = match token_table(env, names) {
                        Ok(table) => table.and_then(|t| {
                            t.issue_session(&offered, now).map(|(value, _, _)| value)
                        }),
                        Err(refusal) => return refused(refusal),
                    };
                    match scoped {
                        Some(value) => value,
                        None => return unauthorised(setting.explain(e)),
                    }
                }
            };
            let mut resp = Response::empty()?.with_status(204);
            resp.headers_mut()
                .set("set-cookie", &cookie(&value, SESSION_SECS))?;
            resp.headers_mut().set("cache-control", "no-store")?;
            Ok(resp)
        }
        Method::Get => match caller(&req, env, names, setting).await {
            Ok(Caller::Token(Authorised::Session { expires })) => json_response(
                200,
                &json!({
                    "authenticated": true, "via": "session",
                    "expires": bpm_edge::time::format_time(expires),
                }),
            ),
            Ok(Caller::Token(Authorised::Bearer)) => {
                json_response(200, &json!({ "authenticated": true, "via": "token" }))
            }
            Ok(Caller::Scoped(g, expires)) => json_response(
                200,
                &json!({
                    "authenticated": true,
                    "via": if expires.is_some() { "session" } else { "scoped token" },
                    "name": g.name,
                    "expires": expires.map(bpm_edge::time::format_time),
                }),
            ),
            Ok(Caller::Access(identity)) => json_response(
                200,
                &json!({
                    "authenticated": true, "via": "access", "name": identity.name,
                    "expires": bpm_edge::time::format_time(identity.expires),
                    "logout": AccessPolicy::logout_path(),
                }),
            ),
            Err(refusal) => refused(refusal),
        },
        Method::Delete => {
            let mut resp = Response::empty()?.with_status(204);
            resp.headers_mut().set("set-cookie", &cookie("", 0))?;
            Ok(resp)
        }
        _ => json_error(405, "method not allowed here"),
    }
}

/// The alert object's answer to hand back, or `503` when it could not be
/// asked.
async fn relayed(answer: Result<Response>) -> Result<Response> {
    match answer {
        Ok(mut resp) => {
            // A fetched response's headers are immutable: answer afresh.
            let status = resp.status_code();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            json_response(status, &body)
        }
        Err(e) => json_error(503, &format!("alert storage unavailable: {e}")),
    }
}

/// Most bytes one backfill request may carry.
const MAX_BACKFILL_BYTES: usize = 32 * 1024 * 1024;

/// `POST /api/backfill`: imports `timestamp,metric,count` CSV into the
/// counter shards (for the dashboard) and the alert object (for baselines).
async fn backfill(mut req: Request, env: &Env, config: &Config) -> Result<Response> {
    let Some(text) = read_text(&mut req, MAX_BACKFILL_BYTES).await? else {
        return json_error(413, "at most 32 MiB per request; split the file");
    };
    let counts = match bpm_edge::history::backfill::parse(&text, config) {
        Ok(c) => c,
        Err(errors) => {
            let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            return json_response(
                400,
                &json!({ "error": "the CSV has invalid lines; nothing was imported", "lines": list }),
            );
        }
    };
    let batches = counts.batches(config.storage.shards);
    let mut applied = 0;
    for (shard, batch) in &batches {
        let name = shards::shard_name(&config.site.name, *shard);
        let body =
            serde_json::to_string(batch).map_err(|e| worker::Error::RustError(e.to_string()))?;
        match shards::call(env, &name, "/import", Some(body)).await {
            Ok(mut resp) if resp.status_code() == 200 => {
                let v: serde_json::Value = resp.json().await.unwrap_or_default();
                if v["applied"].as_bool() == Some(true) {
                    applied += 1;
                }
            }
            Ok(resp) => {
                return json_error(
                    503,
                    &format!(
                        "{name} answered {}; retry the same request",
                        resp.status_code()
                    ),
                )
            }
            Err(e) => return json_error(503, &format!("{name}: {e}; retry the same request")),
        }
    }
    let body = serde_json::to_string(&json!({ "minutes": counts.minute_counts() }))
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    let alerts_applied =
        match site_alerts::call(env, config, Method::Post, "/backfill", Some(body)).await {
            Ok(mut resp) if resp.status_code() == 200 => {
                let v: serde_json::Value = resp.json().await.unwrap_or_default();
                v["applied"].as_bool() == Some(true)
            }
            Ok(resp) => {
                return json_error(
                    503,
                    &format!(
                        "the alert object answered {}; retry the same request",
                        resp.status_code()
                    ),
                )
            }
            Err(e) => {
                return json_error(
                    503,
                    &format!("the alert object: {e}; retry the same request"),
                )
            }
        };
    json_response(
        200,
        &json!({
            "minutes": counts.minutes.len(),
            "total": counts.total(),
            "batches": batches.len(),
            "batches_applied": applied,
            "baseline_applied": alerts_applied,
            "duplicate": applied == 0 && !alerts_applied,
        }),
    )
}

#[derive(Serialize)]
struct MetricInfo<'a> {
    name: &'a str,
    stage: &'static str,
    description: &'a str,
    owner: &'a str,
    runbook: &'a str,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    numerator: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    denominator: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scale: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_denominator: Option<u64>,
    dimensions: Vec<&'static str>,
    /// Agent kinds a counted metric counts (`count` in the config).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    count: Vec<&'static str>,
}

fn metrics(config: &Config) -> Result<Response> {
    let list: Vec<MetricInfo> = config
        .metrics
        .iter()
        .map(|m| {
            let ratio = match &m.kind {
                MetricKind::Ratio(r) => Some(r),
                MetricKind::Counted { .. } => None,
            };
            let dimensions = match &m.kind {
                MetricKind::Counted { dimensions, .. } => {
                    let mut d = vec!["status", "kind"];
                    d.extend(dimensions.iter().map(|x| x.as_str()));
                    d
                }
                MetricKind::Ratio(_) => Vec::new(),
            };
            let count = match &m.kind {
                MetricKind::Counted { count, .. } => count.iter().map(|k| k.as_str()).collect(),
                MetricKind::Ratio(_) => Vec::new(),
            };
            MetricInfo {
                name: &m.name,
                stage: m.stage.as_str(),
                description: &m.description,
                owner: &m.owner,
                runbook: &m.runbook,
                kind: m.kind_name(),
                numerator: ratio.map(|r| r.numerator.as_str()),
                denominator: ratio.map(|r| r.denominator.as_str()),
                scale: ratio.map(|r| r.scale),
                min_denominator: ratio.map(|r| r.min_denominator),
                dimensions,
                count,
            }
        })
        .collect();
    json_response(200, &json!({ "metrics": list }))
}

async fn series(query: &str, env: &Env, config: &Config) -> Result<Response> {
    let query = match SeriesQuery::parse(query, config) {
        Ok(q) => q,
        Err(e) => return refused_query(&e),
    };
    let shard_query = query.shard_query(config);
    let rows = match shards::read_rows(env, config, &shard_query).await {
        Ok(rows) => rows,
        Err(e) => return json_error(503, &format!("counter storage unavailable: {e}")),
    };
    json_response(200, &build_response(&query, config, rows))
}

/// `GET /api/referrals`: the referral report, as JSON or (`format=csv`) the
/// same numbers as a CSV download.
async fn referrals(query: &str, env: &Env, config: &Config) -> Result<Response> {
    let query = match ReportQuery::parse(query, config, &config.time) {
        Ok(q) => q,
        Err(e) => return refused_query(&e),
    };
    let (current, previous) = query.shard_queries();
    let read_previous = async {
        match &previous {
            Some(p) => shards::read_rows(env, config, p).await.map(Some),
            None => Ok(None),
        }
    };
    // Rows, comparison rows and visitor sketches are read concurrently.
    let (rows, before, uniques) = futures_util::future::join3(
        shards::read_rows(env, config, &current),
        read_previous,
        referral_uniques(env, config, &query),
    )
    .await;
    let (rows, before) = match (rows, before) {
        (Ok(r), Ok(b)) => (r, b),
        (Err(e), _) | (_, Err(e)) => {
            return json_error(503, &format!("counter storage unavailable: {e}"))
        }
    };
    let report = referral_report::build(&query, &rows, before.as_deref(), uniques);
    if !query.csv {
        return json_response(200, &report);
    }
    let mut resp = Response::ok(referral_report::to_csv(&report))?;
    let headers = resp.headers_mut();
    headers.set("content-type", "text/csv; charset=utf-8")?;
    headers.set(
        "content-disposition",
        &format!(
            "attachment; filename=\"{}\"",
            referral_report::csv_filename(&report)
        ),
    )?;
    headers.set("cache-control", "no-store")?;
    Ok(resp)
}

/// Unique visitors of the report's range and comparison (whole hours:
/// sketches are hourly). `None` when they cannot be read: the rest of the
/// report stands without them.
async fn referral_uniques(
    env: &Env,
    config: &Config,
    q: &ReportQuery,
) -> Option<referral_report::Uniques> {
    let ((from, to), previous) = q.uniques_ranges();
    let read_previous = async {
        match previous {
            Some((f, t)) => shards::read_uniques(env, config, &q.metric, f, t)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let (now, previous) = futures_util::future::join(
        shards::read_uniques(env, config, &q.metric, from, to),
        read_previous,
    )
    .await;
    let (now, previous) = (now.ok()?, previous.ok()?);
    Some(referral_report::Uniques::from_estimates(
        now.estimate(),
        previous.map(|p| p.estimate()),
    ))
}

/// `GET /api/uniques`: distinct visitors per hour and over the range.
async fn uniques(query: &str, env: &Env, config: &Config) -> Result<Response> {
    let query = match UniquesQuery::parse(query, config) {
        Ok(q) => q,
        Err(e) => return refused_query(&e),
    };
    let sketches = if query.hourly {
        shards::read_sketches(env, config, &query.shard_query()).await
    } else {
        shards::read_uniques(env, config, &query.metric, query.from, query.to)
            .await
            .map(|total| std::collections::BTreeMap::from([(query.from, total)]))
    };
    match sketches {
        Ok(sketches) => json_response(
            200,
            &bpm_edge::report::uniques::build_response(&query, sketches),
        ),
        Err(e) => json_error(503, &format!("counter storage unavailable: {e}")),
    }
}

async fn stats(env: &Env, config: &Config) -> Result<Response> {
    let shards: Vec<serde_json::Value> =
        shards::ask_all::<serde_json::Value>(env, config, "/stats", None)
            .await
            .into_iter()
            .filter_map(|(name, answer)| {
                let mut v = answer.ok()?;
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("shard".into(), json!(name));
                }
                Some(v)
            })
            .collect();
    let sum = |key: &str| -> u64 { shards.iter().filter_map(|s| s[key].as_u64()).sum() };
    let (flushes, requests, rows_written, duplicates) = (
        sum("flushes"),
        sum("requests"),
        sum("rows_written"),
        sum("duplicate_batches"),
    );
    // What Cloudflare bills for counting, per counted visitor request: SQLite
    // rows written, and Durable Object requests (every flush that reached a
    // shard, duplicates included).
    let per_request = |n: u64| (requests > 0).then(|| round_to(n as f64 / requests as f64, 4));
    let totals = json!({
        "flushes": flushes,
        "requests": requests,
        "rows_written": rows_written,
        "duplicate_batches": duplicates,
        "pending_flushes": sum("pending_flushes"),
        "rows_written_per_request": per_request(rows_written),
        "do_requests_per_request": per_request(flushes + duplicates),
    });
    let status = if shards.len() as u32 == config.storage.shards {
        200
    } else {
        503
    };
    json_response(status, &json!({ "shards": shards, "totals": totals }))
}

/// Serves `www/` through the assets binding: `{prefix}/x` is the file `/x`.
async fn static_file(req: &Request, env: &Env, prefix: &str, rest: &str) -> Result<Response> {
    if rest.is_empty() {
        let headers = Headers::new();
        headers.set("location", &format!("{prefix}/"))?;
        return Ok(Response::empty()?.with_status(302).with_headers(headers));
    }
    if req.method() != Method::Get && req.method() != Method::Head {
        return json_error(405, "only GET is supported here");
    }
    let assets = match env.assets("ASSETS") {
        Ok(a) => a,
        Err(_) => return json_error(404, "no dashboard assets are deployed"),
    };
    assets
        .fetch(format!("https://assets.invalid{rest}"), None)
        .await
}

fn json_response<T: Serialize>(status: u16, body: &T) -> Result<Response> {
    let mut resp = Response::from_json(body)?.with_status(status);
    resp.headers_mut().set("cache-control", "no-store")?;
    Ok(resp)
}

fn json_error(status: u16, message: &str) -> Result<Response> {
    json_response(status, &json!({ "error": message }))
}

/// A refused read-path query: `400` with its message.
fn refused_query(e: &QueryError) -> Result<Response> {
    json_error(400, &e.to_string())
}
