//! Which sites an API caller speaks of: the `site` parameter every endpoint
//! takes (read apart from the query the endpoint itself parses), and the
//! list `GET /api/sites` answers: only the sites the caller's grant covers
//! (the dashboard's site switcher), and the one the request's host names.

use crate::auth::scope::{Grant, Role};
use crate::config::sites::Deployment;
use serde::Serialize;

/// `GET /api/sites`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteList {
    pub sites: Vec<SiteEntry>,
    /// The site the dashboard shows first: the request host's, when the
    /// caller sees it, else the first listed; `None` when none is listed.
    pub current: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteEntry {
    pub name: String,
    /// The site's public base URL (`url` in the config; may be empty).
    pub url: String,
    pub timezone: String,
    /// `read` or `write`: what the caller may do there.
    pub role: &'static str,
}

/// The sites of `deployment` that `grant` covers, for a request to `host`.
pub fn site_list(deployment: &Deployment, grant: &Grant, host: &str) -> SiteList {
    let sites: Vec<SiteEntry> = deployment
        .sites
        .iter()
        .filter(|c| grant.sites.covers(&c.site.name))
        .map(|c| SiteEntry {
            name: c.site.name.clone(),
            url: c.site.url.clone(),
            timezone: c.time.zone.clone(),
            role: match grant.role {
                Role::Read => "read",
                Role::Write => "write",
            },
        })
        .collect();
    let current = deployment
        .choose(None, host, |s| grant.sites.covers(s))
        .ok()
        .map(|c| c.site.name.clone())
        .or_else(|| sites.first().map(|s| s.name.clone()));
    SiteList { sites, current }
}

/// Splits an API request's query string into its `site` parameter (as
/// sent: a site name needs no escaping, and an escaped one names no site)
/// and the rest, which the endpoint parses as before sites existed.
pub fn split_site(query: &str) -> (Option<&str>, String) {
    let mut site = None;
    let mut rest: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("site", value)) => site = Some(value),
            None if pair == "site" => site = Some(""),
            _ => rest.push(pair),
        }
    }
    (site, rest.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scope::Sites;
    use crate::config::parse_deployment;

    fn two_sites() -> Deployment {
        parse_deployment(
            r#"
[[sites]]
name = "shop"
hosts = ["shop.example.com"]
url = "https://shop.example.com"
timezone = "Europe/Berlin"

[[sites]]
name = "blog"
hosts = ["blog.example.com"]
"#,
            "bpm.toml",
        )
        .unwrap()
    }

    fn grant(sites: Sites, role: Role) -> Grant {
        Grant {
            name: "t".into(),
            sites,
            role,
        }
    }

    #[test]
    fn the_list_holds_only_the_callers_sites() {
        let d = two_sites();
        let admin = site_list(&d, &Grant::admin(), "blog.example.com");
        let names: Vec<&str> = admin.sites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["shop", "blog"]);
        assert_eq!(admin.current.as_deref(), Some("blog"));
        assert_eq!(admin.sites[0].timezone, "Europe/Berlin");
        assert_eq!(admin.sites[0].role, "write");

        let blog_reader = grant(Sites::Only(vec!["blog".into()]), Role::Read);
        let list = site_list(&d, &blog_reader, "shop.example.com");
        assert_eq!(list.sites.len(), 1);
        assert_eq!(list.sites[0].name, "blog");
        assert_eq!(list.sites[0].role, "read");
        // On the shop's host the blog reader's dashboard opens the blog.
        assert_eq!(list.current.as_deref(), Some("blog"));
        let json = serde_json::to_string(&list).unwrap();
        assert!(!json.contains("shop"), "{json}");
        let on_preview = site_list(&d, &blog_reader, "bpm.workers.dev");
        assert_eq!(on_preview.current.as_deref(), Some("blog"));
    }

    #[test]
    fn the_site_parameter_is_read_apart() {
        assert_eq!(
            split_site("range=24h&site=shop&metric=logins"),
            (Some("shop"), "range=24h&metric=logins".to_string())
        );
        assert_eq!(split_site("range=24h"), (None, "range=24h".to_string()));
        assert_eq!(split_site(""), (None, String::new()));
        assert_eq!(split_site("site="), (Some(""), String::new()));
        // `sites=` is another parameter.
        assert_eq!(split_site("sites=x"), (None, "sites=x".to_string()));
    }
}
