//! Several sites from one deployment: the [`Deployment`] a `bpm.toml`
//! compiles to (one [`Config`] per site, as a single-`[site]` file has
//! always compiled to), and which site a request is counted in, by its
//! `Host` ([`Deployment::site_for`]).
//!
//! A host pattern is a host name (`shop.example.com`) or a `*.` suffix
//! (`*.example.com`: any host below `example.com`, not `example.com`
//! itself). A request's host is compared without its port and trailing dot,
//! ignoring case; an exact pattern wins over a suffix, a longer suffix over
//! a shorter one. Invariants the checker keeps: no pattern names two sites,
//! and every site of a `[[sites]]` file has at least one.

use crate::config::Config;
use serde::{Deserialize, Serialize};

/// What the worker serves: one site from a `[site]` file, or the sites of
/// a `[[sites]]` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub sites: Vec<Config>,
    /// From `[[sites]]`: a request is counted only in the site its host
    /// names. From `[site]` (`false`): every request is the one site's,
    /// whatever its host, as before several sites existed.
    pub by_host: bool,
}

impl Deployment {
    /// The site a request for `host` (its `Host` header) belongs to, if any.
    pub fn site_for(&self, host: &str) -> Option<&Config> {
        self.sites.get(self.index_for(host)?)
    }

    /// The index in [`Deployment::sites`] of [`Deployment::site_for`]'s site.
    pub fn index_for(&self, host: &str) -> Option<usize> {
        index_for_host(&self.sites, self.by_host, host)
    }

    /// The site named `name`.
    pub fn site(&self, name: &str) -> Option<&Config> {
        self.sites.iter().find(|c| c.site.name == name)
    }

    /// The reserved prefix, one for every site (the checker keeps them
    /// equal): the dashboard and API answer under it on each site's hosts.
    pub fn prefix(&self) -> &str {
        self.sites
            .first()
            .map_or("/_bpm", |c| c.site.prefix.as_str())
    }

    /// Every site's name, in the file's order.
    pub fn names(&self) -> Vec<String> {
        self.sites.iter().map(|c| c.site.name.clone()).collect()
    }

    /// The site an API request speaks of: the one it `asked` for
    /// (`?site=`), else the site of its `host`, else (a host of no site,
    /// such as a preview URL) the first site the caller `sees`. A site the
    /// caller does not see is [`NoSuchSite`], exactly as one that does not
    /// exist: a scoped caller learns no other site's name.
    pub fn choose(
        &self,
        asked: Option<&str>,
        host: &str,
        sees: impl Fn(&str) -> bool,
    ) -> Result<&Config, NoSuchSite> {
        let site = match asked {
            Some(name) => self.site(name),
            None => self
                .site_for(host)
                .or_else(|| self.sites.iter().find(|c| sees(&c.site.name))),
        };
        site.filter(|c| sees(&c.site.name)).ok_or(NoSuchSite)
    }

    /// Reads the compiled form produced at build time.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A site that does not exist, or that the caller may not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSuchSite;

impl std::fmt::Display for NoSuchSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no such site")
    }
}

impl std::error::Error for NoSuchSite {}

/// [`Deployment::index_for`] over the sites' configs, wherever they are
/// held (the visitor keeps them in its classifiers, not in a
/// [`Deployment`]).
pub fn index_for_host<'a>(
    sites: impl IntoIterator<Item = &'a Config>,
    by_host: bool,
    host: &str,
) -> Option<usize> {
    let mut sites = sites.into_iter().enumerate().peekable();
    if !by_host {
        return sites.peek().map(|_| 0);
    }
    let host = host_key(host);
    sites
        .filter_map(|(index, site)| {
            site.site
                .hosts
                .iter()
                .filter_map(|p| host_specificity(p, &host))
                .max()
                .map(|s| (s, index))
        })
        .max_by_key(|(s, _)| *s)
        .map(|(_, index)| index)
}

/// A `Host` header as patterns are compared with it: lower-case, without
/// the port and a trailing dot (`[::1]:8787` keeps its brackets).
pub fn host_key(host: &str) -> String {
    let host = host.trim();
    let bare = match host.strip_prefix('[') {
        Some(rest) => rest
            .find(']')
            .and_then(|i| host.get(..i + 2))
            .unwrap_or(host),
        None => host.split(':').next().unwrap_or(host),
    };
    bare.trim_end_matches('.').to_ascii_lowercase()
}

/// How specifically `pattern` names the (already [`host_key`]ed) `host`:
/// `None` when it does not; an exact name beats any suffix, a longer
/// suffix a shorter one.
pub fn host_specificity(pattern: &str, host: &str) -> Option<usize> {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            let below = host.strip_suffix(suffix)?;
            (below.len() > 1 && below.ends_with('.')).then_some(suffix.len())
        }
        None => (pattern == host).then_some(usize::MAX),
    }
}

/// Whether `pattern` names `host` (both lower-case).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    host_specificity(pattern, host).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_toml;

    fn site(name: &str, hosts: &[&str]) -> Config {
        let mut c = parse_toml(&format!("[site]\nname = \"{name}\"\n"), "t").unwrap();
        c.site.hosts = hosts.iter().map(|h| h.to_string()).collect();
        c
    }

    fn two_sites() -> Deployment {
        Deployment {
            sites: vec![
                site("shop", &["shop.example.com", "*.shop.example.com"]),
                site("blog", &["blog.example.com", "*.example.com"]),
            ],
            by_host: true,
        }
    }

    fn name<'a>(d: &'a Deployment, host: &str) -> Option<&'a str> {
        d.site_for(host).map(|c| c.site.name.as_str())
    }

    #[test]
    fn exact_hosts_wildcards_ports_and_case() {
        let d = two_sites();
        assert_eq!(name(&d, "shop.example.com"), Some("shop"));
        assert_eq!(name(&d, "SHOP.Example.COM:443"), Some("shop"));
        assert_eq!(name(&d, "shop.example.com."), Some("shop"));
        // The longer suffix wins: de.shop.example.com is the shop's.
        assert_eq!(name(&d, "de.shop.example.com"), Some("shop"));
        assert_eq!(name(&d, "blog.example.com:8787"), Some("blog"));
        assert_eq!(name(&d, "docs.example.com"), Some("blog"));
        // `*.example.com` is below example.com, not example.com itself.
        assert_eq!(name(&d, "example.com"), None);
        assert_eq!(name(&d, "other.org"), None);
        assert_eq!(name(&d, ""), None);
        assert_eq!(name(&d, "evilexample.com"), None);
    }

    #[test]
    fn a_single_site_file_counts_every_host() {
        let d = Deployment {
            sites: vec![site("demo", &["www.example.com"])],
            by_host: false,
        };
        assert_eq!(name(&d, "anything.test:8787"), Some("demo"));
    }

    const SHARED: &str = r#"
[[receiver]]
name = "ops"
format = "json"
url = "http://127.0.0.1:9/hooks"

[[metric]]
name = "logins"
stage = "retention"
description = "Logins."
match = { method = "POST", path = "/login", status = 302 }

[[metric]]
name = "views"
stage = "referral"
description = "Page views."
match = { method = "GET", path = "/**", status = "2xx" }

[[alert]]
name = "logins_drop"
metric = "logins"
severity = "critical"
receivers = ["ops"]

[[alert]]
name = "views_drop"
metric = "views"
severity = "warning"
receivers = ["ops"]
"#;

    fn parse(sites: &str) -> Result<Deployment, crate::config::ConfigErrors> {
        crate::config::parse_deployment(
            &format!(
                "{SHARED}
{sites}"
            ),
            "bpm.toml",
        )
    }

    fn errors(sites: &str) -> String {
        parse(sites).unwrap_err().to_string()
    }

    #[test]
    fn several_sites_share_definitions_and_add_their_own() {
        let d = parse(
            r#"
[[sites]]
name = "shop"
hosts = ["shop.example.com", "*.shop.example.com"]
timezone = "Europe/Berlin"

[[sites.metric]]
name = "orders"
stage = "revenue"
description = "Orders placed."
match = { method = "POST", path = "/orders", status = "2xx" }

[[sites.alert]]
name = "orders_drop"
metric = "orders"
severity = "critical"
receivers = ["ops", "shop-team"]

[[sites.receiver]]
name = "shop-team"
format = "slack"
url = "https://hooks.slack.com/services/T/B/X"

[[sites]]
name = "blog"
hosts = ["blog.example.com"]
metrics = ["views"]
"#,
        )
        .unwrap();
        assert!(d.by_host);
        let shop = d.site("shop").unwrap();
        let names = |c: &Config| c.metrics.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(shop), ["logins", "views", "orders"]);
        let rules: Vec<&str> = shop.alerts.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(rules, ["logins_drop", "views_drop", "orders_drop"]);
        assert_eq!(shop.receivers.len(), 2);
        assert_eq!(shop.time.zone, "Europe/Berlin");
        // The blog takes only views, and so only the rule on it.
        let blog = d.site("blog").unwrap();
        assert_eq!(names(blog), ["views"]);
        assert_eq!(blog.alerts.len(), 1);
        assert_eq!(blog.time.zone, "UTC");
        assert_eq!(name(&d, "de.shop.example.com"), Some("shop"));
        assert_eq!(name(&d, "blog.example.com"), Some("blog"));
        assert_eq!(name(&d, "example.com"), None);
    }

    #[test]
    fn a_one_site_file_is_one_site_that_counts_every_host() {
        let text = format!("[site]\nname = \"demo\"\nhosts = [\"www.example.com\"]\n{SHARED}");
        let d = crate::config::parse_deployment(&text, "bpm.toml").unwrap();
        assert!(!d.by_host);
        assert_eq!(d.sites.len(), 1);
        assert_eq!(d.sites[0], parse_toml(&text, "bpm.toml").unwrap());
        assert_eq!(name(&d, "localhost:8787"), Some("demo"));
    }

    #[test]
    fn a_host_of_two_sites_is_refused() {
        let e = errors(
            r#"
[[sites]]
name = "a"
hosts = ["shop.example.com", "*.example.com"]

[[sites]]
name = "b"
hosts = ["SHOP.example.com"]

[[sites]]
name = "c"
hosts = ["*.example.com"]
"#,
        );
        assert!(
            e.contains(r#""SHOP.example.com" is also a host of site "a""#),
            "{e}"
        );
        assert!(
            e.contains(r#""*.example.com" is also a host of site "a""#),
            "{e}"
        );
    }

    #[test]
    fn unknown_references_missing_hosts_and_duplicate_names_are_refused() {
        let e = errors(
            r#"
[[sites]]
name = "a"
hosts = ["a.example.com"]
metrics = ["logins", "signups"]
alerts = ["views_drop"]

[[sites]]
name = "a"

[[sites.alert]]
name = "x_drop"
metric = "nope"
severity = "critical"
"#,
        );
        assert!(
            e.contains(r#"sites.metrics: "signups" is not a shared definition"#),
            "{e}"
        );
        assert!(
            e.contains(
                r#"sites.alerts: "views_drop" watches "views", which this site does not take"#
            ),
            "{e}"
        );
        assert!(e.contains(r#"sites.name: "a" names two sites"#), "{e}");
        assert!(
            e.contains("sites.hosts: each of several sites names its hosts"),
            "{e}"
        );
        assert!(e.contains("nope"), "{e}");
        let both = format!(
            "[site]\nname = \"x\"\n{SHARED}\n[[sites]]\nname = \"y\"\nhosts = [\"y.test\"]\n"
        );
        let e = crate::config::parse_deployment(&both, "bpm.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("one [site] or several [[sites]], not both"),
            "{e}"
        );
        let e = parse_toml(
            &format!("{SHARED}\n[[sites]]\nname = \"y\"\nhosts = [\"y.test\"]\n"),
            "bpm.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("several sites"), "{e}");
    }

    #[test]
    fn an_api_request_speaks_of_the_site_it_asks_for_else_its_hosts() {
        let d = two_sites();
        let all = |_: &str| true;
        let only_blog = |s: &str| s == "blog";
        let chosen = |asked, host, sees: &dyn Fn(&str) -> bool| {
            d.choose(asked, host, sees).map(|c| c.site.name.as_str())
        };
        assert_eq!(chosen(None, "shop.example.com", &all), Ok("shop"));
        assert_eq!(chosen(Some("blog"), "shop.example.com", &all), Ok("blog"));
        // A host of no site (a preview URL): the first site the caller sees.
        assert_eq!(chosen(None, "bpm.workers.dev", &all), Ok("shop"));
        assert_eq!(chosen(None, "bpm.workers.dev", &only_blog), Ok("blog"));
        // Another site's host, or its name, is a site that does not exist.
        assert_eq!(
            chosen(None, "shop.example.com", &only_blog),
            Err(NoSuchSite)
        );
        assert_eq!(
            chosen(Some("shop"), "blog.example.com", &only_blog),
            Err(NoSuchSite)
        );
        assert_eq!(
            chosen(Some("nope"), "blog.example.com", &all),
            Err(NoSuchSite)
        );
        assert_eq!(chosen(None, "x.test", &|_: &str| false), Err(NoSuchSite));
    }

    #[test]
    fn the_compiled_form_reads_back_the_same() {
        let d = parse(
            "[[sites]]\nname = \"a\"\nhosts = [\"a.test\"]\n[[sites]]\nname = \"b\"\nhosts = [\"*.b.test\"]\n",
        )
        .unwrap();
        assert_eq!(Deployment::from_json(&d.to_json()).unwrap(), d);
        assert_eq!(d.names(), ["a", "b"]);
        assert_eq!(d.prefix(), "/_bpm");
    }

    #[test]
    fn sites_share_one_prefix() {
        let e = errors(
            "[[sites]]\nname = \"a\"\nhosts = [\"a.test\"]\n[[sites]]\nname = \"b\"\nhosts = [\"b.test\"]\nprefix = \"/_stats\"\n",
        );
        assert!(
            e.contains(r#"sites.prefix: "/_stats" differs from "/_bpm""#),
            "{e}"
        );
    }

    #[test]
    fn host_keys() {
        assert_eq!(host_key(" Shop.Example.com:8080 "), "shop.example.com");
        assert_eq!(host_key("[::1]:8787"), "[::1]");
        assert_eq!(host_key("127.0.0.1:8787"), "127.0.0.1");
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", ".example.com"));
    }
}
