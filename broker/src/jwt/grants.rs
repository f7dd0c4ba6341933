//! Grant bindings: which scope and clusters a verified token gets from its claims.
//!
//! A binding is configured as `MATCH=SCOPE@CLUSTERS` (`--jwt-grant`), where MATCH is
//! `group:NAME`, `scope:NAME` or `sub:NAME`, SCOPE is `read` or `admin`, and CLUSTERS is a
//! `|`-separated list of cluster ids or globs (`*` matches any run of characters). Bindings only
//! add: a token gets what every binding it matches grants, and nothing when none matches.

use std::fmt;
use std::str::FromStr;

use kubeline_shared::api::MAX_CLUSTER_ID_LEN;

use crate::auth::Scope;

/// What a binding matches in a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// A value of the groups claim, compared exactly.
    Group(String),
    /// One of the token's scopes (the scopes claim, or `scp`), compared exactly.
    Scope(String),
    /// The token's subject (`sub`), compared exactly.
    Subject(String),
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Group(name) => write!(f, "group:{name}"),
            Self::Scope(name) => write!(f, "scope:{name}"),
            Self::Subject(name) => write!(f, "sub:{name}"),
        }
    }
}

/// What a matched binding grants: a scope on some clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The scope granted on those clusters.
    pub scope: Scope,
    /// Cluster ids or globs (`prod-*`, `*`).
    pub clusters: Vec<String>,
}

impl Grant {
    /// Whether one of the grant's patterns matches `cluster_id`.
    pub fn covers(&self, cluster_id: &str) -> bool {
        self.clusters.iter().any(|p| glob_match(p, cluster_id))
    }
}

/// One `--jwt-grant MATCH=SCOPE@CLUSTERS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantBinding {
    /// What the token must carry.
    pub matcher: Matcher,
    /// What it then gets.
    pub grant: Grant,
}

impl FromStr for GrantBinding {
    type Err = String;

    /// Parses `MATCH=SCOPE@CLUSTERS`. The split is at the **last** `=`, so a group name may
    /// contain `=` (LDAP names such as `cn=sre,ou=people` do); SCOPE and CLUSTERS never do.
    fn from_str(s: &str) -> Result<Self, String> {
        const FORM: &str = "expected MATCH=SCOPE@CLUSTERS, e.g. group:sre=admin@prod-*|dev-1";
        let (matcher, grant) = s.rsplit_once('=').ok_or_else(|| FORM.to_owned())?;
        let (kind, name) = matcher.split_once(':').ok_or_else(|| {
            format!("`{matcher}`: MATCH must be group:NAME, scope:NAME or sub:NAME")
        })?;
        if name.is_empty() {
            return Err(format!("`{matcher}`: the name after `{kind}:` is empty"));
        }
        let matcher = match kind {
            "group" => Matcher::Group(name.to_owned()),
            "scope" => Matcher::Scope(name.to_owned()),
            "sub" => Matcher::Subject(name.to_owned()),
            other => {
                return Err(format!(
                    "`{other}:`: MATCH must be group:NAME, scope:NAME or sub:NAME"
                ));
            }
        };
        let (scope, clusters) = grant
            .split_once('@')
            .ok_or_else(|| format!("`{grant}`: {FORM}"))?;
        let scope: Scope = scope.parse()?;
        let clusters: Vec<String> = clusters.split('|').map(str::to_owned).collect();
        for pattern in &clusters {
            check_pattern(pattern)?;
        }
        Ok(Self {
            matcher,
            grant: Grant { scope, clusters },
        })
    }
}

impl fmt::Display for GrantBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}@{}",
            self.matcher,
            self.grant.scope,
            self.grant.clusters.join("|")
        )
    }
}

/// Checks a cluster pattern: a cluster id in which `*` may stand for any run of characters.
fn check_pattern(pattern: &str) -> Result<(), String> {
    let ok = !pattern.is_empty()
        && pattern.len() <= MAX_CLUSTER_ID_LEN
        && pattern
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cluster pattern `{pattern}`: use 1 to {MAX_CLUSTER_ID_LEN} letters, digits, '-', '_', \
             '.' or '*' (clusters are separated by '|')"
        ))
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (also none) and
/// every other character itself. Linear in practice: the classic backtrack-to-last-star walk.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it currently swallows up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            // Let the last star swallow one more character and retry after it.
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// What a token's claims match among the bindings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted {
    /// The highest scope of the matched bindings; `None` when none matched.
    pub scope: Option<Scope>,
    /// The union of the matched bindings' cluster patterns, in configuration order.
    pub clusters: Vec<String>,
    /// Each matched binding's grant, in configuration order.
    pub grants: Vec<Grant>,
}

/// Matches a token's subject, groups and scopes against the bindings.
pub fn resolve(
    bindings: &[GrantBinding],
    subject: &str,
    groups: &[String],
    scopes: &[String],
) -> Granted {
    let mut granted = Granted::default();
    for binding in bindings {
        let matched = match &binding.matcher {
            Matcher::Group(name) => groups.iter().any(|g| g == name),
            Matcher::Scope(name) => scopes.iter().any(|s| s == name),
            Matcher::Subject(name) => subject == name,
        };
        if !matched {
            continue;
        }
        granted.scope = granted.scope.max(Some(binding.grant.scope));
        for pattern in &binding.grant.clusters {
            if !granted.clusters.contains(pattern) {
                granted.clusters.push(pattern.clone());
            }
        }
        granted.grants.push(binding.grant.clone());
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(s: &str) -> GrantBinding {
        s.parse().unwrap()
    }

    #[test]
    fn bindings_parse_and_print_back() {
        let b = binding("group:sre=admin@*");
        assert_eq!(b.matcher, Matcher::Group("sre".into()));
        assert_eq!(b.grant.scope, Scope::Admin);
        assert_eq!(b.grant.clusters, ["*"]);
        let b = binding("scope:kubeline.read=read@staging-*|dev-1");
        assert_eq!(b.matcher, Matcher::Scope("kubeline.read".into()));
        assert_eq!(b.grant.clusters, ["staging-*", "dev-1"]);
        assert_eq!(b.to_string(), "scope:kubeline.read=read@staging-*|dev-1");
        // A subject may hold `@`, a group `=`: the split is at the last `=`.
        let b = binding("sub:robot@ci.example=read@ci");
        assert_eq!(b.matcher, Matcher::Subject("robot@ci.example".into()));
        let b = binding("group:cn=sre,ou=people=admin@prod");
        assert_eq!(b.matcher, Matcher::Group("cn=sre,ou=people".into()));
    }

    #[test]
    fn bad_bindings_say_what_is_wrong() {
        for (input, needle) in [
            ("", "MATCH=SCOPE@CLUSTERS"),
            ("group:sre", "MATCH=SCOPE@CLUSTERS"),
            ("sre=admin@*", "group:NAME"),
            ("role:sre=admin@*", "MATCH must be"),
            ("group:=admin@*", "empty"),
            ("group:sre=admin", "MATCH=SCOPE@CLUSTERS"),
            ("group:sre=root@*", "unknown scope"),
            ("group:sre=read@", "cluster pattern"),
            ("group:sre=read@a||b", "cluster pattern"),
            ("group:sre=read@a b", "cluster pattern"),
            ("group:sre=read@prod/1", "cluster pattern"),
        ] {
            let err = input.parse::<GrantBinding>().unwrap_err();
            assert!(err.contains(needle), "{input:?}: {err}");
        }
    }

    #[test]
    fn globs_match_as_shell_stars() {
        for (pattern, text, expected) in [
            ("*", "anything", true),
            ("*", "", true),
            ("prod-*", "prod-eu-1", true),
            ("prod-*", "prod-", true),
            ("prod-*", "staging-1", false),
            ("prod-*", "xprod-1", false),
            ("*-eu-*", "prod-eu-1", true),
            ("*-eu-*", "prod-us-1", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("dev-1", "dev-1", true),
            ("dev-1", "dev-10", false),
            ("**", "x", true),
        ] {
            assert_eq!(glob_match(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn claims_resolve_to_the_highest_scope_and_the_union_of_clusters() {
        let bindings = [
            binding("group:sre=admin@prod-*"),
            binding("scope:kubeline.read=read@staging-*|dev-1"),
            binding("sub:robot=read@ci|dev-1"),
        ];
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();

        let g = resolve(&bindings, "alice", &s(&["sre"]), &[]);
        assert_eq!(g.scope, Some(Scope::Admin));
        assert_eq!(g.clusters, ["prod-*"]);

        let g = resolve(&bindings, "alice", &[], &s(&["openid", "kubeline.read"]));
        assert_eq!(g.scope, Some(Scope::Read));
        assert_eq!(g.clusters, ["staging-*", "dev-1"]);

        let g = resolve(&bindings, "robot", &[], &s(&["kubeline.read"]));
        assert_eq!(g.scope, Some(Scope::Read));
        assert_eq!(g.clusters, ["staging-*", "dev-1", "ci"]);
        assert_eq!(g.grants.len(), 2);

        let g = resolve(&bindings, "alice", &s(&["sre"]), &s(&["kubeline.read"]));
        assert_eq!(g.scope, Some(Scope::Admin));
        assert_eq!(g.clusters, ["prod-*", "staging-*", "dev-1"]);
        assert!(g.grants[0].covers("prod-eu") && !g.grants[0].covers("dev-1"));

        let g = resolve(&bindings, "mallory", &s(&["SRE"]), &s(&["kubeline"]));
        assert_eq!(g, Granted::default());
    }
}
